"""The library's figures, filters and trends, and the session report, on a real store
(docs/library.md): each figure is the review's own, kept when the call ends, rebuilt when stale
(tags edited, a recording finished or purged), and a report's shared copy holds nothing of what
the coach left out."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest

from library_data import make_session
from livecoach import cli, library, report_html, review_source, session_report
from livecoach.library_api import report_css
from livecoach.recordings.storage import FolderStorage
from livecoach import retention
from livecoach.store import LOCAL_COACH, Store

WEB = Path(__file__).resolve().parents[1] / "web"
DAY = 86400.0
T0 = 1795000000.0  # 2026-11-18 11:06:40 UTC


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "livecoach.sqlite3")
    yield s
    s.close()


def rows_by_id(store: Store) -> dict:
    return {row.session.id: row for row in store.library_rows(LOCAL_COACH)}


def figures_of(store: Store, session: str) -> dict:
    answer = library.library(store, LOCAL_COACH)
    return next(s["figures"] for s in answer["sessions"] if s["id"] == session)


# -- the figures -------------------------------------------------------------------------------


def test_the_figures_are_the_reviews_own(store):
    made = make_session(store, LOCAL_COACH, "Alex", T0, seed=3, minutes=8, coach_share=0.7, tags=4, nudges=2)
    review = json.loads(review_source.load_review(store, made.id, lambda name: ""))
    metrics = review["summary"]["metrics"]
    f = figures_of(store, made.id)
    assert f["duration_s"] == review["session"]["duration_s"] == 480.0
    assert f["talk_share_coach"] == metrics["talk_share_coach"] and 0.55 < f["talk_share_coach"] < 0.85
    assert f["talk_time_s"] == {"coach": metrics["talk_time"]["coach"], "client": metrics["talk_time"]["client"]}
    assert f["median_wait_s"] == metrics["median_wait"] and f["waits"] == len(metrics["wait_times"])
    assert f["longest_silence_s"] == metrics["longest_silence"] and f["long_silences"] == metrics["long_silences"]
    assert f["longest_turn_s"] == metrics["longest_monologue"]
    assert f["interruptions"] == metrics["interruptions"] and f["switches"] == metrics["switches"]
    assert f["nudges"] == 2 and f["tag_count"] == 4 and sum(f["tags"].values()) == 4
    assert f["recorded"] is True and f["live"] is False


def test_the_calls_end_keeps_the_figures_and_a_read_then_builds_nothing(store):
    made = make_session(store, LOCAL_COACH, "Alex", T0, seed=1)
    assert rows_by_id(store)[made.id].figures is None  # written by the test, not by a call: none kept yet
    review_source.warm(store, made.id)  # what live/call.py runs as the call empties
    row = rows_by_id(store)[made.id]
    assert library.fresh(row) and row.figures["tag_counts"] and row.figures["duration_s"] == 600.0
    built = row.figures["built_at"]
    library.library(store, LOCAL_COACH)
    assert rows_by_id(store)[made.id].figures["built_at"] == built


def test_tags_edited_after_the_call_are_counted_at_the_next_read(store):
    made = make_session(store, LOCAL_COACH, "Alex", T0, seed=0, tags=0)
    review_source.warm(store, made.id)
    store.put_tag(made.id, "tag-new-00001", "breakthrough", "Breakthrough", 30.0)
    assert not library.fresh(rows_by_id(store)[made.id])
    assert figures_of(store, made.id)["tags"] == {"breakthrough": 1}
    time.sleep(0.01)  # a change later than the creation, as in review
    store.update_tag(made.id, "tag-new-00001", kind="resistance", label="Resistance")
    assert figures_of(store, made.id)["tags"] == {"resistance": 1}
    store.put_tag(made.id, "tag-new-00002", "resistance", "Resistance", 40.0)
    store.delete_tag(made.id, "tag-new-00001")
    assert figures_of(store, made.id)["tags"] == {"resistance": 1}
    assert figures_of(store, made.id)["tag_count"] == 1


def test_recorded_follows_the_recordings_rows(store, tmp_path):
    made = make_session(store, LOCAL_COACH, "Alex", T0, seed=2, recorded=False)
    assert figures_of(store, made.id)["recorded"] is False
    store.create_recording(made.id, "client-audio-1", "client", "audio", "client-audio-1.ogg", "audio/ogg", 0.0)
    live = figures_of(store, made.id)
    assert live["recorded"] is True and live["live"] is True  # still being written: the call goes on
    store.update_recording(made.id, "client-audio-1", state="failed")
    assert figures_of(store, made.id)["recorded"] is False
    store.update_recording(made.id, "client-audio-1", state="finished", duration_s=600.0)
    assert figures_of(store, made.id)["recorded"] is True
    retention.purge(store, FolderStorage(tmp_path / "recordings"), 0, None, now=time.time() + 2 * DAY)
    assert figures_of(store, made.id)["recorded"] is False  # the retention purged the recording


def test_a_read_rebuilds_within_its_budget_and_says_how_many_wait(store):
    ids = [make_session(store, LOCAL_COACH, "Alex", T0 + i * DAY, seed=i, minutes=3).id for i in range(4)]
    first = library.library(store, LOCAL_COACH, budget_s=0.0)
    assert first["pending"] == 4 and all(s["figures"] is None for s in first["sessions"])
    second = library.library(store, LOCAL_COACH, budget_s=None)
    assert second["pending"] == 0 and all(s["figures"] for s in second["sessions"])
    assert [s["id"] for s in second["sessions"]] == ids[::-1]  # newest first


# -- the library's filters and a client's trends -------------------------------------------------


def several(store: Store) -> dict[str, list[str]]:
    """Alex: 3 weekly sessions (tags from seed), Blair: 2, another coach's Casey: 1."""
    made: dict[str, list[str]] = {"Alex": [], "Blair": [], "Casey": []}
    for i in range(3):
        made["Alex"].append(make_session(store, LOCAL_COACH, "Alex", T0 + i * 7 * DAY, seed=i, minutes=3,
                                         coach_share=0.8 - 0.2 * i, tags=i).id)
    for i in range(2):
        made["Blair"].append(make_session(store, LOCAL_COACH, "Blair", T0 + i * 7 * DAY + 3600, seed=10 + i,
                                          minutes=3, tags=1).id)
    made["Casey"].append(make_session(store, "someone-else", "Casey", T0, seed=20, minutes=3).id)
    return made


