"""The coach's library: every session's figures by client and date, and a client's trends
(docs/library.md).

A figure here is never computed a second way: each comes from the review's timeline part
(``review_source.timeline_part``: ``timeline.build_timeline`` and ``metrics.compute``, the code
of the live figures and ``livecoach analyze``), read once and kept in the store
(``session_figures``), so that a library of a thousand sessions is one query. Kept figures carry
a fingerprint of what they were built from; the call's end refreshes them (``review_source.warm``),
and a library read rebuilds any that are stale (tags changed in review, a recording finished or
purged) or missing (sessions from before the library), within a time budget.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from . import __version__, review_source
from .config import TimelineConfig
from .store import LibraryRow, Store, StoredSession
from .timeline import CLIENT, COACH

VERSION = 1
"""Of the library's and the trends' answers (docs/library.md)."""
FIGURES_VERSION = 1
"""What the kept figures mean: a change of it (or of the package's version) rebuilds them all."""
NOT_RECORDED = ("failed",)
"""A recording in this state holds nothing to replay: the session does not count as recorded."""
TREND_FIGURES = ("talk_share_coach", "median_wait_s", "longest_silence_s", "longest_turn_coach_s",
                 "longest_turn_client_s", "interruptions_coach", "interruptions_client")
"""The trends' figures, in the order of the CSV's columns (docs/library.md)."""

log = logging.getLogger(__name__)


class BadQuery(ValueError):
    """A filter of the library's query is not valid; the message says which and why."""


# -- one session's figures ------------------------------------------------------------------


def fingerprint(inputs: str) -> str:
    """What kept figures were built from: this code and the store's ``LibraryRow.inputs``."""
    return f"{__version__};figures-{FIGURES_VERSION};{inputs}"


def build_figures(store: Store, session: str) -> dict[str, Any]:
    """The session's figures (the columns of ``session_figures`` but its key and fingerprint),
    times and shares to 3 decimals as the review gives them."""
    head, members = review_source.timeline_part(store, session)
    metrics = json.loads(b"{" + members + b"}")["summary"]["metrics"]
    recordings = store.recordings(session, gaps=False)
    return {
        "live": head["state"] != review_source.ENDED,
        "duration_s": _r(head["duration_s"]),
        "talk_coach_s": _r(metrics["talk_time"].get(COACH, 0.0)),
        "talk_client_s": _r(metrics["talk_time"].get(CLIENT, 0.0)),
        "talk_share_coach": _r(metrics["talk_share_coach"]),
        "median_wait_s": _r(metrics["median_wait"]),
        "waits": len(metrics["wait_times"]),
        "filled_silences": metrics["filled_silences"],
        "longest_silence_s": _r(metrics["longest_silence"]),
        "long_silences": metrics["long_silences"],
        "longest_turn_coach_s": _r(metrics["longest_monologue"].get(COACH, 0.0)),
        "longest_turn_client_s": _r(metrics["longest_monologue"].get(CLIENT, 0.0)),
        "interruptions_coach": metrics["interruptions"].get(COACH, 0),
        "interruptions_client": metrics["interruptions"].get(CLIENT, 0),
        "switches": metrics["switches"],
        "nudges": len(store.nudges(session)),
        "tag_counts": dict(Counter(t["kind"] for t in store.tags(session))),
        "recorded": any(r["state"] not in NOT_RECORDED for r in recordings),
    }


def refresh(store: Store, session: str) -> None:
    """Build and keep the session's figures now (its call has just ended)."""
    for row in store.library_rows(session_id=session):
        _rebuild(store, row)


def _rebuild(store: Store, row: LibraryRow) -> LibraryRow:
    """The row with figures built now and kept. The fingerprint is of the inputs read before the
    build: figures never claim rows they have not seen (at worst they are rebuilt once more)."""
    made = fingerprint(row.inputs)
    figures = build_figures(store, row.session.id)
    store.keep_figures(row.session.id, made, figures)
    return row._replace(figures=figures | {"fingerprint": made})


def fresh(row: LibraryRow) -> bool:
    return row.figures is not None and row.figures["fingerprint"] == fingerprint(row.inputs)


def up_to_date(store: Store, rows: list[LibraryRow], budget_s: float | None = None) -> tuple[list[LibraryRow], int]:
    """The rows with their figures rebuilt where stale or missing, newest session first, until
    ``budget_s`` seconds have gone (None: all); and how many are left stale. A read after an
    upgrade (no figures kept yet) answers within its budget and the page asks again."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    out, pending = [], 0
    for row in rows:
        if not fresh(row):
            if deadline is None or time.monotonic() < deadline:
                try:
                    row = _rebuild(store, row)
                except Exception:  # one damaged session must not take the whole library down
                    log.exception("session %s: its library figures could not be built", row.session.id)
            else:
                pending += 1
        out.append(row)
    return out, pending


# -- the library and a client's trends ------------------------------------------------------


def targets(settings: dict[str, Any]) -> dict[str, float]:
    """The coach's targets drawn on the trends: their nudge thresholds (coach_settings) and the
    wait-time target (config.TimelineConfig)."""
    nudges = settings["nudges"]
    return {
        "talk_share_coach_max": nudges["talk_balance"]["share"],
        "wait_min_s": TimelineConfig().wait_target_s,
        "turn_max_s": nudges["monologue"]["seconds"],
    }


def entry(session: StoredSession, figures: dict[str, Any] | None) -> dict[str, Any]:
    """A session as the library's answer lists it (docs/library.md); ``figures`` None: not built yet."""
    out: dict[str, Any] = {
        "id": session.id, "client": session.client, "label": session.label, "created_at": _r(session.created_at),
        "origin": session.origin, "video_recording": bool(session.video_recording),
    }
    if figures is None:
        return out | {"figures": None}
    tags = figures["tag_counts"]
    return out | {"figures": {  # kept rounded (build_figures): read as they are
        "live": figures["live"],
        "duration_s": figures["duration_s"],
        "talk_time_s": {COACH: figures["talk_coach_s"], CLIENT: figures["talk_client_s"]},
        "talk_share_coach": figures["talk_share_coach"],
        "median_wait_s": figures["median_wait_s"],
        "waits": figures["waits"],
        "filled_silences": figures["filled_silences"],
        "longest_silence_s": figures["longest_silence_s"],
        "long_silences": figures["long_silences"],
        "longest_turn_s": {COACH: figures["longest_turn_coach_s"], CLIENT: figures["longest_turn_client_s"]},
        "interruptions": {COACH: figures["interruptions_coach"], CLIENT: figures["interruptions_client"]},
        "switches": figures["switches"],
        "nudges": figures["nudges"],
        "tags": dict(sorted(tags.items())),
        "tag_count": sum(tags.values()),
        "recorded": figures["recorded"],
    }}


def list_entry(session: StoredSession, figures: dict[str, Any] | None) -> dict[str, Any]:
    """A session as the library page's list shows it (``fields=list``, docs/library.md): half the
    size of ``entry``, so half the server's time to write it and the page's to read it."""
    out: dict[str, Any] = {"id": session.id, "client": session.client, "label": session.label,
                           "created_at": _r(session.created_at), "origin": session.origin}
    if figures is None:
        return out | {"figures": None}
    tags = figures["tag_counts"]
    return out | {"figures": {
        "live": figures["live"],
        "duration_s": figures["duration_s"],
        "talk_share_coach": figures["talk_share_coach"],
        "median_wait_s": figures["median_wait_s"],
        "tags": dict(sorted(tags.items())),
        "tag_count": sum(tags.values()),
        "recorded": figures["recorded"],
    }}


def clients(rows: Iterable[LibraryRow]) -> list[dict[str, Any]]:
    """Each client's name, session count and latest session, by name (case-insensitively)."""
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        c = seen.setdefault(row.session.client, {"name": row.session.client, "sessions": 0, "last": None})
        c["sessions"] += 1
        c["last"] = max(c["last"] or 0.0, _r(row.session.created_at))
    return sorted(seen.values(), key=lambda c: (c["name"].casefold(), c["name"]))


def library(store: Store, coach_id: str, client: str | None = None, since: float | None = None,
            until: float | None = None, tag_kind: str | None = None, budget_s: float | None = None,
            listed: bool = False) -> dict[str, Any]:
    """The library's answer (docs/library.md): the coach's sessions that pass the filters, newest
    first, with every client of the coach (for the filter) and their tag kinds and targets; each
    session with what the page's list shows alone when ``listed``."""
    make_entry = list_entry if listed else entry
    rows, pending = up_to_date(store, store.library_rows(coach_id), budget_s)
    settings = store.coach_settings(coach_id)
    chosen = [
        row for row in rows
        if (client is None or row.session.client == client)
        and (since is None or row.session.created_at >= since)
        and (until is None or row.session.created_at < until)
        and (tag_kind is None or (row.figures is not None and row.figures["tag_counts"].get(tag_kind, 0) > 0))
    ]
    return {
        "version": VERSION,
        "sessions": [make_entry(row.session, row.figures) for row in chosen],
        "clients": clients(rows),
        "tag_kinds": settings["tag_kinds"],
        "targets": targets(settings),
        "pending": pending,
    }


def trends(store: Store, coach_id: str, client: str, budget_s: float | None = None) -> dict[str, Any] | None:
    """A client's sessions oldest first, one point each (None: the coach has no such client)."""
    rows = [row for row in store.library_rows(coach_id) if row.session.client == client]
    if not rows:
        return None
    rows, pending = up_to_date(store, rows[::-1], budget_s)
    settings = store.coach_settings(coach_id)
    return {
        "version": VERSION,
        "client": client,
        "points": [entry(row.session, row.figures) for row in rows],
        "tag_kinds": settings["tag_kinds"],
        "targets": targets(settings),
        "pending": pending,
    }


def trends_csv(answer: dict[str, Any]) -> str:
    """The trends as CSV: one row per session, oldest first; a tag kind's column per kind the coach
    has or a session used (docs/library.md)."""
    kinds = [k["id"] for k in answer["tag_kinds"]]
    kinds += sorted({k for p in answer["points"] if p["figures"] for k in p["figures"]["tags"]} - set(kinds))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["session", "started", "client", "duration_s", *TREND_FIGURES, "waits",
                     "nudges", "tag_count", *(f"tags_{k}" for k in kinds), "recorded"])
    for p in answer["points"]:
        f = p["figures"] or {}
        flat = _flat(f) if f else {}
        writer.writerow([
            p["id"], iso_time(p["created_at"]), _cell(p["client"]), _num(flat.get("duration_s")),
            *(_num(flat.get(name)) for name in TREND_FIGURES), _num(flat.get("waits")), _num(flat.get("nudges")),
            _num(flat.get("tag_count")), *(_num(f.get("tags", {}).get(k, 0)) if f else "" for k in kinds),
            ("yes" if f.get("recorded") else "no") if f else "",
        ])
    return out.getvalue()


