"""Sessions for the library's tests and benchmark, written through the Store as a call writes
them (speech events, joined and left, tags, nudges, a finished recording's row), never by SQL.

Each session is a seeded turn-taking pattern whose coach share is chosen by the caller, so that
a client's trend has a known shape.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from livecoach.store import Store

KINDS = [("breakthrough", "Breakthrough"), ("resistance", "Resistance"), ("action_commitment", "Action commitment"),
         ("goal_clarity", "Goal clarity")]


@dataclass(frozen=True)
class Made:
    id: str
    coach_token: str
    client: str
    created_at: float
    tags: int
    nudges: int
    recorded: bool


def make_session(store: Store, coach_id: str, client: str, created_at: float, seed: int, minutes: float = 10.0,
                 coach_share: float = 0.6, tags: int = 3, nudges: int = 1, recorded: bool = True,
                 note: str = "") -> Made:
    """A whole ended session of ``minutes``: turns alternate, the coach's last ``coach_share`` of
    the talk on average, with 1 to 4 s waits between turns."""
    rng = random.Random(seed)
    new = store.create_session(client, video_recording=False, coach_id=coach_id, created_at=created_at)
    end = minutes * 60.0
    events: list[tuple[float, float | None, str, str | None, dict]] = [
        (created_at, 0.0, "joined", "coach", {}), (created_at + 5, 5.0, "joined", "client", {})]
    t, who = 6.0, "coach"
    while t < end - 10:
        mean = 12.0 * (coach_share if who == "coach" else 1 - coach_share) * 2
        length = max(0.8, rng.uniform(0.8, 1.2) * mean)
        stop = min(t + length, end - 5)
        events.append((created_at + stop, stop, "speech", who, {"start": round(t, 3), "end": round(stop, 3)}))
        t = stop + rng.uniform(0.8, 4.0)
        who = "client" if who == "coach" else "coach"
    events += [(created_at + end, end, "left", "client", {}), (created_at + end, end, "left", "coach", {})]
    store.log_events(new.id, events)
    for i in range(tags):
        kind, label = KINDS[(seed + i) % len(KINDS)]
        store.put_tag(new.id, f"tag-{seed:06d}-{i:04d}", kind, label, round(end * (i + 1) / (tags + 1), 3),
                      note=note or f"note {i + 1}")
    for i in range(nudges):
        store.add_nudge(new.id, f"n{i}", "talk_balance", "Listen", round(end * (i + 0.5) / max(1, nudges), 3))
    if recorded:
        store.create_recording(new.id, "coach-audio-1", "coach", "audio", "coach-audio-1.webm", "audio/webm", 0.0)
        store.update_recording(new.id, "coach-audio-1", state="finished", duration_s=end)
    return Made(new.id, new.coach_token, client, created_at, tags, nudges, recorded)
