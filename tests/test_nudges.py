"""The nudge rules: each fires at its threshold and not below, within the rate limits (pure, no I/O)."""

import pytest

from livecoach.nudges import DEFAULT_NUDGES, Nudger, NudgeRules


def metrics(
    share: float | None = 0.5,
    coach_talk: float = 0.0,
    client_talk: float = 0.0,
    monologue: float = 0.0,
    filled: int = 0,
    speaking: tuple[str, ...] = (),
) -> dict:
    """The parts of the metric object (docs/analysis-json.md) the rules read."""
    return {
        "window_talk_share_coach": share,
        "window_talk_time": {"coach": coach_talk, "client": client_talk},
        "current_monologue": {"coach": monologue, "client": 0.0},
        "filled_silences": filled,
        "speaking": list(speaking),
    }


def only_settings(kind: str, **changes) -> dict:
    """The ``nudges`` settings with every rule but ``kind`` disabled, and ``changes`` to it."""
    nudges = {k: {"enabled": k == kind} for k in ("talk_balance", "monologue", "wait", "client_quiet")}
    nudges[kind] |= changes
    return nudges


def only(kind: str, **changes) -> NudgeRules:
    return NudgeRules.from_settings(only_settings(kind, **changes))


def test_the_defaults_are_the_briefs():
    rules = NudgeRules()
    assert (rules.min_gap_s, rules.same_kind_gap_s, rules.show_s) == (60, 300, 60)
    assert (rules.talk_balance.share, rules.talk_balance.min_speech_s) == (0.65, 120)
    assert rules.monologue.seconds == 90
    assert (rules.wait.filled_silences, rules.wait.window_s) == (3, 300)
    assert rules.client_quiet.seconds == 240
    assert DEFAULT_NUDGES["talk_balance"] == {"enabled": True, "share": 0.65, "min_speech_s": 120.0}


def test_talk_balance_needs_a_share_above_the_threshold():
    at = Nudger(only("talk_balance"))
    assert at.evaluate(500, metrics(share=0.65, coach_talk=100, client_talk=54), False, None) is None
    above = Nudger(only("talk_balance"))
    nudge = above.evaluate(500, metrics(share=0.651, coach_talk=100, client_talk=54), False, None)
    assert nudge is not None and (nudge.kind, nudge.text, nudge.session_time) == ("talk_balance", "Listen", 500)


def test_talk_balance_needs_enough_speech_in_the_window():
    few = metrics(share=0.9, coach_talk=100, client_talk=19.9)
    assert Nudger(only("talk_balance")).evaluate(500, few, False, None) is None
    enough = metrics(share=0.9, coach_talk=100, client_talk=20)
    assert Nudger(only("talk_balance")).evaluate(500, enough, False, None).kind == "talk_balance"
    assert Nudger(only("talk_balance")).evaluate(500, metrics(share=None), False, None) is None


def test_monologue_fires_when_the_coachs_turn_reaches_the_threshold():
    nudger = Nudger(only("monologue"))
    assert nudger.evaluate(100, metrics(monologue=89.9), False, None) is None
    assert nudger.evaluate(101, metrics(monologue=90.0), False, None).text == "Pause"


def test_wait_counts_filled_silences_within_its_window():
    nudger = Nudger(only("wait"))
    assert nudger.evaluate(10, metrics(filled=1), False, None) is None
    assert nudger.evaluate(20, metrics(filled=2), False, None) is None
    assert nudger.evaluate(30, metrics(filled=3), False, None).kind == "wait"


def test_wait_forgets_filled_silences_older_than_its_window():
    nudger = Nudger(only("wait", window_s=60))
    nudger.evaluate(10, metrics(filled=1), False, None)
    nudger.evaluate(20, metrics(filled=2), False, None)
    assert nudger.evaluate(75, metrics(filled=3), False, None) is None  # the first is 65 s old
    assert nudger.evaluate(79, metrics(filled=4), False, None).kind == "wait"  # 20, 75, 79


def test_the_same_filled_silences_never_earn_a_second_wait_nudge():
    nudger = Nudger(NudgeRules.from_settings({"same_kind_gap_s": 0, "min_gap_s": 0} | only_settings("wait")))
    assert nudger.evaluate(30, metrics(filled=3), False, None).kind == "wait"
    assert nudger.evaluate(40, metrics(filled=3), False, None) is None
    assert nudger.evaluate(50, metrics(filled=5), False, None) is None
    assert nudger.evaluate(60, metrics(filled=6), False, None).kind == "wait"


