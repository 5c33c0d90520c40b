"""The report as HTML: one article with its charts as inline SVG, no script and no inline style
(the pages' Content-Security-Policy allows neither), styled by web/css/report.css.

One renderer for every place the report shows: the report page puts the article in itself, the
shared copy and ``livecoach report`` are the same article in a standalone document with the
stylesheet inlined. Every text from outside (names, labels, notes, the coach's summary) goes
through ``html.escape``.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, tzinfo
from typing import Any

from .session_report import PARTS
from .timeline import CLIENT, COACH

CHART_W = 1000
"""The timeline's drawing width (SVG user units): it scales to the page's width, as the half-width
charts of ``HALF_W`` scale to half of it (their text the same size on paper)."""
HALF_W = 500
LABELS_W = 52
"""The timeline's left margin, for its lanes' names."""
NUMBERED_TAGS_MAX = 40
"""Up to this many tags, the timeline's tag markers carry their number in the tag list."""


def document(model: dict[str, Any], css: str, tz: tzinfo | None = None) -> str:
    """A standalone HTML document of the report: opens anywhere, prints the same as the page."""
    title = f"Session report · {_name(model)} · {_when(model, tz, short=True)}"
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{_e(title)}</title>\n<style>\n{css}\n</style>\n</head>\n"
        f"<body class=\"report-document\">\n{article(model, tz)}\n</body>\n</html>\n"
    )


def article(model: dict[str, Any], tz: tzinfo | None = None) -> str:
    """The report's article: the header, its three layers and a footer."""
    s = model["session"]
    meta = [f"<time datetime=\"{_e(s['started'])}\">{_e(_when(model, tz))}</time>", clock(s["duration_s"])]
    if s["coach"]:
        meta.append(f"coach {_e(s['coach'])}")
    if s["origin"] == "import":
        meta.append("from an imported recording")
    if s["state"] != "ended":
        meta.append("the call was still going on")
    return "\n".join([
        f"<article class=\"report\" data-testid=\"report\" data-session=\"{_e(s['id'])}\">",
        "<header class=\"report-head\">",
        "<p class=\"report-kicker\">Session report</p>",
        f"<h1 data-testid=\"report-client\">{_e(_name(model))}</h1>",
        f"<p class=\"report-meta\">{' · '.join(meta)}</p>",
        "</header>",
        _participation(model),
        _behaviour(model) if model["behaviour"] is not None else "",
        _results(model),
        "<footer class=\"report-foot\">Figures as livecoach measures them on each participant's own audio "
        "(definitions: docs/metrics.md). Silence is time to think, not a fault.</footer>",
        "</article>",
    ])


# -- the layers ------------------------------------------------------------------------------


def _participation(model: dict[str, Any]) -> str:
    p = model["participation"]
    share = p["talk_share_coach"]
    facts = [
        ("Attendance", _attendance(p["attendance"]), "attendance"),
        ("Duration", clock(p["duration_s"]), "duration"),
        ("Talk time", f"coach {clock(p['talk_time_s'][COACH])} · client {clock(p['talk_time_s'][CLIENT])}",
         "talk-time"),
        ("Talk balance", "nobody spoke" if share is None else f"coach {_pct(share)} · client {_pct(1 - share)}",
         "talk-balance"),
    ]
    return _layer("participation", 1, "Participation", _facts(facts),
                  _balance_chart(share, model["targets"]["talk_share_coach_max"]),
                  _quarters_chart(p["quarters"]))


def _behaviour(model: dict[str, Any]) -> str:
    b, t = model["behaviour"], model["targets"]
    wait = ("no waits: the client never spoke after the coach" if b["median_wait_s"] is None else
            f"median {_seconds(b['median_wait_s'])} over {_count(b['waits'], 'wait')} "
            f"(aim: {t['wait_min_s']:g} s or more); {_count(b['filled_silences'], 'filled silence')}")
    silences = f"longest {_seconds(b['longest_silence_s'])}; {_count(b['long_silences'], 'silence')} of 2 s or more"
    turns = (f"longest coach {clock(b['longest_turn_s'][COACH])} (aim: under {clock(t['turn_max_s'])}), "
             f"client {clock(b['longest_turn_s'][CLIENT])}; {_count(b['switches'], 'switch', 'switches')} "
             f"({b['interactivity_per_min']:.1f} a minute)")
    interruptions = (f"by the coach {b['interruptions'][COACH]}, by the client {b['interruptions'][CLIENT]}; "
                     f"both speaking {_count(b['overlaps'], 'time')}")
    facts = [("Wait time", wait, "wait"), ("Silences", silences, "silences"), ("Turns", turns, "turns"),
             ("Interruptions", interruptions, "interruptions")]
    if "nudges" in b:
        given = b["nudges"]
        text = "none" if not given else f"{len(given)}: " + ", ".join(
            f"{n['text']} at {clock(n['session_time'])}" for n in given)
        facts.append(("Nudges given", text, "nudges"))
    return _layer("behaviour", 2, "Behaviour", _facts(facts), _timeline_chart(model))