def test_the_library_filters_by_client_dates_and_tag_kind(store):
    made = several(store)
    everything = library.library(store, LOCAL_COACH)
    assert {s["id"] for s in everything["sessions"]} == set(made["Alex"] + made["Blair"])  # never another coach's
    assert [(c["name"], c["sessions"]) for c in everything["clients"]] == [("Alex", 3), ("Blair", 2)]
    assert [s["id"] for s in library.library(store, LOCAL_COACH, client="Alex")["sessions"]] == made["Alex"][::-1]
    week2 = library.library(store, LOCAL_COACH, since=T0 + 7 * DAY, until=T0 + 14 * DAY)["sessions"]
    assert {s["id"] for s in week2} == {made["Alex"][1], made["Blair"][1]}
    for kind in ("breakthrough", "resistance", "action_commitment"):
        tagged = {s["id"] for s in library.library(store, LOCAL_COACH, tag_kind=kind)["sessions"]}
        assert tagged == {s["id"] for s in everything["sessions"] if s["figures"]["tags"].get(kind)}
    assert library.library(store, LOCAL_COACH, client="Alex", tag_kind="resistance")["sessions"] != []
    assert library.library(store, LOCAL_COACH, client="Nobody")["sessions"] == []
    assert everything["targets"] == {"talk_share_coach_max": 0.65, "wait_min_s": 3.0, "turn_max_s": 90.0}


def test_the_list_form_is_the_whole_answer_less_what_the_page_does_not_show(store):
    made = several(store)
    whole = library.library(store, LOCAL_COACH, client="Alex")
    listed = library.library(store, LOCAL_COACH, client="Alex", listed=True)
    assert [s["id"] for s in listed["sessions"]] == made["Alex"][::-1]
    assert {k: v for k, v in listed.items() if k != "sessions"} == {k: v for k, v in whole.items() if k != "sessions"}
    for brief, full in zip(listed["sessions"], whole["sessions"], strict=True):
        assert set(brief) == {"id", "client", "label", "created_at", "origin", "figures"}
        assert set(brief["figures"]) == {"live", "duration_s", "talk_share_coach", "median_wait_s", "tags", "tag_count",
                                         "recorded"}
        assert brief == {k: v for k, v in full.items() if k in brief} | {
            "figures": {k: v for k, v in full["figures"].items() if k in brief["figures"]}}


def test_the_targets_are_the_coachs_settings(store):
    settings = store.coach_settings(LOCAL_COACH)
    settings["nudges"]["talk_balance"]["share"] = 0.55
    settings["nudges"]["monologue"]["seconds"] = 60
    store.set_coach_settings(LOCAL_COACH, settings)
    assert library.library(store, LOCAL_COACH)["targets"] == {
        "talk_share_coach_max": 0.55, "wait_min_s": 3.0, "turn_max_s": 60}


