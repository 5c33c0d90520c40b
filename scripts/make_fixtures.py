#!/usr/bin/env python3
"""Synthesise the two-track coaching-call test fixtures in tests/fixtures/ with exact ground truth.

Run from the repository root:

    .venv/bin/python scripts/make_fixtures.py

Needs Debian's espeak-ng and sox (``apt-get install espeak-ng sox``), numpy and PyAV.
Deterministic: every random choice comes from a numpy RNG seeded per fixture, espeak-ng
and sox are deterministic, and the Ogg/Opus files are written bit-exact, so a re-run
gives byte-identical files.

For each fixture NAME it writes tests/fixtures/NAME/{coach.opus, client.opus, truth.json}
and then writes tests/fixtures/README.md. After writing, it decodes every Opus file
again and prints a check table (lengths, levels, talk time, silences), and compares the
`clean` fixture's truth with a plain energy detector.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SR = 16000  # mixing rate (the engine's rate)
OPUS_SR = 48000
OPUS_BITRATE = 32000
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures"

VOICES = {"coach": "en-us+m3", "client": "en+f1"}  # see the README: why not "en-gb+f3"
SPEEDS = {"coach": 175, "client": 180}  # espeak-ng -s, words per minute
TRIM_DBFS = -50.0  # espeak output below this at the ends is trimmed away
MAX_INNER_PAUSE = 0.20  # a silent run longer than this inside one espeak sentence is shortened
INNER_PAUSE_TO = 0.15  # ... to this length
NOISE_FLOOR_DBFS = -70.0
BRIDGE = 0.3  # the brief's bridging rule: same-speaker gaps < 300 ms are one segment
OTHER = {"coach": "client", "client": "coach"}


def db2amp(db: float) -> float:
    return 10.0 ** (db / 20.0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def dbfs(x: np.ndarray) -> float:
    r = rms(x)
    return 20 * math.log10(r) if r > 0 else -math.inf


# ----------------------------------------------------------------------------- speech

_synth_cache: dict[tuple[str, str], np.ndarray] = {}
STATS = {"espeak_calls": 0, "inner_pauses_shortened": []}


def check_tools() -> None:
    for tool, pkg in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if shutil.which(tool) is None:
            sys.exit(f"make_fixtures: '{tool}' not found; install it with: apt-get install {pkg}")


def synth(speaker: str, text: str) -> np.ndarray:
    """One espeak-ng sentence at 16 kHz float32, trimmed at both ends, long inner pauses shortened."""
    key = (speaker, text)
    if key in _synth_cache:
        return _synth_cache[key]
    es = subprocess.run(
        ["espeak-ng", "-v", VOICES[speaker], "-s", str(SPEEDS[speaker]), "--stdout", text],
        capture_output=True, check=True,
    )
    sx = subprocess.run(
        ["sox", "-t", "wav", "-", "-e", "floating-point", "-b", "32", "-t", "raw", "-", "rate", "-v", str(SR)],
        input=es.stdout, capture_output=True, check=True,
    )
    STATS["espeak_calls"] += 1
    x = np.frombuffer(sx.stdout, dtype="<f4").astype(np.float64)
    thr = db2amp(TRIM_DBFS)
    loud = np.nonzero(np.abs(x) > thr)[0]
    if len(loud) == 0:
        raise RuntimeError(f"espeak-ng produced silence for {text!r}")
    x = x[loud[0]: loud[-1] + 1]
    # Inner pauses: find runs of 10 ms blocks whose peak is below the threshold.
    blk = 160
    nb = len(x) // blk
    quiet = np.abs(x[: nb * blk]).reshape(nb, blk).max(axis=1) <= thr
    pieces, pos, i = [], 0, 0
    while i < nb:
        if quiet[i]:
            j = i
            while j < nb and quiet[j]:
                j += 1
            run = (j - i) * blk / SR
            if run > MAX_INNER_PAUSE:
                keep = int(INNER_PAUSE_TO * SR)
                a, b = i * blk, j * blk
                mid = (a + b) // 2
                pieces.append(x[pos: mid - keep // 2])
                pos = mid - keep // 2 + keep
                STATS["inner_pauses_shortened"].append((speaker, text, round(run, 3)))
            i = j
        else:
            i += 1
    if pieces:
        pieces.append(x[pos:])
        x = np.concatenate(pieces)
    _synth_cache[key] = x
    return x


LIMIT_KNEE, LIMIT_CEIL = db2amp(-8.0), db2amp(-2.0)


def at_level(x: np.ndarray, level_dbfs: float) -> np.ndarray:
    """Scale a sentence to the given RMS; peaks above -8 dBFS are soft-limited towards a -2 dBFS ceiling
    (espeak's m3 voice has a ~20 dB crest factor and would clip at -20 dBFS RMS), then the RMS is set again."""
    y = x * (db2amp(level_dbfs) / rms(x))
    for _ in range(3):
        mag = np.abs(y)
        over = mag > LIMIT_KNEE
        if over.any():
            span = LIMIT_CEIL - LIMIT_KNEE
            mag[over] = LIMIT_KNEE + span * np.tanh((mag[over] - LIMIT_KNEE) / span)
            y = np.sign(y) * mag
        y = y * (db2amp(level_dbfs) / rms(y))
    return y


def voice_f0(speaker: str) -> float:
    """Median pitch of a test sentence (YIN-style), to make sure the two voices really differ."""
    x = synth(speaker, "I have been thinking about my job, and honestly I feel stuck at the moment.")
    fr, hop, f0s = 800, 400, []
    w = fr // 2
    for i in range(0, len(x) - fr, hop):
        s = x[i: i + fr]
        if rms(s) < 0.03:
            continue
        d = np.array([np.sum((s[:w] - s[t: t + w]) ** 2) for t in range(1, w)])
        cm = d * np.arange(1, w) / np.maximum(np.cumsum(d), 1e-12)
        lo = SR // 400
        idx = np.nonzero(cm[lo:] < 0.15)[0]
        if len(idx):
            t = lo + idx[0]
            while t + 1 < len(cm) and cm[t + 1] < cm[t]:
                t += 1
            f0s.append(SR / (t + 1))
    return float(np.median(f0s))


# ----------------------------------------------------------------------------- scripts


@dataclass
class Item:
    """One turn-taking step of a script.

    gap: seconds after the latest end of any earlier turn (negative = overlap: this
    speaker starts while the other is still finishing).  sentences: spoken with
    0.06-0.14 s between them (one run).  bc: backchannels by the *other* speaker, at a
    fraction of this item's span.  interrupt=(frac, hold): instead of `gap`, start at
    `frac` of the previous item's span, and cut the previous item off `hold` s later.
    """

    speaker: str
    sentences: list[str]
    gap: float = 0.0
    bc: list[tuple[float, str]] = field(default_factory=list)
    interrupt: tuple[float, float] | None = None


def C(text, gap=0.0, bc=(), interrupt=None):
    return Item("coach", [text] if isinstance(text, str) else list(text), gap, list(bc), interrupt)


def K(text, gap=0.0, bc=(), interrupt=None):
    return Item("client", [text] if isinstance(text, str) else list(text), gap, list(bc), interrupt)


SCRIPTS = {
    # career change
    "career": dict(lead=1.3, trail=2.5, items=[
        C(["Good to see you again.", "What would you like to focus on today?"]),
        K(["I keep thinking about leaving accounting.",
           "I am not sure I want eight more years of it."], 0.6, bc=[(0.5, "Mm-hm.")]),
        C("What is pulling you away?", 0.45),
        K(["I fix numbers that go into reports nobody reads.",
           "When I helped redesign our expense app, I felt awake for the first time in years."],
          3.4, bc=[(0.45, "Yeah.")]),
        C("Say more about feeling awake.", -0.6),
        K("I was sketching screens on the train home.", 0.5),
        C(["That is a really vivid picture.",
           "I notice that you light up when you talk about building things people use.",
           "Many people feel they must choose between safety and meaning in one big jump.",
           "In my experience, it rarely works like that.",
           "Career changes usually happen through small experiments, not a single leap.",
           "You might take a short course, or offer the design team a few hours a week.",
           "Each experiment tells you something about the work, and something about yourself.",
           "The aim is not to find the perfect answer today.",
           "So what is one step that feels both safe and a little exciting?"],
          0.8, bc=[(0.3, "Mm-hm."), (0.72, "Right.")]),
        K("I could ask to sit in on their user interviews.", 9.0),
        C("What might get in the way?", 0.4),
        K("My manager might ask why I am spending time on something that is not in my objectives, "
          "and then I would have to explain the whole story to her.", 2.6),
        C("What if you simply told her the truth?", interrupt=(0.6, 0.7)),
        K(["The truth.", "She might actually support that."], 0.7),
        C("Shall we make that your first step?", 2.4),
        K("Yes, I will talk to her on Thursday.", -0.4),
    ]),
    # health habits
    "habits": dict(lead=0.8, trail=3.0, items=[
        C("How have the last two weeks been with the new routine?"),
        K(["Up and down.", "The first week I walked every morning.",
           "Then my daughter got sick, and everything fell apart."], 0.7, bc=[(0.5, "Mm-hm.")]),
        C("What did you notice when it fell apart?", 0.5),
        K(["I stopped sleeping properly.",
           "I was up late on my phone, and then too tired to walk."], 3.5, bc=[(0.5, "Yeah.")]),
        C("So sleep came first, and the walking followed.", -0.5),
        K("Exactly, like dominoes.", 0.6),
        C(["That is a very useful thing to have noticed.",
           "Habits rarely live on their own, they lean on each other.",
           "When one of them slips, the others often follow within a few days.",
           "So instead of asking how to walk more, we could ask how to protect your evenings.",
           "A small rule can help, like putting the phone in the kitchen at ten.",
           "It does not need to be perfect, and it will not be on some nights.",
           "What matters is that the default is easy to return to after a bad week.",
           "The next skill is coming back quickly when life is not calm."],
          1.0, bc=[(0.35, "Right."), (0.7, "Mm-hm.")]),
        K("I usually treat one missed day as failure.", 3.0),
        C("What would coming back quickly look like on Monday?", 0.5),
        K("Shoes by the door on Sunday night.", 5.0),
        C("And the phone?", 0.4),
        K("The phone goes in the kitchen, and my partner will probably join in, so we could both sleep earlier.",
          0.5),
        C("That could make it a shared project.", interrupt=(0.6, 0.8)),
        K("Yes, that would help.", 0.6),
        C("How confident do you feel, from one to ten?", 2.8),
        K("About a seven.", 2.1),
        C("A seven is a good place to start.", -0.5),
    ]),
    # instructional coaching with a teacher
    "teacher": dict(lead=1.0, trail=2.2, items=[
        C(["I watched your lesson video.", "What stood out to you?"]),
        K("I moved on so fast after a question, it was barely a second.", 2.3, bc=[(0.5, "Mm-hm.")]),
        C("What was happening for you in that second?", 0.4),
        K(["I think I was afraid of the silence.",
           "So I answer it myself, or I call on the same three students."], 10.0, bc=[(0.55, "Yeah.")]),
        C(["That is such an honest observation, and a very common one.",
           "Silence in a classroom can feel like failure, but it is often thinking.",
           "Research on wait time suggests that three seconds or more changes who answers.",
           "More students raise their hands, and their answers get longer.",
           "But three seconds feels very long at the front of the room.",
           "Some teachers count silently, or take a slow breath before they call on anyone.",
           "Others ask everyone to write an answer first, so the silence has a job.",
           "None of these are rules, they are experiments you can try."],
          0.6, bc=[(0.4, "Right."), (0.8, "Mm-hm.")]),
        K("I like the idea of the silence having a job.", -0.5),
        C("Which of those would fit your class best?", 0.5),
        K("Probably the writing one, with their mini whiteboards.", 2.4),
        C("Yes, and while they write, you can read the boards and choose someone "
          "who has not spoken yet, so the quieter students get a turn.", 0.5),
        K("Oh, that fixes my same three students problem!", interrupt=(0.55, 0.7)),
        C(["Exactly.", "When could you try it?"], 0.6),
        K("Tomorrow, in the lesson on plant cells.", -0.4),
        C("How will you know whether it worked?", 2.5),
        K("You could film it again.", 2.2),
    ]),
    # new manager
    "manager": dict(lead=0.6, trail=1.8, items=[
        C("How did the team meeting go?"),
        K(["Better than I feared, nobody argued.",
           "But afterwards two people came to me with the same complaint."], 0.5, bc=[(0.5, "Okay.")]),
        C("What was the complaint?", 0.6),
        K(["That I still do the technical work myself instead of letting them own it.",
           "And they are right, I rewrote a whole module last week."],
          0.45, bc=[(0.45, "Mm-hm.")]),
        C("What made it feel faster to do it yourself?", 2.4),
        K("Explaining it would have taken an afternoon.", 4.0),
        C("And what did it cost?", -0.7),
        K("Their trust, probably.", 0.5),
        C(["Thank you for being so direct about that.",
           "This is a common trap for people who move from expert to manager.",
           "Your value used to be measured by what you produced yourself.",
           "Now it is measured by what the team can produce without you.",
           "Every time you step in, you save an afternoon and lose a chance for someone to learn.",
           "Over months, that adds up to a team that waits for you.",
           "It might help to decide in advance which kinds of work you will not touch.",
           "Then you can spend the afternoon explaining, and treat it as the real work.",
           "What do you think about that?"],
          0.9, bc=[(0.3, "Yeah."), (0.65, "Mm-hm.")]),
        K("It scares me a little, because if the module breaks, my name is on it, and I would have to explain "
          "to my director why I let a junior developer ship it.", 2.8),
        C("Whose name should be on it?", interrupt=(0.6, 0.9)),
        K("The team's, I suppose.", 3.5),
        C("How could you make that visible?", 0.35),
        K("I could present the next release with the developer who built it.", 5.0),
        C("That sounds like a strong move.", -0.4),
        K("Okay, I will try that.", 0.6),
    ]),
    # boundaries, work-life balance
    "boundaries": dict(lead=1.2, trail=2.0, items=[
        C("Where would you like to start today?"),
        K(["Saying no.", "I said yes to three new projects, so I work every weekend."], 1.1, bc=[(0.5, "Mm-hm.")]),
        C("What happens inside you when someone asks for help?", 0.5),
        K(["I feel pressure.", "Growing up, being helpful was how I got noticed."], 8.0, bc=[(0.5, "Yeah.")]),
        C(["That is an important link to make.",
           "A pattern that helped you as a child can still be running the show today.",
           "It was a smart strategy back then, it kept you safe and valued.",
           "The question now is whether it still serves the person you are at work.",
           "Saying no is not the opposite of being helpful.",
           "Often it is what lets you be really helpful on the things that matter most.",
           "One practice some people use is to never answer a request on the spot.",
           "They say, let me check my week and get back to you this afternoon.",
           "That small pause gives your values a chance to catch up with the pressure."],
          0.7, bc=[(0.35, "Mm-hm."), (0.75, "Right.")]),
        K(["Let me check my week.", "I could say that."], 3.0),
        C("How does it feel to imagine saying it?", -0.4),
        K("A bit strange, but also like relief.", 2.6),
        C("Relief is worth noticing, because it tells you how much this pattern has been costing you.", 0.5),
        K("But with my boss it is harder.", interrupt=(0.5, 0.8)),
        C("What is different with her?", 0.5),
        K("She signs my review.", 0.7),
        C("So there is real risk there.", 2.2),
        K("Yes, but maybe less than I think.", -0.5),
        C("What request could you pause on this week?", 0.6),
        K(["The conference planning.", "I will tell her on Friday."], 3.2),
    ]),
    # procrastination on a thesis
    "thesis": dict(lead=0.8, trail=1.8, items=[
        C("So, what is on your mind today?"),
        K(["A chapter of my thesis is due in three weeks, and I have written almost nothing.",
           "Every morning I open the file, and then find something else to do."],
          2.2, bc=[(0.5, "Mm-hm.")]),
        C("What is the something else, usually?", -0.45),
        K("Email, mostly.", 0.6),
        C("What do you think the avoiding protects you from?", 2.4),
        K(["From finding out that the chapter is not good.",
           "As long as it is not written, it could still be brilliant."], 10.5, bc=[(0.5, "Yeah.")]),
        C(["That is a really insightful thing to say.",
           "Perfectionism often looks like laziness from the outside.",
           "But underneath, it is usually fear of being judged.",
           "One way through is to separate writing from judging.",
           "Nobody has to see the first draft.",
           "Another way is a tiny target, like two hundred words before you open your email.",
           "The words can be clumsy, that is the point of a first draft.",
           "Your supervisor needs material to react to, not a finished masterpiece.",
           "And you may find the chapter is better than your fear says."],
          0.8, bc=[(0.3, "Right."), (0.7, "Mm-hm.")]),
        K("Two hundred words feels too small to matter, but maybe that is why it might work, "
          "and if I did it every day for three weeks I would have a draft.", 0.5),
        C("That would be over four thousand words.", interrupt=(0.7, 0.8)),
        K(["Wow, okay.", "That is most of a chapter."], 0.5),
        C("How will you remind yourself tomorrow?", 2.5),
        K("A note on my laptop that says two hundred first.", 3.0),
        C(["I love that.", "Let's hear how it went next week."], -0.6),
    ]),
}


# ----------------------------------------------------------------------------- fixtures

FIXTURES = [
    dict(name="clean", script="career", seed=101,
         description="No trouble: each track has only its own voice over a -70 dBFS noise floor.",
         level={"coach": -20.0, "client": -20.0}),
    dict(name="bleed", script="habits", seed=202,
         description="Echo/bleed both ways: coach into client -25 dB/120 ms, client into coach -32 dB/220 ms, "
                     "through a band-limited room/speaker impulse response.",
         level={"coach": -20.0, "client": -20.0},
         bleed={"coach_into_client": (-25.0, 0.120), "client_into_coach": (-32.0, 0.220)}),
    dict(name="fan", script="teacher", seed=303,
         description="Steady fan noise at -35 dBFS on both tracks (different noise per track), "
                     "plus light bleed both ways at -35 dB/80 ms.",
         level={"coach": -20.0, "client": -20.0},
         bleed={"coach_into_client": (-35.0, 0.080), "client_into_coach": (-35.0, 0.080)},
         fan={"coach": -35.0, "client": -35.0}),
    dict(name="keyboard", script="manager", seed=404,
         description="Keyboard clicks ~3/s on the coach's track all along and in a few 5-10 s stretches on the "
                     "client's, plus light bleed both ways at -30 dB/150 ms.",
         level={"coach": -20.0, "client": -20.0},
         bleed={"coach_into_client": (-30.0, 0.150), "client_into_coach": (-30.0, 0.150)},
         clicks={"coach": "all", "client": "stretches"}),
    dict(name="quiet", script="boundaries", seed=505,
         description="Client 10 dB quieter (-30 dBFS) with loud coach bleed into the client's mic "
                     "(-25 dB/100 ms); client into coach -35 dB/250 ms.",
         level={"coach": -20.0, "client": -30.0},
         bleed={"coach_into_client": (-25.0, 0.100), "client_into_coach": (-35.0, 0.250)}),
    dict(name="realcall", script="thesis", seed=606,
         description="Everything at once: bleed both ways (-28 dB/180 ms into client, -30 dB/60 ms into coach), "
                     "fan -35 dBFS on the client's track, clicks ~3/s on the coach's, client 10 dB quieter.",
         level={"coach": -20.0, "client": -30.0},
         bleed={"coach_into_client": (-28.0, 0.180), "client_into_coach": (-30.0, 0.060)},
         fan={"client": -35.0},
         clicks={"coach": "all"}),
]


@dataclass
class Utt:
    speaker: str
    start: int  # samples
    audio: np.ndarray
    text: str
    kind: str = "speech"

    @property
    def end(self) -> int:
        return self.start + len(self.audio)


def build_timeline(script: dict, level: dict, rng: np.random.Generator):
    """Place every sentence of a script; return (utterances, duration_samples, items_info)."""
    utts: list[Utt] = []
    latest_end = int(round(script["lead"] * SR))
    prev = None  # (item, [utt indices], start, end)
    info = []
    for n, item in enumerate(script["items"]):
        if item.interrupt is not None:
            frac, hold = item.interrupt
            assert prev is not None and prev[0].speaker != item.speaker, "interrupt needs a previous other speaker"
            pstart, pend = prev[2], prev[3]
            start = pstart + int(round(frac * (pend - pstart)))
            cut = start + int(round(hold * SR))
            assert cut < pend - int(0.5 * SR), f"item {n}: interrupt too late to cut anything"
            thr = db2amp(TRIM_DBFS + level[prev[0].speaker] + 20.0)
            for k in list(prev[1]):
                u = utts[k]
                if u.start >= cut:
                    utts[k] = None  # dropped: never said
                elif u.end > cut:
                    a = u.audio[: cut - u.start].copy()
                    fade = int(0.015 * SR)
                    a[-fade:] *= np.cos(np.linspace(0, np.pi / 2, fade)) ** 2
                    loud = np.nonzero(np.abs(a) > thr)[0]
                    u.audio = a[: loud[-1] + 1]
                    u.text = u.text + " [cut off]"
            prev_end_new = max(utts[k].end for k in prev[1] if utts[k] is not None)
            latest_end = max([prev_end_new] + [x["end"] for x in info[:-1]] + [int(round(script["lead"] * SR))])
            info[-1]["end"] = prev_end_new
            info[-1]["cut"] = True
        else:
            start = latest_end + int(round(item.gap * SR))
        t = start
        idx = []
        for j, sentence in enumerate(item.sentences):
            if j:
                t += int(round(rng.uniform(0.06, 0.14) * SR))
            a = at_level(synth(item.speaker, sentence), level[item.speaker])
            utts.append(Utt(item.speaker, t, a, sentence))
            idx.append(len(utts) - 1)
            t += len(a)
        end = t
        for frac, text in item.bc:
            a = at_level(synth(OTHER[item.speaker], text), level[OTHER[item.speaker]])
            bstart = start + int(round(frac * (end - start)))
            utts.append(Utt(OTHER[item.speaker], bstart, a, text, "backchannel"))
        info.append(dict(n=n, speaker=item.speaker, start=start, end=end, gap=item.gap,
                         interrupt=item.interrupt, nsent=len(item.sentences), cut=False))
        prev = (item, idx, start, end)
        latest_end = max(latest_end, end)
    utts = sorted([u for u in utts if u is not None], key=lambda u: (u.start, u.speaker))
    duration = max(u.end for u in utts) + int(round(script["trail"] * SR))
    return utts, duration, info


def segments_of(utts: list[Utt], speaker: str) -> list[list[float]]:
    segs: list[list[int]] = []
    for u in sorted((u for u in utts if u.speaker == speaker), key=lambda u: u.start):
        if segs and u.start - segs[-1][1] < BRIDGE * SR:
            segs[-1][1] = max(segs[-1][1], u.end)
        else:
            segs.append([u.start, u.end])
    return [[s / SR, e / SR] for s, e in segs]


def silences_of(segs: dict, duration: float) -> list[tuple[float, float]]:
    """Gaps in which nobody speaks, between the first and the last speech."""
    spans = sorted(s for sp in segs.values() for s in sp)
    out, cur = [], None
    for a, b in spans:
        if cur is None:
            cur = [a, b]
        elif a > cur[1]:
            out.append((cur[1], a))
            cur = [a, b]
        else:
            cur[1] = max(cur[1], b)
    return out


def validate(name: str, utts: list[Utt], duration: int, info: list, segs: dict) -> dict:
    """Assert the brief's timeline rules; return a few facts for the report."""
    problems = []
    dur = duration / SR
    if not 60.0 <= dur <= 90.0:
        problems.append(f"duration {dur:.1f} s outside 60-90 s")
    lead = min(u.start for u in utts) / SR
    if not 0.5 <= lead <= 2.0:
        problems.append(f"leading silence {lead:.2f} s")
    for sp in ("coach", "client"):
        mine = sorted((u for u in utts if u.speaker == sp), key=lambda u: u.start)
        for a, b in zip(mine, mine[1:]):
            g = (b.start - a.end) / SR
            if g < 0.03 or 0.15 < g < 0.5:
                problems.append(f"{sp} same-speaker gap {g:.3f} s at {a.end / SR:.2f} ({a.text!r} -> {b.text!r})")
    for u in utts:
        if u.kind == "backchannel":
            if len(u.audio) / SR >= 1.0:
                problems.append(f"backchannel {u.text!r} is {len(u.audio) / SR:.2f} s")
            # inside the other's run (it may fall in a short gap between two of their sentences)
            run = [i for i in info if i["speaker"] != u.speaker and i["start"] + 0.5 * SR < u.start
                   and i["end"] - 0.5 * SR > u.end and i["end"] - i["start"] >= 3.0 * SR]
            if not run:
                problems.append(f"backchannel {u.text!r} at {u.start / SR:.2f} not inside a turn of 3 s or more by the other")
    sil = silences_of(segs, dur)
    long_sil = [s for s in sil if s[1] - s[0] >= 2.0]
    if len(long_sil) < 3:
        problems.append(f"only {len(long_sil)} silences >= 2 s")
    overlaps = [i for i in info if i["gap"] < 0 and i["interrupt"] is None]
    for i in overlaps:
        if not -1.0 <= i["gap"] <= -0.3:
            problems.append(f"overlap gap {i['gap']}")
    if len(overlaps) < 2:
        problems.append("fewer than 2 overlaps")
    mono = [(i["end"] - i["start"]) / SR for i in info if i["speaker"] == "coach" and i["nsent"] >= 5]
    if not mono or not any(25.0 <= m <= 40.0 for m in mono):
        problems.append(f"no coach monologue of 25-40 s (got {mono})")
    if not any(i["interrupt"] for i in info):
        problems.append("no interruption")
    quick = [i for i in info if 0.3 <= i["gap"] <= 0.8]
    if len(quick) < 2:
        problems.append("fewer than 2 quick switches")
    if problems:
        raise SystemExit(f"make_fixtures: fixture {name!r} breaks the timeline rules:\n  " + "\n  ".join(problems))
    return dict(lead=lead, silences=sil, long_silences=long_sil, monologue=max(mono),
                overlaps=len(overlaps), quick=len(quick))


# ----------------------------------------------------------------------------- trouble


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    n = len(x) + len(h) - 1
    nfft = 1 << (n - 1).bit_length()
    return np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[:n]


def biquad(x: np.ndarray, kind: str, f0: float, q: float = 0.7071) -> np.ndarray:
    """RBJ-cookbook 2nd-order filter, direct form I, for short signals (impulse responses)."""
    w0 = 2 * math.pi * f0 / SR
    alpha = math.sin(w0) / (2 * q)
    c = math.cos(w0)
    if kind == "lp":
        b = [(1 - c) / 2, 1 - c, (1 - c) / 2]
    else:
        b = [(1 + c) / 2, -(1 + c), (1 + c) / 2]
    a = [1 + alpha, -2 * c, 1 - alpha]
    b = [v / a[0] for v in b]
    a = [v / a[0] for v in a]
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = 0.0
    for i, xi in enumerate(x):
        yi = b[0] * xi + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        x2, x1, y2, y1 = x1, xi, y1, yi
        y[i] = yi
    return y


def room_ir(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Direct path + exponentially decaying noise tail (~60 ms), band-limited 200-5000 Hz (laptop speaker)."""
    n = int(0.1 * SR)
    h = np.zeros(n)
    h[0] = 1.0
    t = np.arange(n) / SR
    tau = 0.012  # s: the tail is ~-36 dB at 50 ms, ~-43 dB at 60 ms
    tail = rng.standard_normal(n) * 0.35 * np.exp(-t / tau)
    tail[: int(0.002 * SR)] = 0.0  # first reflections after 2 ms
    tail[int(0.060 * SR):] = 0.0
    h = h + tail
    for _ in range(2):
        h = biquad(h, "hp", 200.0)
        h = biquad(h, "lp", 5000.0)
    return h, {"direct": 1.0, "tail_start_ms": 2, "tail_end_ms": 60, "tail_tau_ms": 12, "tail_rel_amp": 0.35,
               "band_hz": [200, 5000], "filter": "two cascaded 2nd-order Butterworth high-pass at 200 Hz and low-pass at 5 kHz"}


def bleed(src: np.ndarray, gain_db: float, delay_s: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    h, ir_info = room_ir(rng)
    y = fft_convolve(src, h)[: len(src)]
    y *= db2amp(gain_db) * rms(src) / rms(y)  # leak level = gain relative to the source's level
    d = int(round(delay_s * SR))
    out = np.zeros_like(src)
    out[d:] = y[: len(src) - d]
    return out, ir_info


def fan_noise(n: int, level_dbfs: float, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Pink + brown noise (low-frequency emphasis) with a faint 100/200 Hz hum; steady; RMS = level."""
    nfft = 1 << (n - 1).bit_length()
    f = np.fft.rfftfreq(nfft, 1 / SR)
    fc = np.maximum(f, 20.0)
    hp = 1.0 / (1.0 + (25.0 / np.maximum(f, 1e-3)) ** 4)  # remove sub-audio drift
    def shaped(power):
        spec = np.fft.rfft(rng.standard_normal(nfft)) * hp / fc ** power
        x = np.fft.irfft(spec, nfft)[:n]
        return x / rms(x)
    pink, brown = shaped(0.5), shaped(1.0)
    t = np.arange(n) / SR
    hum = (math.sqrt(2) * 0.12 * np.sin(2 * math.pi * 100 * t + rng.uniform(0, 2 * math.pi))
           + math.sqrt(2) * 0.06 * np.sin(2 * math.pi * 200 * t + rng.uniform(0, 2 * math.pi)))
    x = 0.8 * pink + 0.6 * brown + hum
    x *= db2amp(level_dbfs) / rms(x)
    return x, {"rms_dbfs": level_dbfs, "mix": "0.8 pink + 0.6 brown (each unit RMS, high-passed 25 Hz)",
               "hum": "100 Hz at 0.12 and 200 Hz at 0.06 RMS relative to the unit noise"}


def clicks(n: int, spans: list[tuple[float, float]], rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Keyboard clicks: intervals triangular(0.15, 0.25, 0.6) s (mean 1/3 s -> ~3/s), each a 3-10 ms
    decaying broadband burst with peak -25..-15 dBFS."""
    out = np.zeros(n)
    count = 0
    for a, b in spans:
        t = a + rng.uniform(0.0, 0.3)
        while t < b:
            length = rng.uniform(0.003, 0.010)
            m = max(int(length * SR), 8)
            env = np.exp(-np.arange(m) / (m / 5.0))
            burst = rng.standard_normal(m)
            burst = burst - 0.5 * np.concatenate([[0.0], burst[:-1]])  # a little brighter than white
            burst *= env
            burst *= db2amp(rng.uniform(-25.0, -15.0)) / np.max(np.abs(burst))
            i = int(t * SR)
            if i + m <= n:
                out[i: i + m] += burst
                count += 1
            t += rng.triangular(0.15, 0.25, 0.6)
    total = sum(b - a for a, b in spans)
    return out, {"count": count, "rate_per_s": round(count / total, 2) if total else 0.0,
                 "intervals_s": "triangular(0.15, mode 0.25, 0.6)", "burst_ms": [3, 10], "peak_dbfs": [-25, -15],
                 "spans": [[round(a, 3), round(b, 3)] for a, b in spans]}


# ----------------------------------------------------------------------------- audio I/O


def _sinc_filter(L: int = 3, half: int = 48) -> np.ndarray:
    n = np.arange(-half * L, half * L + 1)
    fc = 0.95 / (2 * L)  # cycles per output sample: 7.6 kHz at 48 kHz
    h = 2 * fc * np.sinc(2 * fc * n) * np.kaiser(len(n), 9.0)
    return h / h.sum()


def _phases() -> list[np.ndarray]:
    h = _sinc_filter()  # 2 * 144 + 1 taps at 48 kHz, centre 144 = 3 * 48
    return [h[p::3] for p in range(3)]


def upsample3(x: np.ndarray) -> np.ndarray:
    """16 -> 48 kHz, zero-phase windowed-sinc, polyphase (output sample 3n is input sample n)."""
    g = _phases()
    y = np.empty(len(x) * 3)
    for p in range(3):
        y[p::3] = 3 * np.convolve(x, g[p])[48: 48 + len(x)]
    return y


def downsample3(y: np.ndarray) -> np.ndarray:
    """48 -> 16 kHz with the same filter (output sample n is input sample 3n)."""
    g = _phases()
    n = len(y) // 3
    y = y[: n * 3]
    z = np.convolve(y[0::3], g[0])[48: 48 + n]
    z += np.convolve(y[1::3], g[2])[47: 47 + n]
    z += np.convolve(y[2::3], g[1])[47: 47 + n]
    return z


def write_opus(path: Path, x16: np.ndarray) -> None:
    import av

    y = upsample3(x16).astype(np.float32)
    peak = float(np.max(np.abs(y)))
    if peak >= 0.99:
        raise SystemExit(f"make_fixtures: {path} would clip (peak {peak:.3f})")
    c = av.open(str(path), "w", format="ogg", options={"fflags": "+bitexact"})
    s = c.add_stream("libopus", rate=OPUS_SR)
    s.layout = "mono"
    s.bit_rate = OPUS_BITRATE
    s.codec_context.format = "flt"
    step = 960
    for i in range(0, len(y), step):
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[None, i: i + step]), format="flt", layout="mono")
        fr.sample_rate = OPUS_SR
        fr.pts = i
        for p in s.encode(fr):
            c.mux(p)
    for p in s.encode(None):
        c.mux(p)
    c.close()


def read_opus(path: Path) -> np.ndarray:
    """Decode to 48 kHz float mono."""
    import av

    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        parts = [fr.to_ndarray().astype(np.float32).reshape(-1) for fr in c.decode(st)]
    return np.concatenate(parts).astype(np.float64)


# ----------------------------------------------------------------------------- main


def r3(x: float) -> float:
    return round(float(x), 3)


def make_fixture(fx: dict) -> dict:
    rng = np.random.default_rng(fx["seed"])
    script = SCRIPTS[fx["script"]]
    level = fx["level"]
    utts, n, info = build_timeline(script, level, rng)
    dur = n / SR

    clean = {sp: np.zeros(n) for sp in ("coach", "client")}
    for u in utts:
        clean[u.speaker][u.start: u.end] += u.audio
    tracks = {sp: clean[sp].copy() for sp in clean}
    trouble: dict = {"speech_rms_dbfs": dict(level), "noise_floor_dbfs": NOISE_FLOOR_DBFS}

    for key, (gain, delay) in fx.get("bleed", {}).items():
        src, dst = key.split("_into_")
        leak, ir = bleed(clean[src], gain, delay, rng)
        tracks[dst] += leak
        trouble.setdefault("bleed", {})[key] = {"gain_db": gain, "delay_ms": round(delay * 1000),
                                                "relative_to": f"{src}'s clean track RMS", "impulse_response": ir}
    for sp, lvl in fx.get("fan", {}).items():
        noise, meta = fan_noise(n, lvl, rng)
        tracks[sp] += noise
        trouble.setdefault("fan", {})[sp] = meta
    for sp, how in fx.get("clicks", {}).items():
        if how == "all":
            spans = [(0.0, dur)]
        else:
            k = int(rng.integers(2, 4))
            spans = []
            while len(spans) < k:
                length = rng.uniform(5.0, 10.0)
                a = rng.uniform(1.0, dur - length - 1.0)
                if all(a > e + 3.0 or a + length < s - 3.0 for s, e in spans):
                    spans.append((a, a + length))
            spans.sort()
        x, meta = clicks(n, spans, rng)
        tracks[sp] += x
        trouble.setdefault("clicks", {})[sp] = meta
    for sp in tracks:
        tracks[sp] += rng.standard_normal(n) * db2amp(NOISE_FLOOR_DBFS)

    segs = {sp: segments_of(utts, sp) for sp in ("coach", "client")}
    facts = validate(fx["name"], utts, n, info, segs)

    d = OUT / fx["name"]
    d.mkdir(parents=True, exist_ok=True)
    for sp in ("coach", "client"):
        write_opus(d / f"{sp}.opus", tracks[sp])
    truth = {
        "name": fx["name"],
        "description": fx["description"],
        "duration": r3(dur),
        "sample_rate": SR,
        "voices": dict(VOICES),
        "segments": {sp: [[r3(a), r3(b)] for a, b in segs[sp]] for sp in ("coach", "client")},
        "utterances": [{"speaker": u.speaker, "start": r3(u.start / SR), "end": r3(u.end / SR), "text": u.text,
                        "kind": u.kind} for u in utts],
        "trouble": trouble,
    }
    (d / "truth.json").write_text(dump_truth(truth))
    return dict(fx=fx, truth=truth, facts=facts, utts=utts, n=n, clean=clean, tracks=tracks)


def dump_truth(truth: dict) -> str:
    """JSON with one line per segment list and per utterance, so diffs and eyes can follow it."""
    def compact(v) -> str:
        return json.dumps(v, separators=(", ", ": "))
    out = ["{"]
    keys = list(truth)
    for k in keys:
        v = truth[k]
        end = "," if k != keys[-1] else ""
        if k == "segments":
            out.append(' "segments": {')
            out.append(",\n".join(f"  {json.dumps(sp)}: {compact(segs)}" for sp, segs in v.items()))
            out.append(" }" + end)
        elif k == "utterances":
            out.append(' "utterances": [')
            out.append(",\n".join(f"  {compact(u)}" for u in v))
            out.append(" ]" + end)
        elif k == "trouble":
            body = json.dumps(v, indent=1)
            body = re.sub(r"\[\s+([-0-9.eE,\s]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", body)
            out.append(' "trouble": ' + body.replace("\n", "\n ") + end)
        else:
            out.append(f" {json.dumps(k)}: {compact(v)}{end}")
    out.append("}")
    text = "\n".join(out) + "\n"
    assert json.loads(text) == json.loads(json.dumps(truth))
    return text


def mask_of(segs: list, n: int) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for a, b in segs:
        m[int(round(a * SR)): int(round(b * SR))] = True
    return m


def check(res: dict) -> dict:
    """Decode the Opus files again and measure what a listener would hear."""
    name = res["fx"]["name"]
    truth = res["truth"]
    n = res["n"]
    dec = {}
    for sp in ("coach", "client"):
        y48 = read_opus(OUT / name / f"{sp}.opus")
        if abs(len(y48) / OPUS_SR - truth["duration"]) > 0.030:
            raise SystemExit(f"make_fixtures: {name}/{sp}.opus decodes to {len(y48) / OPUS_SR:.3f} s, "
                             f"truth says {truth['duration']:.3f} s")
        y = downsample3(y48)[:n]
        # alignment: the decoded track must line up with what we encoded (lag 0)
        ref = res["tracks"][sp][: len(y)]
        a0, a1 = int(n * 0.2), int(n * 0.2) + 4 * SR
        lags = range(-40, 41)
        cc = [float(np.dot(y[a0:a1], ref[a0 - L: a1 - L])) for L in lags]
        lag = list(lags)[int(np.argmax(cc))]
        if lag != 0:
            raise SystemExit(f"make_fixtures: {name}/{sp}.opus is shifted by {lag} samples after decoding")
        dec[sp] = (y, len(y48) / OPUS_SR)
    ms = {sp: mask_of(truth["segments"][sp], n) for sp in ("coach", "client")}
    rows = {}
    for sp in ("coach", "client"):
        y, dlen = dec[sp]
        own = ms[sp][: len(y)]
        oth = (ms[OTHER[sp]] & ~ms[sp])[: len(y)]
        none = ~(ms["coach"] | ms["client"])[: len(y)]
        rows[sp] = dict(decoded_s=dlen, own=dbfs(y[own]), other_only=dbfs(y[oth]), nobody=dbfs(y[none]),
                        peak=20 * math.log10(np.max(np.abs(y))),
                        talk=sum(b - a for a, b in truth["segments"][sp]), nseg=len(truth["segments"][sp]))
    res["decoded"] = {sp: dec[sp][0] for sp in dec}
    return rows


def energy_check(res: dict, which: str, tol: float) -> str:
    """A plain 10 ms energy detector (-50 dBFS, 300 ms bridging) on the clean tracks vs the truth.
    which = "mixed": the 16 kHz tracks as encoded; "decoded": after the Opus round trip."""
    lines = []
    for sp in ("coach", "client"):
        y = res["tracks"][sp] if which == "mixed" else res["decoded"][sp]
        fr = 160
        nb = len(y) // fr
        e = 10 * np.log10(np.mean(y[: nb * fr].reshape(nb, fr) ** 2, axis=1) + 1e-20)
        act = e > -50.0
        segs, i = [], 0
        while i < nb:
            if act[i]:
                j = i
                while j < nb and act[j]:
                    j += 1
                if segs and (i - segs[-1][1]) * fr / SR < BRIDGE:
                    segs[-1][1] = j
                else:
                    segs.append([i, j])
                i = j
            else:
                i += 1
        det = [[a * fr / SR, b * fr / SR] for a, b in segs]
        tru = res["truth"]["segments"][sp]
        agree = float(np.mean(mask_of(det, res["n"]) == mask_of(tru, res["n"])))
        errs = []
        for a, b in tru:
            best = min(det, key=lambda s: abs(s[0] - a) + abs(s[1] - b))
            errs.append(max(abs(best[0] - a), abs(best[1] - b)))
        lines.append(f"  {which:7s} {sp:6s}: truth {len(tru)} segments, detector {len(det)}; "
                     f"sample agreement {agree * 100:.2f} %; boundary error worst {max(errs) * 1000:.0f} ms, "
                     f"median {np.median(errs) * 1000:.0f} ms")
        if len(det) != len(tru) or max(errs) > tol:
            raise SystemExit(f"make_fixtures: energy detector and truth disagree on clean/{sp} ({which}):\n"
                             + "\n".join(lines))
    return "\n".join(lines)


README_HEAD = """# Test fixtures: synthetic two-track coaching calls with exact ground truth

Generated by `scripts/make_fixtures.py`; do not edit by hand. Regenerate from the repository root with

    .venv/bin/python scripts/make_fixtures.py

It needs Debian's `espeak-ng` and `sox` (`apt-get install espeak-ng sox`; the script stops with a one-line
message if either is missing), plus numpy and PyAV from the venv. The output is deterministic (seeded
numpy RNG, bit-exact Ogg muxing): a re-run gives byte-identical files.

## Layout

Each fixture `NAME/` holds

- `coach.opus`, `client.opus`: each participant's microphone track, mono Ogg/Opus, 48 kHz, ~32 kbit/s.
  Both start at media time 0 and decode to the same length as `truth.json`'s `duration` (checked to 30 ms;
  in practice exact). Mixed at 16 kHz, upsampled to 48 kHz for Opus.
- `truth.json`: `name`, `description`, `duration` (s), `sample_rate` (mixing rate), `voices`,
  `segments` (per participant, `[start, end]` in s), `utterances` (one per espeak sentence or backchannel:
  `speaker`, `start`, `end`, `text`, `kind` = `speech` | `backchannel`), and `trouble` (the parameters used).
  Times are rounded to 3 decimals.

How the truth is exact: every espeak-ng sentence is trimmed (samples below -50 dBFS at both ends) before
it is placed, so an utterance's span is exactly its audible audio. A segment is the union of one
participant's utterances, merging gaps < 0.3 s (the brief's 300 ms bridging rule). Same-speaker gaps are
never between 0.15 s and 0.5 s, so the truth does not hinge on the bridging threshold: sentences of one run
are 0.06-0.14 s apart, everything else >= 0.5 s. espeak-ng pauses inside a sentence longer than 0.2 s are
shortened to 0.15 s before placing (comma pauses are 0.15-0.19 s and stay). A cut-off utterance (interruption)
ends where its faded audio drops below the trim level; its text ends in ` [cut off]` and is the whole
sentence that was begun.

