"""A session's one-page report, in the three layers of the seed articles (docs/library.md):
participation (attendance, duration, talk balance), behaviour (wait time, silences, turns,
interruptions, nudges given) and results (the tags with their notes, the coach's summary and next
steps).

Every figure is read from the review payload (``review_source.load_review``: the same timeline and
metrics code as the review, the library and ``livecoach analyze``); attendance from the joined
and left events. A shared copy leaves out the parts the coach chose (``PARTS``): they are not in
its model at all, so no rendering of it can show them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from . import review_source
from .library import iso_time, targets
from .store import Store
from .timeline import ROLES

VERSION = 1
PARTS = ("notes", "nudges", "behaviour", "tags", "summary", "next_steps")
"""What a shared copy may leave out: the tags' notes, the nudges the coach was given, the whole
behaviour layer (the coach's own figures), the tags, the coach's summary, the next steps."""
MAX_TEXT = 10_000
"""The longest summary or next steps a coach may write, in characters."""


class UnknownPart(ValueError):
    """A part to leave out that is not one of ``PARTS``."""


def parts(text: str | None) -> frozenset[str]:
    """The parts named in a comma-separated list (``without=notes,nudges``)."""
    named = frozenset(p.strip() for p in (text or "").split(",") if p.strip())
    unknown = sorted(named - set(PARTS))
    if unknown:
        raise UnknownPart(f"'{unknown[0]}' is not a part of the report; the parts are {', '.join(PARTS)}")
    return named


def build_report(store: Store, session: str, without: Iterable[str] = ()) -> dict[str, Any]:
    """The report's model (docs/library.md), less the parts ``without`` names."""
    without = frozenset(without)
    review = json.loads(review_source.load_review(store, session, lambda name: ""))
    stored = store.get_session(session)
    coach_id = store.coach_of(session)
    settings = store.coach_settings(coach_id)
    coach = next((c for c in store.coaches() if c.id == coach_id), None)
    metrics = review["summary"]["metrics"]
    duration = review["session"]["duration_s"]
    labels = {k["id"]: k["label"] for k in settings["tag_kinds"]}
    tags = review["tags"]
    counts: dict[str, dict[str, Any]] = {}
    for t in tags:
        counts.setdefault(t["kind"], {"kind": t["kind"], "label": labels.get(t["kind"], t["label"]), "count": 0})
        counts[t["kind"]]["count"] += 1
    text = store.report_text(session)
    model: dict[str, Any] = {
        "version": VERSION,
        "session": {
            "id": stored.id, "client": stored.client, "label": stored.label, "origin": stored.origin,
            "created_at": review["session"]["created_at"], "started": iso_time(stored.created_at),
            "duration_s": duration, "state": review["session"]["state"],
            "coach": coach.name if coach else "",
        },
        "participation": {
            "attendance": attendance(store.events(session, ("joined", "left")), review["segments"], duration),
            "duration_s": duration,
            "talk_time_s": {p: metrics["talk_time"].get(p, 0.0) for p in ROLES},
            "talk_share_coach": metrics["talk_share_coach"],
            "quarters": review["summary"]["quarters"],
        },
        "behaviour": {
            "median_wait_s": metrics["median_wait"],
            "waits": len(metrics["wait_times"]),
            "filled_silences": metrics["filled_silences"],
            "longest_silence_s": metrics["longest_silence"],
            "long_silences": metrics["long_silences"],
            "longest_silences": review["summary"]["longest_silences"],
            "longest_turn_s": {p: metrics["longest_monologue"].get(p, 0.0) for p in ROLES},
            "longest_turns": review["summary"]["longest_turns"],
            "switches": metrics["switches"],
            "interactivity_per_min": metrics["interactivity_per_min"],
            "interruptions": {p: metrics["interruptions"].get(p, 0) for p in ROLES},
            "overlaps": metrics["overlaps"],
            "nudges": [{k: n[k] for k in ("kind", "text", "session_time", "dismissed_at")} for n in review["nudges"]],
        },
        "results": {
            "tags": [{k: t[k] for k in ("id", "kind", "label", "session_time", "note")} for t in tags],
            "tag_counts": sorted(counts.values(), key=lambda c: (-c["count"], c["label"])),
            "summary": text["summary"],
            "next_steps": text["next_steps"],
            "text_updated_at": text["updated_at"],
        },
        "timeline": {"segments": review["segments"], "silences": review["silences"]},
        "targets": targets(settings),
        "without": sorted(without),
    }
    return _leave_out(model, without)


def _leave_out(model: dict[str, Any], without: frozenset[str]) -> dict[str, Any]:
    """The model without the parts named: gone, not emptied (an empty summary is not one left out)."""
    results, behaviour = model["results"], model["behaviour"]
    if "notes" in without:
        for t in results["tags"]:
            t.pop("note")
    if "nudges" in without:
        behaviour.pop("nudges")
    if "behaviour" in without:
        model["behaviour"] = None
        model["timeline"] = None  # the speech it would be read from goes too
    if "tags" in without:
        results.pop("tags")
        results.pop("tag_counts")
    for part in ("summary", "next_steps"):
        if part in without:
            results.pop(part)
    if "summary" in without and "next_steps" in without:
        results.pop("text_updated_at")
    return model


def attendance(events: list[dict], segments: dict[str, list], duration: float) -> dict[str, dict[str, Any]]:
    """Each participant's attendance: from their joined and left events (a call held here), or,
    without any (an imported recording), whether they spoke. ``present_s`` is their time in the
    call; ``joins`` counts their joins (more than one: they came back, e.g. after a dropped line)."""
    out: dict[str, dict[str, Any]] = {}
    for role in ROLES:
        mine = sorted((e for e in events if e["participant"] == role), key=lambda e: e["session_time"] or 0.0)
        if not events:
            out[role] = {"present": bool(segments.get(role)), "joined_at_s": None, "present_s": None, "joins": None}
            continue
        since, present, joins, first = None, 0.0, 0, None
        for e in mine:
            t = min(max(e["session_time"] or 0.0, 0.0), duration)
            if e["kind"] == "joined" and since is None:
                since, joins = t, joins + 1
                first = t if first is None else first
            elif e["kind"] == "left" and since is not None:
                present += t - since
                since = None
        if since is not None:
            present += duration - since
        out[role] = {"present": joins > 0, "joined_at_s": first, "present_s": round(present, 3), "joins": joins}
    return out


def check_text(body: dict[str, Any]) -> tuple[str, str]:
    """The summary and next steps of a PUT's body; ValueError says what is wrong."""
    out = []
    for key in ("summary", "next_steps"):
        value = body.get(key, "")
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ValueError(f"'{key}' must be a string of at most {MAX_TEXT} characters")
        out.append(value.replace("\r\n", "\n"))
    return out[0], out[1]

