"""The review read from a real store: an ended session's timeline part is built once and kept,
and what changes after the call (tags, new events, a recording that finishes) is never stale."""

from __future__ import annotations

import json

import pytest

from livecoach.review import build_review
from livecoach.review_source import REVIEW_EVENTS, load_review as load_json
from livecoach.store import IndicatorSample, Store


def link(name: str) -> str:
    return f"/media/x/{name}?k=1"


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    yield store
    store.close()


def kept_head(kept: tuple[str, bytes]) -> dict:
    return json.loads(kept[1].split(b"\n", 1)[0])


def ended_session(store: Store) -> str:
    """A short call: speech of both, samples, a tag, a nudge and a finished audio recording."""
    session = store.create_session("Alex").id
    events = [(1.0, end + 0.3, "speech", who, {"start": start, "end": end})
              for who, start, end in [("coach", 1.0, 8.0), ("client", 9.0, 20.0), ("coach", 26.0, 30.0)]]
    store.log_events(session, events)
    store.add_indicator_samples(session, [IndicatorSample(t, [], 0.5, 0.5, 0.0) for t in range(1, 31)])
    store.put_tag(session, "t1", "breakthrough", "Breakthrough", 12.0)
    store.add_nudge(session, "n1", "wait", "Wait", 9.0)
    store.create_recording(session, "coach-audio-1", "coach", "audio", "coach-audio-1.webm", "audio/webm", 0.0)
    store.update_recording(session, "coach-audio-1", state="finished", duration_s=31.0)
    return session


def load_review(store: Store, session: str, link) -> dict:
    return json.loads(load_json(store, session, link))


def from_scratch(store: Store, session: str) -> dict:
    """The payload as the pure function builds it from every stored row."""
    stored = store.get_session(session)
    recordings = store.recordings(session)
    names = {r["id"]: r["name"] for r in recordings}
    return build_review(
        {"id": session, "label": stored.label, "created_at": stored.created_at,
         "video_recording": stored.video_recording},
        store.events(session, REVIEW_EVENTS), store.tags(session), store.nudges(session), store.talk_balance(session),
        recordings, store.coach_settings(store.coach_of(session))["tag_kinds"],
        lambda rid, what: link(names[rid] if what == "file" else f"{rid}.peaks"))


def test_an_ended_session_is_kept_and_answered_the_same_as_built_from_scratch(store):
    session = ended_session(store)
    first = load_review(store, session, link)
    assert first == from_scratch(store, session)
    kept = store.cached_review(session)
    assert kept is not None and kept_head(kept) == {"duration_s": 31.0, "state": "ended"}
    # The second answer comes from what was kept: a marker put into it shows.
    store.keep_review(session, kept[0], kept[1].replace(b'"summary":{', b'"summary":{"marker":true,'))
    second = load_review(store, session, link)
    assert second["summary"]["marker"] is True
    del second["summary"]["marker"]
    assert second == first


def test_tags_label_and_nudges_are_read_fresh_each_time(store):
    session = ended_session(store)
    load_review(store, session, link)
    store.update_tag(session, "t1", session_time=14.0, note="moved in review")
    store.put_tag(session, "t2", "resistance", "Resistance", 25.0, origin="review")
    store.dismiss_nudge(session, "n1", 10.0)
    payload = load_review(store, session, link)
    assert [(t["id"], t["session_time"], t["note"]) for t in payload["tags"]] == [
        ("t1", 14.0, "moved in review"), ("t2", 25.0, "")]
    assert payload["nudges"][0]["dismissed_at"] == 10.0
    assert payload == from_scratch(store, session)


def test_new_events_or_samples_after_the_end_are_never_answered_stale(store):
    session = ended_session(store)
    load_review(store, session, link)
    store.log_events(session, [(2.0, 41.0, "speech", "client", {"start": 35.0, "end": 40.7})])
    payload = load_review(store, session, link)
    assert payload["segments"]["client"][-1] == [35.0, 40.7]
    store.add_indicator_samples(session, [IndicatorSample(50.0, [], 0.4, 0.4, 0.0)])
    payload = load_review(store, session, link)
    assert payload["session"]["duration_s"] == 50.0 and payload == from_scratch(store, session)


def test_a_recording_still_being_written_is_not_kept_and_its_end_is_seen(store):
    session = ended_session(store)
    store.create_recording(session, "client-video-1", "client", "video", "video-client-1.webm", "video/webm", 2.0)
    payload = load_review(store, session, link)
    assert payload["session"]["state"] == "live"
    assert store.cached_review(session) is None
    store.update_recording(session, "client-video-1", state="finished", duration_s=60.0)
    payload = load_review(store, session, link)
    assert (payload["session"]["state"], payload["session"]["duration_s"]) == ("ended", 62.0)
    assert payload == from_scratch(store, session)


@pytest.mark.parametrize("damaged", [b"{not json", b"", b'{"duration_s":1}\n"x":1', b'{"duration_s":1,"state":"ended"}\n'])
def test_a_damaged_kept_part_is_built_again(store, damaged):
    session = ended_session(store)
    load_review(store, session, link)
    fingerprint, _ = store.cached_review(session)
    store.keep_review(session, fingerprint, damaged)
    assert load_review(store, session, link) == from_scratch(store, session)
    assert kept_head(store.cached_review(session))["duration_s"] == 31.0
