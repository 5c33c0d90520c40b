"""The library and the report in Chromium (docs/library.md): the library lists every session by
client (a long one, its first screenful first), a filter narrows it, a client's trend chart has
one point per session, a row opens its replay with the coach's login alone, and a report shows
its figures and charts, keeps the coach's summary, prints to one A4 and one Letter page with
nothing past the printable width, and downloads a shared copy without the notes. No call is
made: the browser runs here directly (these pages use no WebRTC), on sessions written through
the Store."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from library_data import make_session
from browser_run import CHROMIUM
from liveserver import COACH_EMAIL, COACH_PASSWORD, Server, add_coach
from livecoach.store import Store
from test_library_api import login

pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed")
DAY = 86400.0
T0 = 1795000000.0
MARGIN_MM = 12  # report.css: @page { margin: 12mm }
PAPER_MM = {"A4": (210.0, 297.0), "Letter": (215.9, 279.4)}
PX_PER_MM = 96 / 25.4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Alex: 5 weekly sessions (the last unrecorded, so its replay needs no file); Blair: 2."""
    data = tmp_path_factory.mktemp("library-browser")
    add_coach(data)
    store = Store(data / "livecoach.sqlite3")
    coach = store.coaches()[0].id
    made = {"Alex": [make_session(store, coach, "Alex", T0 + i * 7 * DAY, seed=i, minutes=20, coach_share=0.8 - 0.08 * i,
                                  tags=2 + i, nudges=1, recorded=i < 4, note=f"PRIVATE-NOTE-{i}") for i in range(5)],
            "Blair": [make_session(store, coach, "Blair", T0 + i * 7 * DAY + 3600, seed=10 + i, minutes=10, tags=0)
                      for i in range(2)]}
    store.close()
    server = Server(data, workers=0)
    try:
        yield server, made
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(world):
    from playwright.sync_api import sync_playwright

    server, _ = world
    cookie = login(server, COACH_EMAIL, COACH_PASSWORD)
    name, value = cookie.split("=", 1)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.add_cookies([{"name": name, "value": value, "url": server.url}])
        tab = context.new_page()
        tab.errors = []
        tab.on("pageerror", lambda err: tab.errors.append(str(err)))
        tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" and "importer.js" not in m.text
               and "404" not in m.text else None)
        try:
            yield tab
        finally:
            browser.close()


def rows(page) -> list[str]:
    """The rows' sessions, once every row is drawn (the page draws a long list in parts)."""
    page.locator("[data-testid=sessions][data-complete=true]").wait_for(state="attached")
    return page.get_by_test_id("session-row").evaluate_all("rows => rows.map(r => r.dataset.session)")