def _results(model: dict[str, Any]) -> str:
    r = model["results"]
    parts = []
    if "tags" in r:
        parts.append(_tags(r))
    for field, title in (("summary", "Summary"), ("next_steps", "Next steps")):
        if field in r:
            parts.append(_text_block(field, title, r[field]))
    if not parts:
        return ""
    return _layer("results", 3, "Results", *parts)


def _layer(name: str, number: int, title: str, *content: str) -> str:
    return (f"<section class=\"layer\" data-layer=\"{name}\" data-testid=\"layer-{name}\"{_part(name)}>"
            f"<h2><span class=\"layer-n\">{number}</span> {title}</h2>\n" + "\n".join(c for c in content if c)
            + "\n</section>")


def _facts(rows: list[tuple[str, str, str]]) -> str:
    """A definition list of figures; a row whose key is a part of ``PARTS`` (nudges) is marked as
    that part, which the page's preview of a shared copy hides."""
    items = "".join(f"<div{_part(key)}><dt>{_e(dt)}</dt><dd data-figure=\"{key}\">{_e(dd)}</dd></div>"
                    for dt, dd, key in rows)
    return f"<dl class=\"facts\">{items}</dl>"


def _part(name: str) -> str:
    """The attribute marking what a shared copy may leave out (session_report.PARTS)."""
    return f" data-part=\"{name}\"" if name in PARTS else ""


def _attendance(att: dict[str, dict[str, Any]]) -> str:
    out = []
    for role in (COACH, CLIENT):
        a = att[role]
        if not a["present"]:
            out.append(f"{role}: {'did not speak' if a['joins'] is None else 'did not join'}")
        elif a["joins"] is None:
            out.append(f"{role}: spoke in the recording")
        else:
            came_back = f", came back {_count(a['joins'] - 1, 'time')}" if a["joins"] > 1 else ""
            out.append(f"{role}: joined at {clock(a['joined_at_s'])}, in the call {clock(a['present_s'])}{came_back}")
    return "; ".join(out)