def test_a_clients_trends_are_one_point_per_session_oldest_first_and_the_same_as_csv(store):
    made = several(store)
    trends = library.trends(store, LOCAL_COACH, "Alex")
    assert [p["id"] for p in trends["points"]] == made["Alex"]
    shares = [p["figures"]["talk_share_coach"] for p in trends["points"]]
    assert shares == sorted(shares, reverse=True)  # the coach talked less each week
    assert library.trends(store, LOCAL_COACH, "Casey") is None  # another coach's client
    rows = list(csv.DictReader(io.StringIO(library.trends_csv(trends))))
    assert [r["session"] for r in rows] == made["Alex"]
    for row, point in zip(rows, trends["points"]):
        f = point["figures"]
        assert float(row["talk_share_coach"]) == f["talk_share_coach"]
        assert float(row["median_wait_s"]) == f["median_wait_s"]
        assert float(row["longest_turn_coach_s"]) == f["longest_turn_s"]["coach"]
        assert int(row["tag_count"]) == f["tag_count"] and row["recorded"] == "yes"
        assert all(int(row[f"tags_{k}"]) == f["tags"].get(k, 0) for k in ("breakthrough", "resistance"))
        assert row["started"] == library.iso_time(point["created_at"])


def test_a_client_named_like_a_formula_is_text_in_the_csv(store):
    make_session(store, LOCAL_COACH, "=HYPERLINK(\"x\")", T0, seed=1, minutes=2)
    text = library.trends_csv(library.trends(store, LOCAL_COACH, "=HYPERLINK(\"x\")"))
    assert next(csv.DictReader(io.StringIO(text)))["client"] == "'=HYPERLINK(\"x\")"


MIDNIGHT = 1794960000.0  # 2026-11-18T00:00:00Z


@pytest.mark.parametrize("text, end, seconds", [
    ("1795000000", False, 1795000000.0),
    ("1795000000.5", True, 1795000000.5),  # epoch seconds are as given, "to" excluded
    ("2026-11-18", False, MIDNIGHT),
    ("2026-11-18", True, MIDNIGHT + DAY),  # "to" a date: to the end of that day (UTC)
    ("2026-11-18T12:00:00+01:00", False, MIDNIGHT + 11 * 3600),
    ("2026-11-18T12:00:00", False, MIDNIGHT + 12 * 3600),  # no zone: UTC
])
def test_from_and_to_are_dates_times_or_epoch_seconds(text, end, seconds):
    assert library.parse_time(text, "from", end) == seconds


def test_a_bad_date_says_so():
    with pytest.raises(library.BadQuery, match="'to' is a date"):
        library.parse_time("last tuesday", "to")


# -- privacy -------------------------------------------------------------------------------------


def test_erasing_the_client_clears_their_name_and_the_reports_text(store, tmp_path):
    made = make_session(store, LOCAL_COACH, "Quentin Client", T0, seed=1)
    store.set_report_text(made.id, "Quentin said a lot.", "Quentin calls his boss.")
    retention.erase_participant(store, FolderStorage(tmp_path / "recordings"), made.id, "client")
    assert store.get_session(made.id).client == ""
    assert store.report_text(made.id)["summary"] == "" and store.report_text(made.id)["next_steps"] == ""
    assert figures_of(store, made.id)["duration_s"] == 600.0  # the anonymous figures stay


