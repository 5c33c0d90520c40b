"""The review payload: everything the replay page draws, as one pure function of what was stored.

``GET /api/sessions/<session>/review`` answers ``build_review(...)`` (docs/review.md). Turns,
silences, overlaps and metrics come from ``timeline.build_timeline`` and ``metrics.compute``, the
same code as the live figures and ``livecoach analyze``, so the review never disagrees with what
the coach saw. The answer is sized for a 2-hour call: times to 1 ms, shares to 3 decimals, the
once-a-second samples column by column (a list of numbers per column, not an object per second).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .metrics import compute, share, talk_time
from .timeline import CLIENT, COACH, ROLES, Interval, Timeline, build_timeline, stored_segments

VERSION = 1
PART_FORMAT = 2
"""The timeline part's own format: a part kept by a build of another format is built again
(review_source's fingerprint). 2: ``absences``."""
SILENCE_SHOWN_S = 3.0
"""Silences drawn on the timeline: shorter ones are the ordinary gaps between turns."""
QUARTERS = 4
LONGEST = 5
"""How many of the longest silences and turns the summary lists."""
PAUSED, ON = "paused", "on"
TIMELINE_HEAD = ("duration_s", "state")
"""The timeline part's fields that the payload gives in its ``session``."""
RECORDING = "recording"
"""A recording's state while its call runs (store.RECORDING_STATES)."""


def build_review(
    session: dict,
    events: list[dict],
    tags: list[dict],
    nudges: list[dict],
    samples: list,
    recordings: list[dict],
    tag_kinds: list[dict],
    media_url: Callable[[str, str], str],
    now: float | None = None,
) -> dict:
    """The review payload of docs/review.md.

    ``now`` is the session time of a call still running (the live clock): the session lasts at
    least that long. The session is ``"live"`` while a ``now`` is given or a recording is still
    being written (state ``"recording"``), ``"ended"`` otherwise.
    """
    part = build_timeline_part(events, samples, recordings, now)
    head = {k: part.pop(k) for k in TIMELINE_HEAD}
    return assemble(session, head, tags, nudges, recordings, tag_kinds, media_url) | part


def build_timeline_part(events: list[dict], samples: list, recordings: list[dict], now: float | None = None) -> dict:
    """What the review draws from the event log and the samples: the costly part of the payload
    (timeline, metrics), which an ended session keeps unchanged; ``assemble`` makes the rest. Its
    ``TIMELINE_HEAD`` fields go into the payload's ``session``, the others are payload fields."""
    timeline = session_timeline(events, samples, recordings, now)
    duration = timeline.end
    silences = [s for s in timeline.silences if s.duration >= SILENCE_SHOWN_S]
    return {
        "duration_s": _r(duration),
        "state": "live" if now is not None or any(r.get("state") == RECORDING for r in recordings) else "ended",
        "segments": {p: [[_r(s.start), _r(s.end)] for s in timeline.segments[p]] for p in ROLES},
        "silences": _spans(silences),
        "overlaps": _spans(timeline.overlaps),
        "pauses": recording_pauses(events),
        "interruptions": sorted(_r(e["session_time"]) for e in _timed(events) if e["kind"] == "interrupted"),
        "absences": absences(events, duration),
        "samples": _samples(samples),
        "summary": {
            "metrics": compute(timeline).to_dict(),
            "quarters": _quarters(timeline),
            "longest_silences": [
                {"start": _r(s.start), "end": _r(s.end)} for s in _longest(timeline.silences)
            ],
            "longest_turns": [
                {"participant": t.participant, "start": _r(t.start), "end": _r(t.end)} for t in _longest(timeline.turns)
            ],
        },
    }


def session_timeline(events: list[dict], samples: list, recordings: list[dict], now: float | None = None) -> Timeline:
    """A stored session's timeline: its speech events' segments up to its end (the last sample,
    event or recording's end). The review and the exports (exports.py) both read a session so."""
    segments = stored_segments(events)
    return build_timeline(segments, _duration(segments, events, samples, recordings, now))


def assemble(
    session: dict,
    head: dict,
    tags: list[dict],
    nudges: list[dict],
    recordings: list[dict],
    tag_kinds: list[dict],
    media_url: Callable[[str, str], str],
) -> dict:
    """The payload's fields but the timeline part's: what a coach changes after the call (tags,
    the session's label) or what must be fresh on every answer (the media links). ``head`` is
    the timeline part's ``TIMELINE_HEAD``."""
    return {
        "version": VERSION,
        "session": {
            "id": session["id"],
            "label": session.get("label", ""),
            "client": session.get("client", session.get("label", "")),
            "origin": session.get("origin", "live"),
            "created_at": _r(session.get("created_at")),
            "duration_s": head["duration_s"],
            "state": head["state"],
            "video_recording": bool(session.get("video_recording")),
        },
        "tags": [_tag(t) for t in sorted(tags, key=lambda t: (t["session_time"], t.get("created_at") or 0))],
        "nudges": [_nudge(n) for n in sorted(nudges, key=lambda n: n["session_time"])],
        "recordings": [
            _recording(r, media_url)
            for r in sorted(recordings, key=lambda r: (_role_order(r.get("participant")), r.get("start_s") or 0.0))
        ],
        "tag_kinds": [{"id": k["id"], "label": k["label"]} for k in tag_kinds],
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _role_order(participant: str | None) -> int:
    """The coach first, then the client, then anyone else."""
    return ROLES.index(participant) if participant in ROLES else len(ROLES)


def _timed(events: Iterable[dict]) -> list[dict]:
    """Events that carry a session time (a few are logged before the session clock exists)."""
    return [e for e in events if e.get("session_time") is not None]


def _duration(segments: dict, events: list[dict], samples: list, recordings: list[dict], now: float | None) -> float:
    """The largest of: the last sample, the last speech end, the last event, each recording's end
    (and the live clock, for a call still running)."""
    ends = [0.0]
    ends += [s.session_time for s in samples]
    ends += [b for spans in segments.values() for _, b in spans]
    ends += [e["session_time"] for e in _timed(events)]
    ends += [(r.get("start_s") or 0.0) + (r.get("duration_s") or 0.0) for r in recordings]
    if now is not None:
        ends.append(now)
    return max(float(x) for x in ends)


def _spans(intervals: Iterable[Interval]) -> list[list[float]]:
    return [[_r(i.start), _r(i.end)] for i in intervals]


ABSENT, CONNECTED = "absent", "connected"
STATE_OF = {"joined": CONNECTED, "left": ABSENT}
"""The participant's state after each event that changes it (a ``presence`` event names its own)."""


def absences(events: list[dict], duration: float) -> dict[str, list[list]]:
    """Each participant's spans of the call in which nothing of them could be heard, as
    ``[start, end, state]``: ``absent`` (not in the call: before joining, after leaving, while
    a killed call was down), ``muted``, or ``no-audio`` (in the call, but their audio stopped
    coming: a network that dropped). From the ``joined``, ``left`` and ``presence`` events."""
    out: dict[str, list[list]] = {p: [] for p in ROLES}
    state, since = dict.fromkeys(ROLES, ABSENT), dict.fromkeys(ROLES, 0.0)
    for e in sorted(_timed(events), key=lambda e: e["session_time"]):
        who, new = e.get("participant"), STATE_OF.get(e["kind"]) or (e.get("state") if e["kind"] == "presence" else None)
        if who not in out or new is None or new == state[who]:
            continue
        at = min(float(e["session_time"]), duration)
        if state[who] != CONNECTED and at > since[who]:
            out[who].append([_r(since[who]), _r(at), state[who]])
        state[who], since[who] = new, at
    for who in ROLES:
        if state[who] != CONNECTED and duration > since[who]:
            out[who].append([_r(since[who]), _r(duration), state[who]])
    return out


def recording_pauses(events: list[dict]) -> list[list[float | None]]:
    """The coach's recording pauses, from ``recording`` events (state on / paused / off): a pause
    runs from "paused" to the next "on". One still open at the end has a null end, also across an
    "off" (the recording ended while paused). Events per participant repeat the same pause: a
    "paused" while paused, or an "on" while not, changes nothing."""
    out: list[list[float | None]] = []
    since: float | None = None
    for e in sorted((e for e in _timed(events) if e["kind"] == "recording"), key=lambda e: e["session_time"]):
        state = e.get("state")
        if state == PAUSED and since is None:
            since = e["session_time"]
        elif state == ON and since is not None:
            out.append([_r(since), _r(e["session_time"])])
            since = None
    if since is not None:
        out.append([_r(since), None])
    return out


def _tag(t: dict) -> dict:
    original = t.get("original_session_time")
    return {
        "id": t["id"],
        "kind": t["kind"],
        "label": t["label"],
        "session_time": _r(t["session_time"]),
        "original_session_time": _r(t["session_time"] if original is None else original),
        "clicked_at": _r(t.get("clicked_at")),
        "note": t.get("note") or "",
        "origin": t.get("origin") or "live",
        "created_at": _r(t.get("created_at")),
    }


def _nudge(n: dict) -> dict:
    return {
        "id": n["id"],
        "kind": n["kind"],
        "text": n["text"],
        "session_time": _r(n["session_time"]),
        "dismissed_at": _r(n.get("dismissed_at")),
    }


def _samples(samples: list) -> dict[str, list]:
    return {
        "t": [_r(s.session_time) for s in samples],
        "share_window": [_r(s.share_window) for s in samples],
        "share_session": [_r(s.share_session) for s in samples],
    }


def _recording(r: dict, media_url: Callable[[str, str], str]) -> dict:
    return {
        "id": r["id"],
        "participant": r["participant"],
        "kind": r["kind"],
        "media_type": r["media_type"],
        "start_s": _r(r.get("start_s") or 0.0),
        "duration_s": _r(r.get("duration_s")),
        "state": r.get("state"),
        "gaps": [[_r(a), _r(b)] for a, b in r.get("gaps") or []],
        "url": media_url(r["id"], "file"),
        "peaks_url": media_url(r["id"], "peaks"),
    }


def _quarters(timeline: Timeline) -> list[dict]:
    """The coach's share of the talk in each quarter of the call (null when nobody spoke in it)."""
    out = []
    for i in range(QUARTERS):
        a, b = timeline.end * i / QUARTERS, timeline.end * (i + 1) / QUARTERS
        coach = talk_time(timeline.segments[COACH], a, b)
        client = talk_time(timeline.segments[CLIENT], a, b)
        out.append({"start": _r(a), "end": _r(b), "talk_share_coach": _r(share(coach, client))})
    return out


def _longest(items: Iterable[Any]) -> list[Any]:
    """The longest few, longest first; of equal length, the earlier first."""
    return sorted(items, key=lambda x: (-x.duration, x.start))[:LONGEST]