Truth is about each participant's own voice: bleed of the other voice, fan noise and clicks on a track
are never speech of that track's participant.

## Voices and levels

- coach: espeak-ng `{vc}` at {sc} wpm (male, median f0 ~{f0c:.0f} Hz)
- client: espeak-ng `{vk}` at {sk} wpm (female, British English, median f0 ~{f0k:.0f} Hz).
  Why not `en-gb+f3`: with espeak-ng 1.51 `en-gb+VARIANT` silently ignores the variant (you get the
  default male voice; `en` already is British English), and the f2-f5 variants add a built-in 120-140 ms
  echo that leaves a -50 dBFS tail after every utterance; f1 has none. The script checks that the two
  voices' pitch differs by at least 50 Hz.
- One espeak-ng call per sentence (espeak puts 0.3 s between sentences of one call, right at the
  bridging threshold; within a sentence, comma pauses are 0.15-0.19 s).
- Every sentence is scaled to RMS -20 dBFS (client -30 dBFS where a fixture says so). The m3 voice has a
  ~20 dB crest factor, so peaks above -8 dBFS are soft-limited towards -2 dBFS (like a mic limiter) and
  the RMS is set again.
- Every track carries a -70 dBFS white noise floor, so no track is digital silence.
- Opus at 32 kbit/s smears abrupt ends of unvoiced sounds (final "k", "p") by up to ~60 ms at about
  -45 dBFS; the truth is the audio as mixed, before encoding. On `clean`, a plain -50 dBFS energy
  detector agrees with the truth within 10 ms on the mixed tracks and within ~65 ms after decoding.

