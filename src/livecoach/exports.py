"""A stored session in the formats people open elsewhere (docs/exports.md): ``json`` (everything),
``csv`` (segments, tags and nudges), ``vtt`` (tags as cues any player shows, nudges as metadata
cues), ``rttm`` (speech segments, for diarisation tools) and ``audacity`` (a label track).

Every figure is the review's: the timeline is ``review.session_timeline`` of the same rows, the
metrics ``metrics.compute`` of it, the RTTM lines ``report.timeline_rttm``'s, so an export never
disagrees with the replay page, nor, for an imported call, with ``livecoach analyze``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import consent as consent_text
from .importing import IMPORTED, source_file_id
from .metrics import Metrics, compute
from .report import timeline_rttm
from .review import RECORDING, recording_pauses, session_timeline
from .review_source import REVIEW_EVENTS
from .store import WITHDRAWN, Coach, IndicatorSample, Store, StoredSession
from .timeline import ROLES, Timeline

SCHEMA = "livecoach.export/1"
"""The JSON export's id: it changes when a key is removed, renamed or changes meaning."""
FORMATS = ("json", "csv", "vtt", "rttm", "audacity")
TABLES = {"csv": ("segments", "tags", "nudges"), "vtt": ("tags", "nudges"), "audacity": ("tags", "turns")}
"""The formats that hold several tables, and their names (``--table``, ``?table=``)."""
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8", "zip": "application/zip",
               "vtt": "text/vtt; charset=utf-8", "rttm": "text/plain; charset=utf-8",
               "audacity": "text/plain; charset=utf-8"}
EXTENSIONS = {"json": "json", "csv": "csv", "vtt": "vtt", "rttm": "rttm", "audacity": "txt"}
TAG_CUE_S = 5.0
"""How long a tag's cue shows in a player."""
NUDGE_CUE_S = 5.0
"""A nudge's metadata cue lasts until the coach dismissed it, or this long if they did not."""


class ExportError(ValueError):
    """An export that cannot be made as asked (an unknown format or table)."""


@dataclass(frozen=True)
class SessionData:
    """Everything an export is made from, read once."""

    session: StoredSession
    coach: Coach | None
    events: list[dict]
    timeline: Timeline
    metrics: Metrics
    tags: list[dict]
    nudges: list[dict]
    samples: list[IndicatorSample]
    recordings: list[dict]
    consents: list[dict]

    @property
    def state(self) -> str:
        return "live" if any(r.get("state") == RECORDING for r in self.recordings) else "ended"

    @property
    def sources(self) -> dict[str, str] | None:
        """The files an imported session was made from (None: a live call)."""
        found = [e for e in self.events if e["kind"] == IMPORTED]
        return found[-1].get("sources") if found else None

    def file_id(self) -> str:
        """RTTM's name of the session: an imported call's as ``livecoach analyze`` names its files,
        else the session's id."""
        sources = self.sources
        return source_file_id(sources) if sources else self.session.id


def load(store: Store, session_id: str) -> SessionData | None:
    """The session's rows (None: no such session)."""
    session = store.get_session(session_id)
    if session is None:
        return None
    events = store.events(session_id, (*REVIEW_EVENTS, WITHDRAWN, IMPORTED))
    samples = store.indicator_samples(session_id)
    recordings = store.recordings(session_id)
    timeline = session_timeline([e for e in events if e["kind"] in REVIEW_EVENTS], samples, recordings)
    return SessionData(
        session=session, coach=store.session_coach(session_id), events=events, timeline=timeline,
        metrics=compute(timeline), tags=store.tags(session_id), nudges=store.nudges(session_id), samples=samples,
        recordings=recordings, consents=store.consent_records(session_id),
    )


@dataclass(frozen=True)
class Export:
    body: bytes
    media_type: str
    filename: str


def export(data: SessionData, fmt: str, table: str | None = None) -> Export:
    """The session in ``fmt`` (one of FORMATS); ``table`` picks one table of a format in TABLES."""
    if fmt not in FORMATS:
        raise ExportError(f"the format is one of {', '.join(FORMATS)}, not {fmt!r}")
    if table is not None and table not in TABLES.get(fmt, ()):
        tables = TABLES.get(fmt)
        raise ExportError(f"{fmt} has the tables {', '.join(tables)}" if tables else f"{fmt} has no tables")
    stem = _stem(data.session) + (f"-{table}" if table else "")
    if fmt == "csv" and table is None:
        return Export(to_csv_zip(data), MEDIA_TYPES["zip"], f"{stem}-csv.zip")
    text = {
        "json": lambda: to_json(data),
        "csv": lambda: to_csv(data, table),
        "vtt": lambda: to_vtt(data, table),
        "rttm": lambda: to_rttm(data),
        "audacity": lambda: to_audacity(data, table),
    }[fmt]()
    return Export(text.encode("utf-8"), MEDIA_TYPES[fmt], f"{stem}.{EXTENSIONS[fmt]}")