def test_client_quiet_counts_from_joining_then_from_their_last_speech():
    nudger = Nudger(only("client_quiet"))
    assert nudger.evaluate(100, metrics(), False, None) is None  # not there: never quiet
    assert nudger.evaluate(110, metrics(), True, None) is None  # joined at 110
    assert nudger.evaluate(349.9, metrics(), True, None) is None
    assert nudger.evaluate(350, metrics(), True, None).text == "Invite them in"

    spoke = Nudger(only("client_quiet"))
    spoke.evaluate(0, metrics(), True, None)
    assert spoke.evaluate(400, metrics(), True, 200.0) is None
    assert spoke.evaluate(440, metrics(), True, 200.0).kind == "client_quiet"


def test_client_quiet_never_fires_while_the_client_speaks_or_is_away():
    nudger = Nudger(only("client_quiet"))
    nudger.evaluate(0, metrics(), True, None)
    assert nudger.evaluate(300, metrics(speaking=("client",)), True, None) is None
    assert nudger.evaluate(301, metrics(), False, None) is None
    assert nudger.evaluate(302, metrics(), True, None) is None  # rejoined: counts again from 302
    assert nudger.evaluate(541.9, metrics(), True, None) is None
    assert nudger.evaluate(542, metrics(), True, None) is not None


def test_at_most_one_nudge_a_minute_of_any_kind():
    nudger = Nudger()
    assert nudger.evaluate(100, metrics(monologue=95), False, None).kind == "monologue"
    talky = metrics(share=0.9, coach_talk=200, client_talk=10, filled=3)
    assert nudger.evaluate(159.9, talky, False, None) is None
    assert nudger.evaluate(160, talky, False, None).kind == "talk_balance"


def test_the_same_kind_at_most_once_in_five_minutes():
    nudger = Nudger()
    assert nudger.evaluate(100, metrics(monologue=95), False, None).kind == "monologue"
    assert nudger.evaluate(200, metrics(monologue=195), False, None) is None
    assert nudger.evaluate(399.9, metrics(monologue=395), False, None) is None
    assert nudger.evaluate(400, metrics(monologue=395), False, None).kind == "monologue"


def test_rules_hold_in_order_of_precedence():
    nudger = Nudger()
    assert nudger.evaluate(0, metrics(), True, None) is None  # the client joins
    everything = metrics(share=0.9, coach_talk=200, client_talk=10, monologue=95, filled=3)
    assert nudger.evaluate(300, everything, True, 0.0).kind == "talk_balance"
    assert nudger.evaluate(360, everything, True, 0.0).kind == "monologue"
    assert nudger.evaluate(420, everything | {"filled_silences": 6}, True, 0.0).kind == "wait"
    assert nudger.evaluate(480, everything, True, 0.0).kind == "client_quiet"
    assert nudger.evaluate(540, everything, True, 0.0) is None  # each kind had its turn


def test_disabled_rules_never_fire():
    off = {k: {"enabled": False} for k in ("talk_balance", "monologue", "wait", "client_quiet")}
    nudger = Nudger(NudgeRules.from_settings(off))
    everything = metrics(share=0.9, coach_talk=200, client_talk=10, monologue=95, filled=10)
    assert all(nudger.evaluate(t, everything, True, 0.0) is None for t in range(0, 3600, 30))


def test_changed_settings_apply_at_once_and_keep_the_rate_limits():
    nudger = Nudger()
    assert nudger.evaluate(100, metrics(monologue=50), False, None) is None
    nudger.rules = NudgeRules.from_settings({"monologue": {"seconds": 45}})
    assert nudger.evaluate(101, metrics(monologue=51), False, None).kind == "monologue"
    nudger.rules = NudgeRules.from_settings({"monologue": {"seconds": 45}, "min_gap_s": 10, "same_kind_gap_s": 20})
    assert nudger.evaluate(120, metrics(monologue=70), False, None) is None  # 19 s after the last
    assert nudger.evaluate(121, metrics(monologue=71), False, None).kind == "monologue"


def test_a_nudge_stands_until_shown_long_enough_or_dismissed():
    nudger = Nudger(NudgeRules.from_settings({"show_s": 30}))
    first = nudger.evaluate(100, metrics(monologue=95), False, None)
    assert nudger.standing(129.9) == first
    assert nudger.standing(130) is None
    second = nudger.evaluate(460, metrics(monologue=95), False, None)
    nudger.dismiss("someone-else")
    assert nudger.standing(461) == second
    nudger.dismiss(second.id)
    assert nudger.standing(461) is None
    assert first.id != second.id


@pytest.mark.parametrize("kind", ["talk_balance", "monologue", "wait", "client_quiet"])
def test_each_kind_has_its_one_word_text(kind):
    everything = metrics(share=0.9, coach_talk=200, client_talk=10, monologue=95, filled=3)
    nudger = Nudger(only(kind))
    assert nudger.evaluate(0, metrics(), True, None) is None
    nudge = nudger.evaluate(300, everything, True, 0.0)
    assert nudge.kind == kind
    assert nudge.text == {"talk_balance": "Listen", "monologue": "Pause", "wait": "Wait",
                          "client_quiet": "Invite them in"}[kind]