def test_the_library_lists_filters_and_draws_a_clients_trends(world, page):
    server, made = world
    page.goto(server.url + "/")
    page.get_by_test_id("library-link").click()
    page.wait_for_url("**/library")
    page.get_by_test_id("session-row").first.wait_for()
    everyone = [m.id for m in made["Alex"]][::-1] + [m.id for m in made["Blair"]][::-1]
    assert rows(page) == everyone  # by client, newest first within a client
    groups = page.get_by_test_id("client-group").evaluate_all("g => g.map(x => x.dataset.client)")
    assert groups == ["Alex", "Blair"]
    newest = page.locator(f"[data-session='{made['Alex'][4].id}']")
    assert newest.get_by_test_id("duration").text_content() == "20:00"
    assert newest.get_by_test_id("recorded").text_content() == "no"
    assert "%" in newest.get_by_test_id("balance").text_content()

    # A filter narrows the list, and goes into the address.
    page.get_by_test_id("filter-client").select_option("Blair")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=session-row]').length === 2")
    assert rows(page) == [m.id for m in made["Blair"]][::-1] and "client=Blair" in page.url
    page.get_by_test_id("filter-clear").click()
    page.wait_for_function("n => document.querySelectorAll('[data-testid=session-row]').length === n", arg=len(everyone))
    page.get_by_test_id("filter-tag").select_option("goal_clarity")
    page.wait_for_function("n => document.querySelectorAll('[data-testid=session-row]').length < n", arg=len(everyone))
    tagged = set(rows(page))
    assert tagged and tagged <= {m.id for m in made["Alex"]}
    page.get_by_test_id("filter-clear").click()
    # From the day of Alex's fourth session (the browser's local day): the last two.
    day = page.evaluate("t => new Date(t * 1000).toLocaleDateString('en-CA')", made["Alex"][3].created_at)
    page.get_by_test_id("filter-from").fill(day)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=session-row]').length === 2")
    assert rows(page) == [made["Alex"][4].id, made["Alex"][3].id] and f"from={day}" in page.url
    page.get_by_test_id("filter-clear").click()

    # A client's trends: one point per session in every chart, the coach's targets drawn in.
    page.locator("[data-client='Alex']").get_by_test_id("show-trends").click()
    page.get_by_test_id("trends").wait_for()
    charts = page.get_by_test_id("trend-chart")
    assert charts.count() == 6
    for figure in ("talk_share", "median_wait", "longest_silence", "tags"):
        points = page.locator(f"[data-figure='{figure}'] [data-testid=trend-point]")
        assert points.evaluate_all("p => p.map(x => x.dataset.session)") == [m.id for m in made["Alex"]], figure
    turns = page.locator("[data-figure='longest_turn'] [data-testid=trend-point]")
    assert turns.count() == 2 * len(made["Alex"])  # the coach's and the client's
    assert page.locator("[data-figure='talk_share'] [data-testid=trend-target]").count() == 1
    assert page.locator("[data-figure='median_wait'] [data-testid=trend-target]").count() == 1
    csv_link = page.get_by_test_id("trends-csv").get_attribute("href")
    assert csv_link == "/api/clients/Alex/trends?format=csv"

    # A session filed under another client moves to that client's group.
    page.get_by_test_id("filter-clear").click()
    moved = page.locator(f"[data-session='{made['Blair'][0].id}']")
    moved.get_by_test_id("change-client").click()
    moved.get_by_test_id("client-input").fill("Blair Two")
    moved.get_by_test_id("save-client").click()
    page.locator("[data-testid=client-group][data-client='Blair Two']").wait_for()
    assert page.locator("[data-client='Blair Two'] [data-testid=session-row]").evaluate_all(
        "rows => rows.map(r => r.dataset.session)") == [made["Blair"][0].id]
    assert page.errors == []


def test_a_row_opens_its_replay_with_the_login_alone(world, page):
    server, made = world
    page.goto(server.url + "/library?client=Alex")
    row = page.locator(f"[data-session='{made['Alex'][4].id}']")
    row.get_by_test_id("duration").click()  # anywhere on the row
    page.wait_for_url(f"**/s/{made['Alex'][4].id}/review")
    page.get_by_test_id("summary").wait_for()
    assert "%" in page.get_by_test_id("sum-share").text_content()
    assert page.errors == []