def _stem(session: StoredSession) -> str:
    """A file name a coach recognises: the client's name (ASCII letters and digits), the call's
    date, the session's id."""
    client = re.sub(r"[^A-Za-z0-9]+", "-", session.client or session.label).strip("-")[:40]
    day = datetime.fromtimestamp(session.created_at, timezone.utc).strftime("%Y-%m-%d")
    return "-".join(part for part in ("livecoach", client, day, session.id) if part)


# -- json -----------------------------------------------------------------------------------------


def to_json(data: SessionData) -> str:
    """Everything about the session (docs/exports.md, export.schema.json)."""
    s = data.session
    document = {
        "schema": SCHEMA,
        "exported_at": _r(time.time()),
        "session": {
            "id": s.id, "label": s.label, "client": s.client, "origin": s.origin, "created_at": _r(s.created_at),
            "duration_s": _r(data.timeline.end), "state": data.state, "video_recording": bool(s.video_recording),
        },
        "participants": [
            {"role": role, "name": (data.coach.name if data.coach else "") if role == "coach" else s.client,
             "present": _presence(data.events, role)}
            for role in ROLES
        ],
        "consent": [
            {"participant": c["role"], "accepted_at": _r(c["accepted_at"]), "notice": c["notice"],
             "notice_version": consent_text.version(c["notice"]), "scopes": c["scopes"]}
            for c in data.consents
        ],
        "consent_withdrawn": [
            {"participant": e["participant"], "session_time": _r(e["session_time"]), "scopes": e.get("scopes", [])}
            for e in data.events if e["kind"] == WITHDRAWN
        ],
        "sources": data.sources,
        "timeline": data.timeline.to_dict(),
        "metrics": data.metrics.to_dict(),
        "tags": [_tag(t) for t in data.tags],
        "nudges": [_nudge(n) for n in data.nudges],
        "indicator_samples": [
            {"t": _r(x.session_time), "speaking": list(x.speaking), "share_session": _r(x.share_session),
             "share_window": _r(x.share_window), "current_silence": _r(x.current_silence)}
            for x in data.samples
        ],
        "recordings": [
            {"participant": r["participant"], "kind": r["kind"], "path": f"recordings/{s.id}/{r['name']}",
             "media_type": r["media_type"], "start_s": _r(r["start_s"]), "duration_s": _r(r.get("duration_s")),
             "state": r["state"], "gaps": [[_r(a), _r(b)] for a, b in r.get("gaps") or []], "bytes": r["bytes"]}
            for r in sorted(data.recordings, key=lambda r: (_role_order(r["participant"]), r["kind"], r["start_s"]))
        ],
        "recording_pauses": recording_pauses(data.events),
        "outages": sorted(_r(e["session_time"]) for e in data.events
                          if e["kind"] == "interrupted" and e.get("session_time") is not None),
    }
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _role_order(role: str) -> int:
    return ROLES.index(role) if role in ROLES else len(ROLES)


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def _presence(events: list[dict], role: str) -> list[list[float | None]]:
    """When the participant was in the call: [joined, left] spans of session time (left null:
    still there, or the server stopped first)."""
    spans: list[list[float | None]] = []
    for e in events:
        if e.get("participant") != role or e.get("session_time") is None:
            continue
        if e["kind"] == "joined" and (not spans or spans[-1][1] is not None):
            spans.append([_r(e["session_time"]), None])
        elif e["kind"] == "left" and spans and spans[-1][1] is None:
            spans[-1][1] = _r(e["session_time"])
    return spans


def _tag(t: dict) -> dict:
    original = t.get("original_session_time")
    return {
        "id": t["id"], "kind": t["kind"], "label": t["label"], "session_time": _r(t["session_time"]),
        "original_session_time": _r(t["session_time"] if original is None else original),
        "clicked_at": _r(t.get("clicked_at")), "note": t.get("note") or "", "origin": t.get("origin") or "live",
        "created_at": _r(t.get("created_at")), "updated_at": _r(t.get("updated_at")),
    }


def _nudge(n: dict) -> dict:
    return {"id": n["id"], "kind": n["kind"], "text": n["text"], "session_time": _r(n["session_time"]),
            "dismissed_at": _r(n.get("dismissed_at"))}


# -- csv ------------------------------------------------------------------------------------------