## Timeline of every conversation

Each fixture has its own scripted conversation (career change, health habits, a teacher's wait time, a new
manager, boundaries, thesis procrastination). Each has 0.5-2 s of leading silence and some trailing
silence; turn gaps from 0.3 s to {maxgap:.1f} s, at least three silences of 2 s or more; quick 0.3-0.8 s switches;
overlaps where the next speaker starts 0.3-1.0 s before the other finishes; backchannels ("Mm-hm",
"Yeah", "Right", "Okay", all under 1 s) in the middle of the other's long turn; one coach monologue of
25-40 s of several sentences; one interruption (one starts while the other speaks, and the other is cut
off 0.7-0.9 s later).

Bleed: the source's clean voice track convolved with a synthetic room/speaker impulse response (direct
path + exponentially decaying noise tail, tau 12 ms, ending at 60 ms, band-limited 200-5000 Hz like a laptop
speaker), scaled so its RMS is the stated gain relative to the source track's RMS, and delayed.
Fan: pink + brown noise with a faint 100/200 Hz hum, steady, given RMS, independent per track.
Clicks: 3-10 ms decaying broadband bursts, peak -25..-15 dBFS, intervals triangular(0.15, 0.25, 0.6) s
(~3 per second).

## Fixtures

| fixture | conversation | duration | trouble |
| --- | --- | --- | --- |
"""


def write_readme(results: list, f0c: float, f0k: float) -> None:
    lines = [README_HEAD.format(f0c=f0c, f0k=f0k, vc=VOICES["coach"], vk=VOICES["client"],
                                sc=SPEEDS["coach"], sk=SPEEDS["client"],
                                maxgap=max(b - a for r in results for a, b in r["facts"]["silences"]))]
    for r in results:
        t = r["truth"]
        lines.append(f"| `{t['name']}` | {r['fx']['script']} | {t['duration']:.1f} s | {t['description']} |\n")
    lines.append("\n## Truth summary\n\n")
    lines.append("| fixture | coach talk (s) | client talk (s) | coach segments | client segments | "
                 "silences >= 2 s (s) | longest coach run (s) |\n| --- | --- | --- | --- | --- | --- | --- |\n")
    for r in results:
        t, f = r["truth"], r["facts"]
        talk = {sp: sum(b - a for a, b in t["segments"][sp]) for sp in ("coach", "client")}
        sil = ", ".join(f"{b - a:.1f}" for a, b in f["long_silences"])
        lines.append(f"| `{t['name']}` | {talk['coach']:.1f} | {talk['client']:.1f} | {len(t['segments']['coach'])} | "
                     f"{len(t['segments']['client'])} | {sil} | {f['monologue']:.1f} |\n")
    lines.append("\n## Trouble parameters\n\n")
    for r in results:
        t = r["truth"]["trouble"]
        parts = [f"speech RMS coach {t['speech_rms_dbfs']['coach']:.0f} dBFS, client "
                 f"{t['speech_rms_dbfs']['client']:.0f} dBFS"]
        for k, v in t.get("bleed", {}).items():
            parts.append(f"bleed {k.replace('_', ' ')} {v['gain_db']:.0f} dB / {v['delay_ms']} ms")
        for sp, v in t.get("fan", {}).items():
            parts.append(f"fan on {sp} {v['rms_dbfs']:.0f} dBFS")
        for sp, v in t.get("clicks", {}).items():
            where = "all along" if len(v["spans"]) == 1 and v["spans"][0][0] == 0 else \
                "in " + ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in v["spans"])
            parts.append(f"clicks on {sp} {where} ({v['count']} clicks, {v['rate_per_s']}/s)")
        lines.append(f"- `{r['truth']['name']}`: " + "; ".join(parts) + ".\n")
    (OUT / "README.md").write_text("".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="make only these fixtures")
    args = ap.parse_args()
    check_tools()
    t0 = time.time()
    f0c, f0k = voice_f0("coach"), voice_f0("client")
    if abs(f0c - f0k) < 50:
        raise SystemExit(f"make_fixtures: the two voices are not clearly different (f0 {f0c:.0f} vs {f0k:.0f} Hz)")
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    for fx in FIXTURES:
        if args.only and fx["name"] not in args.only:
            continue
        results.append(make_fixture(fx))
    long_ones = [r for r in results if any(8.0 <= b - a <= 15.0 for a, b in r["facts"]["long_silences"])]
    if not args.only and len(long_ones) < 2:
        raise SystemExit("make_fixtures: fewer than two fixtures have a silence of 8-15 s")
    if not args.only:
        write_readme(results, f0c, f0k)
    print(f"voices: coach {VOICES['coach']} f0 ~{f0c:.0f} Hz, client {VOICES['client']} f0 ~{f0k:.0f} Hz; "
          f"{STATS['espeak_calls']} espeak-ng calls")
    if STATS["inner_pauses_shortened"]:
        print("inner espeak pauses > 0.2 s shortened to 0.15 s:")
        for sp, text, run in STATS["inner_pauses_shortened"]:
            print(f"  {sp}: {run:.3f} s in {text!r}")
    print("\nper track (decoded Opus, 16 kHz): RMS of own speech / other's speech only / nobody speaking, peak")
    for r in results:
        rows = check(r)
        t, f = r["truth"], r["facts"]
        nbc = sum(1 for u in t["utterances"] if u["kind"] == "backchannel")
        print(f"{t['name']}: {t['duration']:.3f} s; {len(t['utterances'])} utterances ({nbc} backchannels), "
              f"{f['overlaps']} overlaps, {f['quick']} quick switches, lead {f['lead']:.2f} s, "
              f"coach monologue {f['monologue']:.1f} s")
        print("  silences >= 2 s: " + ", ".join(f"{a:.1f}-{b:.1f} ({b - a:.1f})" for a, b in f["long_silences"]))
        for sp, v in rows.items():
            print(f"  {sp:6s}: decoded {v['decoded_s']:.3f} s, talk {v['talk']:.2f} s in {v['nseg']} segments; "
                  f"own {v['own']:.1f} / other-only {v['other_only']:.1f} / nobody {v['nobody']:.1f} dBFS; "
                  f"peak {v['peak']:.1f} dBFS")
        if t["name"] == "clean":
            print("energy detector (-50 dBFS, 10 ms frames, 300 ms bridging) vs truth on clean:")
            print(energy_check(r, "mixed", 0.015))
            print(energy_check(r, "decoded", 0.080))
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"\ntests/fixtures: {total / 1e6:.2f} MB in total; {time.time() - t0:.1f} s")
    if total > 5e6:
        raise SystemExit("make_fixtures: fixtures exceed 5 MB")


if __name__ == "__main__":
    main()