def _tags(results: dict[str, Any]) -> str:
    tags, counts = results["tags"], results["tag_counts"]
    if not tags:
        return "<div data-part=\"tags\"><h3>Tags</h3><p class=\"report-empty\">No moment was tagged.</p></div>"
    chips = "".join(f"<li><span class=\"chip-label\">{_e(c['label'])}</span> <b>{c['count']}</b></li>" for c in counts)
    rows = []
    for i, t in enumerate(tags, 1):
        note = f"<td class=\"note\" data-part=\"notes\">{_e(t['note'])}</td>" if "note" in t else ""
        rows.append(f"<tr data-testid=\"report-tag\"><td class=\"num\">{i}</td><td class=\"num\">"
                    f"{clock(t['session_time'])}</td><td>{_e(t['label'])}</td>{note}</tr>")
    head_note = "<th data-part=\"notes\">Note</th>" if "note" in tags[0] else ""
    return (f"<div data-part=\"tags\"><h3>Tags</h3><ul class=\"tag-counts\" data-testid=\"tag-counts\">{chips}</ul>"
            f"<table class=\"tags\"><thead><tr><th>#</th><th>At</th><th>Moment</th>{head_note}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _text_block(field: str, title: str, text: str) -> str:
    paragraphs = [p for p in text.strip().split("\n\n") if p.strip()]
    body = "".join(f"<p>{'<br>'.join(_e(line) for line in p.strip().splitlines())}</p>" for p in paragraphs)
    empty = " is-empty" if not paragraphs else ""
    body = body or "<p class=\"report-empty\">Not written yet.</p>"
    testid = field.replace("_", "-")
    return (f"<div class=\"report-text{empty}\" data-part=\"{field}\"><h3>{title}</h3>"
            f"<div class=\"report-text-body\" data-field=\"{field}\" data-testid=\"report-{testid}\">{body}</div></div>")


# -- the charts ------------------------------------------------------------------------------


def _figure(name: str, svg: str, caption: str) -> str:
    return (f"<figure class=\"chart\" data-chart=\"{name}\" data-testid=\"chart-{name}\">{svg}"
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _svg(height: int, label: str, body: str, width: int = CHART_W) -> str:
    return (f"<svg viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{_e(label)}\" "
            f"xmlns=\"http://www.w3.org/2000/svg\">{_defs()}{body}</svg>")


def _defs() -> str:
    """The client's stripes, so that the two participants differ by more than colour."""
    return ("<defs><pattern id=\"client-stripes\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" "
            "patternTransform=\"rotate(45)\"><rect class=\"client\" width=\"8\" height=\"8\"/>"
            "<rect class=\"client-light\" width=\"3\" height=\"8\"/></pattern></defs>")


def _balance_chart(share: float | None, limit: float) -> str:
    """Coach and client as one bar, with the coach's limit (their talk-balance nudge) marked."""
    w = HALF_W
    if share is None:
        body = f"<rect class=\"empty\" x=\"0\" y=\"8\" width=\"{w}\" height=\"28\"/>"
        return _figure("talk-balance", _svg(60, "Talk balance: nobody spoke", body, w), "Nobody spoke.")
    x = round(share * w, 1)
    limit_x = round(limit * w, 1)
    body = (f"<rect class=\"coach\" x=\"0\" y=\"8\" width=\"{x}\" height=\"28\"/>"
            f"<rect fill=\"url(#client-stripes)\" x=\"{x}\" y=\"8\" width=\"{round(w - x, 1)}\" height=\"28\"/>"
            f"<line class=\"target\" x1=\"{limit_x}\" x2=\"{limit_x}\" y1=\"2\" y2=\"42\"/>"
            f"<text class=\"on-bar\" x=\"8\" y=\"27\">coach {_pct(share)}</text>"
            f"<text class=\"on-bar end\" x=\"{w - 8}\" y=\"27\">client {_pct(1 - share)}</text>"
            f"<text class=\"axis{' end' if limit > 0.6 else ''}\" x=\"{limit_x}\" y=\"60\">"
            f"your limit for the coach: {_pct(limit)}</text>")
    return _figure("talk-balance", _svg(66, f"Talk balance: coach {_pct(share)}, client {_pct(1 - share)}", body, w),
                   "Talk balance, whole call (silence is not counted; overlap counts for both).")


def _quarters_chart(quarters: list[dict[str, Any]]) -> str:
    """The coach's share in each quarter of the call, as four bars (coach from the bottom)."""
    width, gap, top, height = HALF_W / len(quarters), 14, 4, 56
    body = []
    for i, q in enumerate(quarters):
        x = round(i * width + gap / 2, 1)
        w = round(width - gap, 1)
        share = q["talk_share_coach"]
        label = f"{clock(q['start'])}–{clock(q['end'])}"
        if share is None:
            body.append(f"<rect class=\"empty\" x=\"{x}\" y=\"{top}\" width=\"{w}\" height=\"{height}\"/>")
            text = "nobody spoke"
        else:
            coach_h = round(share * height, 1)
            body.append(f"<rect fill=\"url(#client-stripes)\" x=\"{x}\" y=\"{top}\" width=\"{w}\" "
                        f"height=\"{round(height - coach_h, 1)}\"/><rect class=\"coach\" x=\"{x}\" "
                        f"y=\"{round(top + height - coach_h, 1)}\" width=\"{w}\" height=\"{coach_h}\"/>")
            text = f"coach {_pct(share)}"
        body.append(f"<text class=\"axis middle\" x=\"{round(x + w / 2, 1)}\" y=\"{top + height + 18}\">{label}</text>"
                    f"<text class=\"axis middle strong\" x=\"{round(x + w / 2, 1)}\" y=\"{top + height + 36}\">"
                    f"{text}</text>")
    return _figure("quarters", _svg(top + height + 42, "Talk balance by quarter of the call", "".join(body), HALF_W),
                   "By quarter of the call: the coach's share from the bottom.")


def _timeline_chart(model: dict[str, Any]) -> str:
    """The whole call: each participant's speech, the tags (numbered as in the list) and the
    nudges, on one time axis."""
    duration = model["session"]["duration_s"] or 0.0
    segments = model["timeline"]["segments"]
    results, behaviour = model["results"], model["behaviour"]
    left, span = LABELS_W, CHART_W - LABELS_W
    scale = span / duration if duration > 0 else 0.0
    lanes = {COACH: 14, CLIENT: 34}
    body = [f"<text class=\"axis\" x=\"0\" y=\"{lanes[role] + 11}\">{role}</text>" for role in lanes]
    for role, y in lanes.items():
        body.append(f"<rect class=\"lane\" x=\"{left}\" y=\"{y}\" width=\"{span}\" height=\"14\"/>")
        paint = "class=\"coach\"" if role == COACH else "fill=\"url(#client-stripes)\""
        for a, b in _runs(segments.get(role, []), 1.5 / scale if scale else 0.0):
            body.append(f"<rect {paint} x=\"{round(left + a * scale, 1)}\" y=\"{y}\" "
                        f"width=\"{max(1.0, round((b - a) * scale, 1))}\" height=\"14\"/>")
    tags = results.get("tags", [])
    for i, t in enumerate(tags, 1):
        x = round(left + t["session_time"] * scale, 1)
        body.append(f"<line class=\"mark-tag\" data-part=\"tags\" x1=\"{x}\" x2=\"{x}\" y1=\"{lanes[COACH]}\" y2=\"56\"/>")
        if len(tags) <= NUMBERED_TAGS_MAX:
            body.append(f"<text class=\"mark-tag-n\" data-part=\"tags\" x=\"{x}\" y=\"70\">{i}</text>")
    for n in behaviour.get("nudges", []):
        x = round(left + n["session_time"] * scale, 1)
        body.append(f"<path class=\"mark-nudge\" data-part=\"nudges\" d=\"M{x - 6} 1 L{x + 6} 1 L{x} 11 Z\"><title>{_e(n['text'])} at "
                    f"{clock(n['session_time'])}</title></path>")
    for k in range(5):
        t = duration * k / 4
        anchor = "" if k == 0 else " end" if k == 4 else " middle"
        body.append(f"<text class=\"axis{anchor}\" x=\"{round(left + t * scale, 1)}\" y=\"88\">{clock(t)}</text>")
    caption = "The call from start to end: speech of each participant"
    caption += ", the tags (numbered as in the list below)" if tags else ""
    caption += ", the nudges (triangles)" if behaviour.get("nudges") else ""
    return _figure("timeline", _svg(92, "The call on one time axis", "".join(body)), caption + ".")


def _runs(spans: list[list[float]], join: float) -> list[tuple[float, float]]:
    """Spans merged where less than ``join`` seconds apart: a 2-hour call's thousands of segments
    as the few hundred bars the chart's width can show."""
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a - out[-1][1] < join:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


# -- words -----------------------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _name(model: dict[str, Any]) -> str:
    s = model["session"]
    return s["client"] or s["label"] or "Session"


def _when(model: dict[str, Any], tz: tzinfo | None, short: bool = False) -> str:
    """When the session began, in ``tz`` (None: this machine's time zone)."""
    moment = datetime.fromtimestamp(model["session"]["created_at"], tz) if tz else datetime.fromtimestamp(
        model["session"]["created_at"]).astimezone()
    return moment.strftime("%Y-%m-%d") if short else moment.strftime("%a %d %b %Y, %H:%M %Z").strip()


def clock(t: float | None) -> str:
    """m:ss, or h:mm:ss from an hour on (as the pages write a session clock)."""
    s = max(0, int(t or 0))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _seconds(t: float) -> str:
    """Tenths under 10 s, whole seconds under a minute, then a clock (as the pages' format.js)."""
    return f"{math.floor(max(0.0, t) * 10) / 10:.1f} s" if t < 10 else f"{int(t)} s" if t < 60 else clock(t)


def _pct(ratio: float) -> str:
    return f"{round(ratio * 100)}%"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"
