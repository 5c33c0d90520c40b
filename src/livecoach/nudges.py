"""Nudges: rare one-word cues to the coach, decided from the live metrics (pure, no I/O).

The research behind the brief says sparse cues help and dense ones distract, so every rule is
rate-limited twice: at most one nudge per ``min_gap_s`` of any kind, and one per
``same_kind_gap_s`` of each kind. All times are session (media) time in seconds. The rules, their
defaults and the exact conditions are published in docs/sidebar.md.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

TALK_BALANCE, MONOLOGUE, WAIT, CLIENT_QUIET = "talk_balance", "monologue", "wait", "client_quiet"
KINDS = (TALK_BALANCE, MONOLOGUE, WAIT, CLIENT_QUIET)
"""In order of precedence: when several rules hold at once, the first one is the nudge."""
TEXTS = {TALK_BALANCE: "Listen", MONOLOGUE: "Pause", WAIT: "Wait", CLIENT_QUIET: "Invite them in"}
MAX_WINDOW_S = 3600.0
"""The longest wait-rule window the settings allow: filled silences older than this are forgotten."""


@dataclass(frozen=True)
class TalkBalanceRule:
    enabled: bool = True
    share: float = 0.65
    min_speech_s: float = 120.0


@dataclass(frozen=True)
class MonologueRule:
    enabled: bool = True
    seconds: float = 90.0


@dataclass(frozen=True)
class WaitRule:
    enabled: bool = True
    filled_silences: int = 3
    window_s: float = 300.0


@dataclass(frozen=True)
class ClientQuietRule:
    enabled: bool = True
    seconds: float = 240.0


@dataclass(frozen=True)
class NudgeRules:
    """The coach's thresholds; the defaults are the brief's."""

    min_gap_s: float = 60.0
    same_kind_gap_s: float = 300.0
    show_s: float = 60.0
    talk_balance: TalkBalanceRule = field(default_factory=TalkBalanceRule)
    monologue: MonologueRule = field(default_factory=MonologueRule)
    wait: WaitRule = field(default_factory=WaitRule)
    client_quiet: ClientQuietRule = field(default_factory=ClientQuietRule)

    @classmethod
    def from_settings(cls, nudges: dict[str, Any] | None) -> NudgeRules:
        """The rules from the ``nudges`` part of a coach's settings; what it leaves out keeps its default."""
        rules = cls()
        for key, value in (nudges or {}).items():
            current = getattr(rules, key)
            rules = replace(rules, **{key: replace(current, **value) if isinstance(value, dict) else value})
        return rules

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_NUDGES = NudgeRules().to_dict()


@dataclass(frozen=True)
class Nudge:
    id: str
    kind: str
    text: str
    session_time: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Nudger:
    """Decides, tick by tick, whether the coach gets a nudge now; remembers the one that stands."""

    def __init__(self, rules: NudgeRules | None = None) -> None:
        self.rules = rules or NudgeRules()
        self._last_any = float("-inf")
        self._last: dict[str, float] = {}
        self._standing: Nudge | None = None
        self._filled_seen = 0
        self._filled_at: deque[float] = deque()  # when each new filled silence was first seen
        self._client_joined: float | None = None

    def evaluate(
        self, now: float, metrics: dict[str, Any], client_present: bool, client_last_speech_end: float | None
    ) -> Nudge | None:
        """A new nudge if a rule holds and the rate limits allow one, else None."""
        self._observe(now, metrics, client_present)
        if now - self._last_any < self.rules.min_gap_s:
            return None
        for kind in KINDS:
            if now - self._last.get(kind, float("-inf")) >= self.rules.same_kind_gap_s and self._holds(
                kind, now, metrics, client_last_speech_end
            ):
                return self._fire(kind, now)
        return None

    def standing(self, now: float) -> Nudge | None:
        """The last nudge while it is shown: until dismissed or ``show_s`` after it fired."""
        nudge = self._standing
        if nudge is not None and now - nudge.session_time >= self.rules.show_s:
            self._standing = nudge = None
        return nudge

    def dismiss(self, nudge_id: str) -> None:
        if self._standing is not None and self._standing.id == nudge_id:
            self._standing = None

    def _observe(self, now: float, metrics: dict[str, Any], client_present: bool) -> None:
        """Bookkeeping the rules need beyond one metrics snapshot: when filled silences appeared
        (the metrics count them over their own window, the rule's may differ) and when the client joined."""
        filled = metrics.get("filled_silences", 0)
        self._filled_at.extend([now] * max(0, filled - self._filled_seen))
        self._filled_seen = max(self._filled_seen, filled)
        while self._filled_at and self._filled_at[0] < now - MAX_WINDOW_S:
            self._filled_at.popleft()
        if not client_present:
            self._client_joined = None
        elif self._client_joined is None:
            self._client_joined = now

    def _holds(self, kind: str, now: float, metrics: dict[str, Any], client_last_speech_end: float | None) -> bool:
        if kind == TALK_BALANCE:
            return self._talk_balance(metrics)
        if kind == MONOLOGUE:
            rule = self.rules.monologue
            return rule.enabled and metrics.get("current_monologue", {}).get("coach", 0.0) >= rule.seconds
        if kind == WAIT:
            return self._wait(now)
        return self._client_quiet(now, metrics, client_last_speech_end)

    def _talk_balance(self, metrics: dict[str, Any]) -> bool:
        """Coach share over the metrics' window above the threshold, with enough speech in it to mean something."""
        rule = self.rules.talk_balance
        share = metrics.get("window_talk_share_coach")
        speech = sum(metrics.get("window_talk_time", {}).values())
        return rule.enabled and share is not None and share > rule.share and speech >= rule.min_speech_s

    def _wait(self, now: float) -> bool:
        """Enough filled silences within the window, counting only those since the last wait
        nudge: the same silences never earn the coach a second one."""
        rule = self.rules.wait
        since = max(now - rule.window_s, self._last.get(WAIT, float("-inf")))
        return rule.enabled and sum(1 for t in self._filled_at if t > since) >= rule.filled_silences

    def _client_quiet(self, now: float, metrics: dict[str, Any], last_end: float | None) -> bool:
        """The client is present and has not spoken for a while, counted from the later of their
        last speech and their joining (a client who just arrived is not quiet)."""
        rule = self.rules.client_quiet
        if not rule.enabled or self._client_joined is None or "client" in metrics.get("speaking", ()):
            return False
        quiet_since = max(self._client_joined, last_end if last_end is not None else float("-inf"))
        return now - quiet_since >= rule.seconds

    def _fire(self, kind: str, now: float) -> Nudge:
        self._last_any = self._last[kind] = now
        self._standing = Nudge(f"n-{secrets.token_hex(5)}", kind, TEXTS[kind], round(now, 3))
        return self._standing
