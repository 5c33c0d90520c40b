"""A session's review read from the store (docs/review.md), the costly part built once.

An ended 2-hour call's timeline, metrics and samples take about 100 ms to read, build and encode,
and they do not change once the call has ended; the tags (edited in review), the label and the
signed media links do. So ``review.build_timeline_part``'s answer is kept in the store, encoded,
with a fingerprint of what it was built from; each answer reads and encodes only the rest and
puts the kept bytes in as they are (a 2-hour call: about 10 ms instead of 40). The call warms
the cache as it ends (``warm``), so the coach's first look at the review is fast too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from . import __version__, library
from .review import PART_FORMAT, TIMELINE_HEAD, assemble, build_timeline_part
from .store import Store

REVIEW_EVENTS = ("speech", "recording", "interrupted", "joined", "left", "presence")
"""The events the review draws or dates the session's end by."""
ENDED = "ended"


def load_review(store: Store, session: str, link: Callable[[str], str]) -> bytes:
    """The review payload of the session as JSON (it exists: the caller checked its token);
    ``link`` makes the URL of one of its files, by name."""
    stored = store.get_session(session)
    recordings = store.recordings(session)
    names = {r["id"]: r["name"] for r in recordings}

    def media_url(recording: str, what: str) -> str:
        return link(names[recording] if what == "file" else f"{recording}.peaks")

    head, members = _timeline_part(store, session, recordings)
    rest = assemble(
        {"id": stored.id, "label": stored.label, "client": stored.client, "origin": stored.origin,
         "created_at": stored.created_at, "video_recording": stored.video_recording},
        head, store.tags(session), store.nudges(session), recordings,
        store.coach_settings(store.coach_of(session))["tag_kinds"], media_url,
    )
    return _encode(rest)[:-1] + b"," + members + b"}"


def warm(store: Store, session: str) -> None:
    """Build and keep the session's timeline part now (its call has just ended), and the
    library's figures from it."""
    _timeline_part(store, session, store.recordings(session, gaps=False))
    library.refresh(store, session)


def timeline_part(store: Store, session: str) -> tuple[dict[str, Any], bytes]:
    """The session's timeline part as the review answers it (kept, or built now): its
    ``TIMELINE_HEAD`` and the other members' JSON. The library's figures are read from it."""
    return _timeline_part(store, session, store.recordings(session, gaps=False))


def _timeline_part(store: Store, session: str, recordings: list[dict]) -> tuple[dict[str, Any], bytes]:
    """The timeline part's ``TIMELINE_HEAD`` and its other fields encoded as the members of a JSON
    object (without the braces), kept or built now. Kept as the head's JSON, a newline, the members."""
    fingerprint = _fingerprint(store, session, recordings)
    kept = store.cached_review(session)
    if kept is not None and kept[0] == fingerprint:
        head_json, _, members = kept[1].partition(b"\n")
        try:
            head = json.loads(head_json)
            if isinstance(head, dict) and set(head) == set(TIMELINE_HEAD) and members.startswith(b'"'):
                return head, members
        except ValueError:
            pass  # a damaged row is built again and replaced
    part = build_timeline_part(store.events(session, REVIEW_EVENTS), store.talk_balance(session), recordings)
    head = {k: part.pop(k) for k in TIMELINE_HEAD}
    members = _encode(part)[1:-1]
    if head["state"] == ENDED:
        store.keep_review(session, fingerprint, _encode(head) + b"\n" + members)
    return head, members


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _fingerprint(store: Store, session: str, recordings: list[dict]) -> str:
    """What the timeline part is built from: the code's version and the part's format, the
    counts of events and samples (both only grow; read before them, so a part never claims rows
    it has not seen), and each recording's place and state (a recording that finishes changes
    the session's end)."""
    files = "|".join(f"{r['id']}:{r['state']}:{r.get('start_s')}:{r.get('duration_s')}" for r in recordings)
    digest = hashlib.sha256(files.encode()).hexdigest()[:16]
    return f"{__version__}/{PART_FORMAT};{store.review_inputs(session)};{digest}"
