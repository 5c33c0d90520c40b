"""The coach's account in Chromium (docs/security.md): the first run's page makes the first
coach from the link the server printed, the start page creates a session only when logged in,
logging out sends the coach to the login page, and a wrong password says so. No call is made,
so the browser runs here directly (no network namespace: these pages use no WebRTC)."""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.request

import pytest

from browser_run import CHROMIUM
from liveserver import Server

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")

EMAIL, PASSWORD = "first@example.com", "the first coach's password"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


def test_first_run_start_page_logout_and_login(tmp_path, browser):
    server = Server(tmp_path / "data", coach=False)
    try:
        link = re.search(r"(http://\S+/setup#\S+)", server.log.read_text()).group(1)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))

        # Without an account the start page sends the coach to the first run.
        page.goto(server.url + "/")
        page.wait_for_url("**/setup")
        page.goto(link)
        assert page.get_by_test_id("setup-code").input_value() == link.split("#", 1)[1]
        page.get_by_test_id("name").fill("First Coach")
        page.get_by_test_id("email").fill(EMAIL)
        page.get_by_test_id("password").fill(PASSWORD)
        page.get_by_test_id("create-account").click()

        # Logged in: the start page names the coach and creates a session.
        page.wait_for_url(server.url + "/")
        page.get_by_test_id("account").wait_for(state="visible")
        assert page.get_by_test_id("coach-name").text_content() == "First Coach"
        cookie = next(c for c in page.context.cookies() if c["name"] == "livecoach_login")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert page.evaluate("document.cookie") == ""  # no script sees the login
        page.get_by_test_id("label").fill("Alex")
        page.get_by_test_id("new-session").click()
        page.get_by_test_id("created").wait_for(state="visible")
        assert "/join#" in page.get_by_test_id("client-link").input_value()

        # Logging out ends it: the start page now sends the coach to the login page.
        page.get_by_test_id("log-out").click()
        page.wait_for_url("**/login")
        page.goto(server.url + "/")
        page.wait_for_url("**/login?next=/")

        # A wrong password says so; the right one leads back to the start page.
        page.get_by_test_id("email").fill(EMAIL)
        page.get_by_test_id("password").fill("not the password")
        page.get_by_test_id("log-in").click()
        problem = page.get_by_test_id("login-problem")
        problem.wait_for(state="visible")
        assert "do not match" in problem.text_content()
        page.get_by_test_id("password").fill(PASSWORD)
        page.get_by_test_id("log-in").click()
        page.wait_for_url(server.url + "/")
        page.get_by_test_id("account").wait_for(state="visible")
        assert errors == []
    finally:
        server.stop()


def test_the_review_shows_who_looked_and_deletes_the_session(tmp_path, browser):
    server = Server(tmp_path / "data")
    try:
        session = server.create_session(video=False)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(server.url + session["coach_url"].replace("/coach#", "/review#"))
        log = page.get_by_test_id("access-log")
        log.wait_for(state="visible", timeout=15000)
        assert "the coach link opened the review" in log.text_content()
        page.get_by_test_id("keep-recordings").select_option("30")
        page.get_by_role("status").filter(has_text="Saved.").wait_for(timeout=5000)
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_test_id("delete-session").click()
        page.get_by_test_id("deleted").wait_for(timeout=10000)
        token = session["coach_url"].split("#", 1)[1]
        req = urllib.request.Request(f"{server.url}/api/sessions/{session['session']}/tags",
                                     headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as gone:
            urllib.request.urlopen(req, timeout=5)
        assert gone.value.code == 404
        assert errors == []
    finally:
        server.stop()