def _flat(figures: dict[str, Any]) -> dict[str, Any]:
    """An entry's figures with the per-participant ones as their CSV names."""
    return figures | {
        "longest_turn_coach_s": figures["longest_turn_s"][COACH],
        "longest_turn_client_s": figures["longest_turn_s"][CLIENT],
        "interruptions_coach": figures["interruptions"][COACH],
        "interruptions_client": figures["interruptions"][CLIENT],
    }


# -- the query's values ----------------------------------------------------------------------


def parse_time(value: str, name: str, end: bool = False) -> float:
    """``from`` or ``to`` of a query: epoch seconds, an ISO 8601 time (UTC unless it says), or a
    date, which means that whole day in UTC (``to`` includes it)."""
    text = value.strip()
    try:
        return float(text) if text.replace(".", "", 1).isdigit() else _iso(text, end)
    except ValueError:
        raise BadQuery(f"'{name}' is a date (2026-11-30), an ISO 8601 time or epoch seconds") from None


def _iso(text: str, end: bool) -> float:
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    seconds = when.timestamp()
    return seconds + 86400.0 if end and len(text) == 10 else seconds


def iso_time(epoch: float | None) -> str:
    """A moment as ISO 8601 in UTC, to the second."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _num(value: Any) -> str:
    return "" if value is None else str(value)


def _cell(text: str) -> str:
    """A text cell a spreadsheet does not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