def csv_rows(data: SessionData, table: str) -> tuple[list[str], list[list[Any]]]:
    """A table's header and rows: times in seconds with 3 decimals, wall-clock times in ISO 8601 (UTC)."""
    if table == "segments":
        return ["participant", "start_s", "end_s", "duration_s", "backchannel"], [
            [s.participant, _s(s.start), _s(s.end), _s(s.duration), "true" if s.backchannel else "false"]
            for s in data.timeline.all_segments()
        ]
    if table == "tags":
        return ["id", "session_time_s", "kind", "label", "note", "origin", "original_session_time_s",
                "clicked_at_s", "created_at", "updated_at"], [
            [t["id"], _s(t["session_time"]), t["kind"], t["label"], t["note"], t["origin"],
             _s(t["original_session_time"]), _s(t["clicked_at"]), _iso(t["created_at"]), _iso(t["updated_at"])]
            for t in map(_tag, data.tags)
        ]
    if table == "nudges":
        return ["id", "session_time_s", "kind", "text", "dismissed_at_s"], [
            [n["id"], _s(n["session_time"]), n["kind"], n["text"], _s(n["dismissed_at"])]
            for n in map(_nudge, data.nudges)
        ]
    raise ExportError(f"csv has the tables {', '.join(TABLES['csv'])}")


def to_csv(data: SessionData, table: str) -> str:
    header, rows = csv_rows(data, table)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def to_csv_zip(data: SessionData) -> bytes:
    """One CSV per table in a zip, each named ``<table>.csv``."""
    out = io.BytesIO()
    stamp = datetime.now(timezone.utc).timetuple()[:6]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for table in TABLES["csv"]:
            info = zipfile.ZipInfo(f"{table}.csv", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, to_csv(data, table).encode("utf-8"))
    return out.getvalue()


def _s(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- WebVTT ---------------------------------------------------------------------------------------


def to_vtt(data: SessionData, table: str | None = None) -> str:
    """WebVTT (W3C): each tag a cue whose text is its label and note, each nudge a metadata cue whose
    text is a JSON object. Cues are in time order; identifiers are ``tag-<id>`` and ``nudge-<id>``."""
    cues: list[tuple[float, float, str, str]] = []
    if table in (None, "tags"):
        for t in map(_tag, data.tags):
            text = t["label"] + (f": {t['note']}" if t["note"].strip() else "")
            cues.append((t["session_time"], t["session_time"] + TAG_CUE_S, f"tag-{t['id']}", vtt_text(text)))
    if table in (None, "nudges"):
        for n in map(_nudge, data.nudges):
            end = n["dismissed_at"] if n["dismissed_at"] is not None and n["dismissed_at"] > n["session_time"] \
                else n["session_time"] + NUDGE_CUE_S
            payload = {"type": "nudge", "kind": n["kind"], "text": n["text"], "dismissed_at": n["dismissed_at"]}
            cues.append((n["session_time"], end, f"nudge-{n['id']}", vtt_json(payload)))
    out = ["WEBVTT", "", "NOTE", f"{SCHEMA}: session {_vtt_id(data.session.id)}. Tags are cues; nudges are",
           "metadata cues whose text is JSON.", ""]
    for start, end, ident, text in sorted(cues, key=lambda c: (c[0], c[1], c[2])):
        out += [_vtt_id(ident), f"{vtt_time(start)} --> {vtt_time(end)}", text, ""]
    return "\n".join(out)


def vtt_time(seconds: float) -> str:
    """``hh:mm:ss.ttt``."""
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    return f"{h:02d}:{m:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def vtt_text(text: str) -> str:
    """Cue text that shows as written: ``&``, ``<`` and ``>`` as character references (so no
    "-->" either), and no blank line (which would end the cue)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lines = [line.strip() for line in escaped.splitlines()]
    return "\n".join(line for line in lines if line) or "&nbsp;"


def vtt_json(value: dict) -> str:
    """A metadata cue's JSON on one line, with ``<``, ``>`` and ``&`` as JSON escapes: valid JSON
    that holds no "-->" and no markup."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _vtt_id(ident: str) -> str:
    """A cue identifier or note text: one line, no "-->"."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", ident)


# -- RTTM and Audacity labels ---------------------------------------------------------------------


def to_rttm(data: SessionData) -> str:
    """The speech segments, speakers ``coach`` and ``client``: for an imported call, the same bytes
    as ``livecoach analyze --format rttm`` of its files."""
    return timeline_rttm(data.timeline, data.file_id())


def to_audacity(data: SessionData, table: str | None = None) -> str:
    """An Audacity label track (File > Import > Labels): ``start<TAB>end<TAB>label`` per line in
    seconds of session time; each turn a region labelled with its participant, each tag a point
    labelled ``Tag: <label>`` (and its note)."""
    labels: list[tuple[float, float, str]] = []
    if table in (None, "turns"):
        labels += [(t.start, t.end, f"{t.participant.capitalize()} turn") for t in data.timeline.turns]
    if table in (None, "tags"):
        for t in map(_tag, data.tags):
            note = f" - {t['note']}" if t["note"].strip() else ""
            labels.append((t["session_time"], t["session_time"], f"Tag: {t['label']}{note}"))
    return "".join(f"{a:.6f}\t{b:.6f}\t{_one_line(text)}\n" for a, b, text in sorted(labels))


def _one_line(text: str) -> str:
    return " ".join(text.split())