def test_a_report_renders_keeps_its_summary_prints_on_one_page_and_shares_a_copy(world, page, tmp_path):
    server, made = world
    session = made["Alex"][3]
    page.goto(f"{server.url}/library")
    page.locator(f"[data-session='{session.id}']").get_by_test_id("open-report").click()
    page.wait_for_url(f"**/s/{session.id}/report")
    report = page.get_by_test_id("report")
    report.wait_for()
    assert page.get_by_test_id("report-client").text_content() == "Alex"
    assert report.locator("[data-figure=duration]").text_content() == "20:00"
    assert re.fullmatch(r"coach \d+% · client \d+%", report.locator("[data-figure=talk-balance]").text_content())
    for chart in ("talk-balance", "quarters", "timeline"):
        svg = page.get_by_test_id(f"chart-{chart}").locator("svg")
        assert svg.bounding_box()["width"] > 100 and svg.bounding_box()["height"] > 20, chart
    assert report.get_by_test_id("report-tag").count() == session.tags
    assert report.locator(".mark-tag").count() == session.tags

    # The coach writes the summary on the page; it is kept.
    page.get_by_test_id("edit-summary").click()
    page.get_by_test_id("text-summary").fill("Alex named the goal.\n\nShe will call her manager.")
    page.get_by_test_id("save-summary").click()
    page.wait_for_function("() => document.querySelector('[data-testid=report-summary]')?.textContent.includes('manager')")
    page.reload()
    page.get_by_test_id("report-summary").wait_for()
    assert page.get_by_test_id("report-summary").locator("p").all_text_contents() == [
        "Alex named the goal.", "She will call her manager."]

    # Printed: one page on A4 and on Letter, nothing wider than the printable width.
    for paper, (width_mm, _) in PAPER_MM.items():
        pdf = page.pdf(format=paper, margin={side: f"{MARGIN_MM}mm" for side in ("top", "right", "bottom", "left")},
                       print_background=True)
        (tmp_path / f"report-{paper}.pdf").write_bytes(pdf)
        assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) == 1, paper
    page.emulate_media(media="print")
    printable = int((PAPER_MM["A4"][0] - 2 * MARGIN_MM) * PX_PER_MM)  # the narrower of the two
    page.set_viewport_size({"width": printable, "height": 1000})
    wider = page.evaluate("""(width) => [...document.querySelectorAll('body *')]
        .filter(el => el.getClientRects().length)
        .map(el => [el.tagName + '.' + el.getAttribute('class'), el.getBoundingClientRect()])
        .filter(([, r]) => r.right > width + 0.5 || r.left < -0.5)
        .map(([name, r]) => `${name} ${r.left}..${r.right}`)""", printable)
    assert wider == [] and page.evaluate("document.documentElement.scrollWidth") <= printable
    assert page.get_by_test_id("report-tools").is_hidden()  # the tools are not printed
    page.emulate_media(media="screen")
    page.set_viewport_size({"width": 1280, "height": 900})

    # A shared copy: the notes left out (the default), the summary kept.
    with page.expect_download() as download:
        page.get_by_test_id("download-shared").click()
    copy = Path(download.value.path()).read_text()
    assert download.value.suggested_filename.endswith("-shared.html")
    assert "She will call her manager." in copy and "PRIVATE-NOTE" not in copy and "Listen at" not in copy
    assert copy.startswith("<!doctype html>")
    page.get_by_test_id("preview").check()
    assert page.locator("[data-part=notes]").first.is_hidden()
    assert page.errors == []


def test_a_long_library_shows_its_first_rows_then_every_row_in_order(page, tmp_path):
    """More sessions than the first screenful (library.js draws 20 at once, then the rest): the
    first frame holds the first group alone, and then every row comes, by client, newest first;
    a group not drawn yet is guessed as tall as its rows (its --rows), not as one row."""
    from livecoach import review_source

    add_coach(tmp_path)
    store = Store(tmp_path / "livecoach.sqlite3")
    coach = store.coaches()[0].id
    made = {}
    for c, name in enumerate(("Alex", "Blair", "Casey")):
        made[name] = [make_session(store, coach, name, T0 + i * DAY + c * 3600, seed=100 * c + i, minutes=2, tags=i % 3,
                                   nudges=0).id for i in range(12)]
        for session in made[name]:
            review_source.warm(store, session)
    store.close()
    server = Server(tmp_path, workers=0)
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        name, value = login(server, COACH_EMAIL, COACH_PASSWORD).split("=", 1)
        context.add_cookies([{"name": name, "value": value, "url": server.url}])
        tab = context.new_page()
        errors = []
        tab.on("pageerror", lambda err: errors.append(str(err)))
        tab.add_init_script("""{  // the groups and their rows when the page marks its first rows drawn
            const mark = performance.mark.bind(performance);
            performance.mark = (name, ...more) => {
                if (name === 'library-drawn') {
                    globalThis.firstGroups = [...document.querySelectorAll('[data-testid=client-group]')]
                        .map((g) => [g.dataset.client, g.querySelectorAll('[data-testid=session-row]').length]);
                }
                return mark(name, ...more);
            };
        }""")
        tab.goto(server.url + "/library")
        assert rows(tab) == made["Alex"][::-1] + made["Blair"][::-1] + made["Casey"][::-1]
        assert tab.evaluate("globalThis.firstGroups") == [["Alex", 12], ["Blair", 8]]
        marks = tab.evaluate("['library-drawn', 'library-on-screen', 'library-complete']"
                             ".map((n) => performance.getEntriesByName(n)[0].startTime)")
        assert marks == sorted(marks)
        assert tab.get_by_test_id("client-group").evaluate_all(
            "gs => gs.map((g) => [g.dataset.client, g.style.getPropertyValue('--rows')])") == [
            ["Alex", "12"], ["Blair", "12"], ["Casey", "12"]]
        assert errors == []
    finally:
        context.close()
        server.stop()