def test_deleting_a_session_deletes_its_figures_and_report(store, tmp_path):
    made = make_session(store, LOCAL_COACH, "Alex", T0, seed=1)
    review_source.warm(store, made.id)
    store.set_report_text(made.id, "MARKER-SUMMARY", "")
    retention.delete_session(store, FolderStorage(tmp_path / "recordings"), made.id)
    with sqlite3.connect(store.path) as conn:
        for table in ("session_figures", "session_reports"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


# -- the report --------------------------------------------------------------------------------


def test_the_report_has_three_layers_from_the_reviews_figures(store):
    made = make_session(store, LOCAL_COACH, "Alex", T0, seed=5, minutes=6, tags=3, nudges=2, note="said <b>yes</b>")
    store.set_report_text(made.id, "A good <script>x</script> session.\n\nSecond paragraph.", "Call the manager.")
    review = json.loads(review_source.load_review(store, made.id, lambda name: ""))
    model = session_report.build_report(store, made.id)
    p, b, r = model["participation"], model["behaviour"], model["results"]
    assert p["attendance"] == {"coach": {"present": True, "joined_at_s": 0.0, "present_s": 360.0, "joins": 1},
                               "client": {"present": True, "joined_at_s": 5.0, "present_s": 355.0, "joins": 1}}
    assert p["talk_share_coach"] == review["summary"]["metrics"]["talk_share_coach"]
    assert p["quarters"] == review["summary"]["quarters"]
    assert b["median_wait_s"] == review["summary"]["metrics"]["median_wait"] and len(b["nudges"]) == 2
    assert [t["note"] for t in r["tags"]] == ["said <b>yes</b>"] * 3 and sum(c["count"] for c in r["tag_counts"]) == 3
    page = report_html.document(model, report_css(WEB))
    assert "said &lt;b&gt;yes&lt;/b&gt;" in page and "<script>x" not in page and "&lt;script&gt;" in page
    assert page.count("<p>") >= 2 and "Call the manager." in page
    for chart in ("talk-balance", "quarters", "timeline"):
        assert f'data-chart="{chart}"' in page
    assert "<script" not in page.replace("&lt;script", "") and " style=" not in page  # the pages' CSP refuses both


def test_a_shared_copy_holds_nothing_of_what_the_coach_left_out(store):
    made = make_session(store, LOCAL_COACH, "Alex", T0, seed=5, tags=2, nudges=1, note="PRIVATE-NOTE")
    store.set_report_text(made.id, "SUMMARY-TEXT", "NEXT-STEPS-TEXT")
    full = report_html.document(session_report.build_report(store, made.id), "")
    assert all(m in full for m in ("PRIVATE-NOTE", "Listen at", "SUMMARY-TEXT", "NEXT-STEPS-TEXT"))
    shared = session_report.build_report(store, made.id, session_report.parts("notes,nudges"))
    page = report_html.document(shared, "")
    assert "PRIVATE-NOTE" not in page and "Listen" not in page and 'data-part="notes"' not in page
    assert "SUMMARY-TEXT" in page and 'data-testid="report-tag"' in page
    bare = report_html.document(session_report.build_report(store, made.id, session_report.PARTS), "")
    assert all(m not in bare for m in ("PRIVATE-NOTE", "SUMMARY-TEXT", "NEXT-STEPS-TEXT", 'data-layer="behaviour"',
                                       "report-tag"))
    with pytest.raises(session_report.UnknownPart):
        session_report.parts("notes,secrets")


def test_attendance_counts_rejoins_and_reads_an_import_from_its_speech():
    events = [{"kind": "joined", "participant": "coach", "session_time": 0.0},
              {"kind": "joined", "participant": "client", "session_time": 10.0},
              {"kind": "left", "participant": "client", "session_time": 20.0},
              {"kind": "joined", "participant": "client", "session_time": 30.0},
              {"kind": "joined", "participant": "client", "session_time": 35.0}]  # a replaced window: no left
    att = session_report.attendance(events, {}, 100.0)
    assert att["client"] == {"present": True, "joined_at_s": 10.0, "present_s": 80.0, "joins": 2}
    assert att["coach"]["present_s"] == 100.0
    imported = session_report.attendance([], {"coach": [[1, 2]], "client": []}, 100.0)
    assert imported["coach"]["present"] and not imported["client"]["present"] and imported["coach"]["joins"] is None


# -- the command line ---------------------------------------------------------------------------


def test_livecoach_sessions_lists_every_session_with_its_figures(tmp_path, capsys):
    store = Store(tmp_path / "livecoach.sqlite3")
    try:
        made = several(store)
    finally:
        store.close()
    assert cli.main(["sessions", "--data", str(tmp_path), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)["sessions"]
    assert {s["id"] for s in listed} == {i for ids in made.values() for i in ids}
    assert set(listed[0]) == {"id", "client", "label", "origin", "started", "created_at", "duration_s",
                              "talk_share_coach", "tag_count", "recorded", "live"}
    assert cli.main(["sessions", "--data", str(tmp_path), "--client", "Blair"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "CLIENT", "STARTED", "DURATION", "TALK", "SHARE", "TAGS", "RECORDED"]
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(made["Blair"])
    assert all(" 3:00 " in line and " coach " in line and line.endswith("yes") for line in lines[1:])


def test_livecoach_report_writes_the_same_document_as_the_page(tmp_path, capsys):
    store = Store(tmp_path / "livecoach.sqlite3")
    try:
        made = make_session(store, LOCAL_COACH, "Alex", T0, seed=4, note="NOTE-4")
        expected = report_html.document(session_report.build_report(store, made.id, {"notes"}), report_css(WEB))
    finally:
        store.close()
    out = tmp_path / "report.html"
    assert cli.main(["report", made.id, "--data", str(tmp_path), "-o", str(out), "--without", "notes"]) == 0
    assert out.read_text() == expected and "NOTE-4" not in expected
    assert cli.main(["report", "no-such-session", "--data", str(tmp_path)]) == 1
    assert "there is no session" in capsys.readouterr().err
