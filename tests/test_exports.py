"""Every export format (docs/exports.md) parsed back and compared with the stored session: an
imported call (real audio through the real import) and a hand-made live one with all a live call
stores (consent, presence, a recording pause, a server outage, edited tags, nudges)."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from conftest import track_path
from livecoach import exports
from livecoach.cli import main
from livecoach.importing import CallFiles, import_call
from livecoach.recordings.storage import FolderStorage
from livecoach.review_source import load_review
from livecoach.store import IndicatorSample, Store

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "docs" / "export.schema.json").read_text())
NOTE = "said <it> & meant it --> then\n\n\nsaid, \"more\"\r\nlast line"


def run(*args):
    return subprocess.run([sys.executable, "-m", "livecoach", *map(str, args)], capture_output=True)


def add_review_things(store: Store, session: str) -> None:
    """What a coach adds during and after a call: tags (one moved and annotated in review, one
    made in review, one undone), nudges (one dismissed)."""
    store.put_tag(session, "tag-live-0001", "breakthrough", "Breakthrough", 12.5, clicked_at=17.5)
    store.update_tag(session, "tag-live-0001", session_time=14.0, note=NOTE)
    store.put_tag(session, "tag-review-01", "resistance", "Resist & <push>", 40.0, origin="review")
    store.put_tag(session, "tag-undone-01", "goal", "Goal clarity", 50.0)
    store.delete_tag(session, "tag-undone-01")
    store.add_nudge(session, "nudge-1", "talk_balance", "Listen", 30.0)
    store.dismiss_nudge(session, "nudge-1", 33.5)
    store.add_nudge(session, "nudge-2", "wait", "Wait", 60.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    store = Store(folder / "livecoach.sqlite3")
    storage = FolderStorage(folder / "recordings")
    files = CallFiles(coach=track_path("clean", "coach"), client=track_path("clean", "client"))
    imported = import_call(store, storage, files, label="Alex", client="Alex B.").session.id
    add_review_things(store, imported)
    live = live_session(store)
    yield folder, store, imported, live
    store.close()


def live_session(store: Store) -> str:
    """A live call as LiveSession and the call store it: consent, joins and leaves, speech events,
    samples, a recording paused and resumed, a server outage, a finished recording."""
    session = store.create_session("Jo", coach_id="local")
    store.record_consent(session.id, "coach")
    store.record_consent(session.id, "client")
    store.withdraw_consent(session.id, "client", ["video"], 20.0)
    events = [(1.0, 0.5, "joined", "coach", {}), (1.0, 0.8, "joined", "client", {})]
    events += [(1.0, end + 0.3, "speech", who, {"start": start, "end": end})
               for who, start, end in [("coach", 1.0, 8.0), ("client", 9.0, 20.0), ("coach", 26.0, 30.0),
                                       ("client", 29.5, 44.0)]]
    events += [(1.0, 22.0, "recording", None, {"state": "paused"}), (1.0, 25.0, "recording", None, {"state": "on"}),
               (1.0, 45.0, "left", "client", {}), (1.0, 46.0, "left", "coach", {})]
    store.log_events(session.id, events)
    store.log_event(session.id, "interrupted", None, 33.0)
    store.add_indicator_samples(session.id, [IndicatorSample(float(t), ["coach"] if t < 8 else [], 0.6, 0.5, 0.0)
                                             for t in range(1, 46)])
    store.create_recording(session.id, "coach-audio-1", "coach", "audio", "coach-audio-1.webm", "audio/webm", 0.5)
    store.update_recording(session.id, "coach-audio-1", state="finished", duration_s=45.5, gaps=[[22.0, 25.0]])
    add_review_things(store, session.id)
    return session.id


def review_payload(store: Store, session: str) -> dict:
    return json.loads(load_review(store, session, lambda name: name))


def made(store: Store, session: str, fmt: str, table: str | None = None) -> exports.Export:
    return exports.export(exports.load(store, session), fmt, table)


# -- json -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["imported", "live"])
def test_json_is_valid_and_holds_the_stored_session(data, which):
    folder, store, imported, live = data
    session = imported if which == "imported" else live
    out = made(store, session, "json")
    assert out.media_type == "application/json" and out.filename.endswith(f"{session}.json")
    doc = json.loads(out.body)
    jsonschema.validate(doc, SCHEMA, cls=jsonschema.Draft202012Validator)
    review = review_payload(store, session)

    # The figures are the review's, from the same rows.
    assert doc["metrics"] == review["summary"]["metrics"]
    assert {p: [[s["start"], s["end"]] for s in doc["timeline"]["segments"][p]] for p in ("coach", "client")} \
        == review["segments"]
    assert doc["session"]["duration_s"] == review["session"]["duration_s"] == doc["timeline"]["end"]
    assert [[s["start"], s["end"]] for s in doc["timeline"]["silences"] if s["duration"] >= 3] == review["silences"]
    assert doc["recording_pauses"] == review["pauses"] and doc["outages"] == review["interruptions"]

    # Tags with their edits, undone ones left out; nudges; samples; recordings on disk.
    tags = {t["id"]: t for t in doc["tags"]}
    assert set(tags) == {"tag-live-0001", "tag-review-01"}
    moved = tags["tag-live-0001"]
    assert (moved["session_time"], moved["original_session_time"], moved["clicked_at"]) == (14.0, 12.5, 17.5)
    assert moved["note"] == NOTE and moved["updated_at"] is not None and moved["origin"] == "live"
    assert tags["tag-review-01"]["origin"] == "review" and tags["tag-review-01"]["updated_at"] is None
    assert [(n["id"], n["dismissed_at"]) for n in doc["nudges"]] == [("nudge-1", 33.5), ("nudge-2", None)]
    stored = store.indicator_samples(session)
    assert [s["t"] for s in doc["indicator_samples"]] == [x.session_time for x in stored]
    assert [s["share_session"] for s in doc["indicator_samples"]] == [x.share_session for x in stored]
    for r in doc["recordings"]:
        path = folder / r["path"]
        if which == "imported":
            assert path.is_file() and path.stat().st_size == r["bytes"]
    if which == "imported":
        assert doc["session"]["origin"] == "import" and doc["sources"] == {"coach": "coach.opus", "client": "client.opus"}
        assert [(r["participant"], r["kind"], r["start_s"]) for r in doc["recordings"]] == [
            ("coach", "audio", 0.0), ("client", "audio", 0.0)]
        assert doc["consent"] == [] and doc["participants"][1] == {
            "role": "client", "name": "Alex B.", "present": [[0.0, doc["session"]["duration_s"]]]}
    else:
        assert doc["sources"] is None and doc["session"]["origin"] == "live"
        assert [(c["participant"], c["scopes"]) for c in doc["consent"]] == [
            ("coach", ["analysis", "audio"]), ("client", ["analysis", "audio"])]
        assert doc["consent_withdrawn"] == [{"participant": "client", "session_time": 20.0, "scopes": ["video"]}]
        assert doc["participants"][0]["present"] == [[0.5, 46.0]]
        assert doc["recordings"][0]["gaps"] == [[22.0, 25.0]] and doc["recording_pauses"] == [[22.0, 25.0]]
        assert doc["outages"] == [33.0]


# -- csv ------------------------------------------------------------------------------------------


def read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_zip_holds_segments_tags_and_nudges_as_stored(data):
    _, store, imported, _ = data
    out = made(store, imported, "csv")
    assert out.media_type == "application/zip" and out.filename.endswith("-csv.zip")
    with zipfile.ZipFile(io.BytesIO(out.body)) as archive:
        assert sorted(archive.namelist()) == ["nudges.csv", "segments.csv", "tags.csv"]
        tables = {name[:-4]: archive.read(name).decode("utf-8") for name in archive.namelist()}
    doc = json.loads(made(store, imported, "json").body)

    segments = read_csv(tables["segments"])
    expected = sorted(((p, s) for p in ("coach", "client") for s in doc["timeline"]["segments"][p]),
                      key=lambda x: (x[1]["start"], x[1]["end"]))
    assert len(segments) == len(expected) > 10
    for row, (participant, s) in zip(segments, expected):
        assert row["participant"] == participant
        assert (float(row["start_s"]), float(row["end_s"])) == (s["start"], s["end"])
        assert float(row["duration_s"]) == pytest.approx(s["end"] - s["start"], abs=0.0015)
        assert row["backchannel"] == ("true" if s["backchannel"] else "false")
    talk = {p: sum(float(r["duration_s"]) for r in segments if r["participant"] == p) for p in ("coach", "client")}
    assert talk["coach"] == pytest.approx(doc["metrics"]["talk_time"]["coach"], abs=0.01)

    tags = read_csv(tables["tags"])
    assert [(t["id"], float(t["session_time_s"]), t["label"], t["note"]) for t in tags] == [
        ("tag-live-0001", 14.0, "Breakthrough", NOTE),  # quoted: commas, quotes and line breaks come back as written
        ("tag-review-01", 40.0, "Resist & <push>", "")]
    assert tags[0]["original_session_time_s"] == "12.500" and tags[0]["updated_at"].endswith("Z")
    nudges = read_csv(tables["nudges"])
    assert [(n["id"], n["kind"], n["text"], n["dismissed_at_s"]) for n in nudges] == [
        ("nudge-1", "talk_balance", "Listen", "33.500"), ("nudge-2", "wait", "Wait", "")]
    # One table alone is the same table.
    assert made(store, imported, "csv", "tags").body.decode() == tables["tags"]


# -- WebVTT ---------------------------------------------------------------------------------------

TIMING = re.compile(r"(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})")
REFERENCES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&nbsp;": "\u00a0"}


def parse_vtt(text: str) -> list[dict]:
    """A strict reading of a WebVTT file (W3C WebVTT, the file structure): the signature line,
    blocks separated by blank lines, NOTE blocks, cues of an optional identifier, a timing line and
    text. Fails on anything a conforming parser would read differently from what was meant."""
    assert text.startswith("WEBVTT") and "\r" not in text
    blocks = [b for b in text.split("\n\n") if b.strip()]
    header, cues = blocks[0], []
    assert header.splitlines()[0] == "WEBVTT" and "-->" not in header
    for block in blocks[1:]:
        lines = block.strip("\n").split("\n")
        if lines[0].startswith("NOTE"):
            assert "-->" not in block
            continue
        ident = None
        if "-->" not in lines[0]:
            ident, lines = lines[0], lines[1:]
        match = TIMING.fullmatch(lines[0])
        assert match, lines[0]
        g = [int(x) for x in match.groups()]
        start, end = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000, g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        assert end > start
        body = lines[1:]
        assert body and all(line.strip() for line in body) and not any("-->" in line for line in body)
        raw = "\n".join(body)
        assert not re.search(r"<|&(?!amp;|lt;|gt;|nbsp;)", raw), raw  # no markup; only these references
        plain = re.sub(r"&(amp|lt|gt|nbsp);", lambda m: REFERENCES[m.group(0)], raw)
        cues.append({"id": ident, "start": start, "end": end, "raw": raw, "text": plain})
    return cues


def test_vtt_has_a_cue_per_tag_and_a_metadata_cue_per_nudge(data):
    _, store, _, live = data
    out = made(store, live, "vtt")
    assert out.media_type.startswith("text/vtt") and out.filename.endswith(".vtt")
    cues = parse_vtt(out.body.decode("utf-8"))
    assert [c["start"] for c in cues] == sorted(c["start"] for c in cues)
    by_id = {c["id"]: c for c in cues}
    assert set(by_id) == {"tag-tag-live-0001", "tag-tag-review-01", "nudge-nudge-1", "nudge-nudge-2"}
    moved = by_id["tag-tag-live-0001"]
    assert (moved["start"], moved["end"]) == (14.0, 19.0)
    # The note as written, but for the blank lines, which would end the cue.
    expected = "Breakthrough: " + "\n".join(line.strip() for line in NOTE.splitlines() if line.strip())
    assert moved["text"] == expected
    assert by_id["tag-tag-review-01"]["text"] == "Resist & <push>"
    nudge = by_id["nudge-nudge-1"]
    assert (nudge["start"], nudge["end"]) == (30.0, 33.5)  # shown until it was dismissed
    assert json.loads(nudge["raw"]) == {"type": "nudge", "kind": "talk_balance", "text": "Listen", "dismissed_at": 33.5}
    assert (by_id["nudge-nudge-2"]["start"], by_id["nudge-nudge-2"]["end"]) == (60.0, 65.0)
    only_tags = parse_vtt(made(store, live, "vtt", "tags").body.decode())
    assert [c["id"] for c in only_tags] == ["tag-tag-live-0001", "tag-tag-review-01"]


def test_vtt_text_can_never_break_out_of_its_cue():
    for text in ["a --> b", "x\n\ny", "<c.red>no</c>", "&lt; stays", "--&gt;", "\n\n", "é ☃ 😀"]:
        escaped = exports.vtt_text(text)
        assert "-->" not in escaped and "\n\n" not in escaped and "<" not in escaped
    payload = {"text": "<b> & --> </b>"}
    line = exports.vtt_json(payload)
    assert json.loads(line) == payload and "-->" not in line and "<" not in line and "&" not in line
    assert exports.vtt_time(3723.4567) == "01:02:03.457"


# -- RTTM and Audacity ----------------------------------------------------------------------------


def test_rttm_has_a_line_per_segment_of_the_stored_timeline(data):
    _, store, _, live = data
    lines = made(store, live, "rttm").body.decode().splitlines()
    doc = json.loads(made(store, live, "json").body)
    segments = sorted((s["start"], s["end"], p) for p in ("coach", "client") for s in doc["timeline"]["segments"][p])
    assert len(lines) == len(segments) == 4
    for line, (start, end, who) in zip(lines, segments):
        f = line.split()
        assert f[0] == "SPEAKER" and f[1] == live and f[2] == "1" and f[7] == who
        assert (float(f[3]), float(f[4])) == pytest.approx((start, end - start), abs=1e-9)


def test_audacity_labels_are_turns_and_tags(data):
    _, store, imported, _ = data
    out = made(store, imported, "audacity").body.decode()
    rows = [line.split("\t") for line in out.splitlines()]
    assert all(len(r) == 3 for r in rows)
    doc = json.loads(made(store, imported, "json").body)
    turns = [r for r in rows if r[2].endswith(" turn")]
    tags = [r for r in rows if r[2].startswith("Tag: ")]
    assert len(turns) == len(doc["timeline"]["turns"]) and len(tags) == 2 and len(rows) == len(turns) + 2
    assert [(float(a), float(b)) for a, b, _ in turns] == [(t["start"], t["end"]) for t in doc["timeline"]["turns"]]
    assert tags[0] == ["14.000000", "14.000000", "Tag: Breakthrough - " + " ".join(NOTE.split())]
    starts = [float(r[0]) for r in rows]
    assert starts == sorted(starts)


# -- the command ----------------------------------------------------------------------------------


def test_the_export_command_writes_each_format(data, tmp_path, capsys):
    folder, store, imported, _ = data
    out = tmp_path / "x.json"
    done = run("export", imported, "--data", folder, "--format", "json", "-o", out)  # a real process
    assert done.returncode == 0 and done.stdout == b""
    assert json.loads(out.read_text())["session"]["id"] == imported
    capsys.readouterr()
    assert main(["export", imported, "--data", str(folder), "--format", "csv", "--table", "nudges"]) == 0
    assert capsys.readouterr().out.startswith("id,session_time_s,kind,text,dismissed_at_s\r\n")
    for args, words in [(("nope", "--format", "json"), "no session nope"),
                        ((imported, "--format", "xml"), "one of json, csv, vtt, rttm, audacity"),
                        ((imported, "--format", "rttm", "--table", "tags"), "rttm has no tables"),
                        ((imported, "--format", "csv", "--table", "turns"), "segments, tags, nudges")]:
        assert main(["export", *map(str, args), "--data", str(folder)]) != 0
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], lines
