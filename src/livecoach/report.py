"""Writing an analysis as text for a coach, JSON for programs, or RTTM for diarisation scorers.

The JSON schema is documented in ``docs/analysis-json.md``; bump ``SCHEMA`` on breaking changes.
"""

from __future__ import annotations

import json

from .analyze import Analysis
from .timeline import CLIENT, COACH, Timeline

SCHEMA = "livecoach.analysis/1"


def to_json(analysis: Analysis) -> str:
    data = {
        "schema": SCHEMA,
        "sources": analysis.sources,
        "duration": round(analysis.duration, 3),
        "metrics": analysis.metrics.to_dict(),
        "timeline": analysis.timeline.to_dict(),
        "attribution": {k: round(v, 1) for k, v in analysis.couplings_db.items()},
        "config": analysis.config.to_dict(),
    }
    return json.dumps(data, indent=2)


def to_rttm(analysis: Analysis, file_id: str | None = None) -> str:
    """One ``SPEAKER`` line per segment, in time order, the standard diarisation format."""
    return timeline_rttm(analysis.timeline, file_id or analysis.file_id)


def timeline_rttm(timeline: Timeline, file_id: str) -> str:
    """A timeline's segments as RTTM: the same lines for an analysed file and a stored session."""
    lines = [
        f"SPEAKER {file_id} 1 {s.start:.3f} {s.duration:.3f} <NA> <NA> {s.participant} <NA> <NA>"
        for s in timeline.all_segments()
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def to_text(analysis: Analysis) -> str:
    """A summary a coach reads at a glance: balance first, then waiting and silences, then turns."""
    m = analysis.metrics
    cfg = analysis.config.timeline
    out = [
        f"livecoach analysis of {analysis.sources[COACH]} (coach) and {analysis.sources[CLIENT]} (client)",
        f"Session length   {clock(analysis.duration)}",
        "",
    ]
    share = m.talk_share_coach
    if share is None:
        out.append("Talk balance     nobody spoke")
    else:
        out.append(f"Talk balance     coach {share:.0%}  {bar(share)}  client {1 - share:.0%}")
        if analysis.duration > cfg.window_s and m.window_talk_share_coach is not None:
            out.append(f"                 last {cfg.window_s / 60:.0f} min: coach {m.window_talk_share_coach:.0%}")
    out.append(
        f"Talk time        coach {clock(m.talk_time[COACH])}, client {clock(m.talk_time[CLIENT])}, "
        f"both at once {clock(m.overlap_time)}"
    )
    if m.median_wait is None:
        out.append("Wait time        no coach turn was followed by the client")
    else:
        out.append(
            f"Wait time        median {m.median_wait:.1f} s over {len(m.wait_times)} waits "
            f"(target {cfg.wait_target_s:.0f} s or more); {m.filled_silences} filled silence"
            f"{'' if m.filled_silences == 1 else 's'}"
        )
    out.append(
        f"Silences         longest {m.longest_silence:.1f} s; {m.long_silences} of "
        f"{cfg.silence_report_min_s:.0f} s or more"
    )
    out.append(
        f"Longest turn     coach {clock(m.longest_monologue[COACH])}, client {clock(m.longest_monologue[CLIENT])}"
    )
    out.append(
        f"Turn taking      {m.switches} switches ({m.interactivity_per_min:.1f} a minute); interruptions "
        f"coach {m.interruptions[COACH]}, client {m.interruptions[CLIENT]}; backchannels "
        f"coach {m.backchannels[COACH]}, client {m.backchannels[CLIENT]}"
    )
    long_silences = [s for s in analysis.timeline.silences if s.duration >= cfg.silence_report_min_s]
    if long_silences:
        out += ["", f"Silences of {cfg.silence_report_min_s:.0f} s or more:"]
        out += [f"  at {clock(s.start, tenths=True)}  {s.duration:5.1f} s" for s in long_silences]
    return "\n".join(out) + "\n"


def bar(share: float, width: int = 20) -> str:
    filled = int(round(share * width))
    return "█" * filled + "░" * (width - filled)


def clock(seconds: float, tenths: bool = False) -> str:
    """``m:ss`` (or ``h:mm:ss``), optionally with tenths of a second (rounded, not truncated)."""
    whole, tenth = divmod(int(round(seconds * 10)), 10) if tenths else (int(seconds), 0)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    text = f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
    return f"{text}.{tenth}" if tenths else text
