"""The real-speech evaluation (issue 12): part of the held-out split, scored as scripts/evaluate.py does.

The dialogs are built from ../shared/data by scripts/make_real_eval.py into a temporary folder
(about 2 s); the test skips when that data is absent. The bounds are the figures measured on
this subset (docs/engine.md, "Real speech") with a margin: they guard against regressions, they
are not the issue's targets, which the engine does not reach yet.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SUBSET = ["roomecho", "fan", "quietbike", "meeting"]

pytestmark = pytest.mark.skipif(
    not (DATA / "real-speech").is_dir() or not (DATA / "real-noise").is_dir(),
    reason="../shared/data (real speech and noise) is not here",
)

sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    import evaluate
    import make_real_eval

    out = tmp_path_factory.mktemp("real-eval")
    folders = make_real_eval.generate(DATA, out, ("heldout",), SUBSET)
    rows = evaluate.evaluate_real(folders, ("livecoach", "webrtcvad"))
    return {s: evaluate.summarise(rows, s) for s in ("livecoach", "webrtcvad")}, rows


def test_the_held_out_subset_is_the_one_measured(scored):
    _, rows = scored
    assert [r["dialog"] for r in rows] == [f"heldout-{c}" for c in SUBSET]
    assert all(r["split"] == "heldout" for r in rows)


def test_talk_share_error_on_held_out_dialogs(scored):
    s, _ = scored
    # measured: mean 3.08 pp, worst 6.37 pp (plain webrtcvad 2.18 / 4.00 on this subset)
    assert s["livecoach"]["share_error_mean_pp"] <= 4.5
    assert s["livecoach"]["share_error_worst_pp"] <= 8.0


def test_frame_f1_beats_plain_webrtcvad(scored):
    s, _ = scored
    # measured: 0.877 (worst 0.768) against webrtcvad's 0.682
    assert s["livecoach"]["f1_mean"] >= 0.85
    assert s["livecoach"]["f1_worst"] >= 0.72
    assert s["livecoach"]["f1_mean"] >= s["webrtcvad"]["f1_mean"] + 0.1


def test_long_silences_found(scored):
    s, _ = scored
    # measured: 6 of 11 silences of 2 s or more within 0.3 s (plain webrtcvad: 0)
    assert s["livecoach"]["silences"] == 11
    assert s["livecoach"]["silences_found"] >= 5
    assert s["livecoach"]["silences_found"] > s["webrtcvad"]["silences_found"]


def test_onsets_confirmed(scored):
    s, _ = scored
    # measured: none missed, p50 0.12 s, p95 0.37 s (the target, 0.15 s, is not reached)
    assert s["livecoach"]["onsets_missed"] == 0
    assert s["livecoach"]["onset_p95_s"] is not None and s["livecoach"]["onset_p95_s"] <= 0.5


def test_the_generator_is_deterministic(tmp_path):
    import make_real_eval

    a = make_real_eval.generate(DATA, tmp_path / "a", ("heldout",), ["cafe"])[0]
    b = make_real_eval.generate(DATA, tmp_path / "b", ("heldout",), ["cafe"])[0]
    for name in ("coach.wav", "client.wav", "truth.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.xfail(strict=True, reason="issue 12: fast real typing is taken for speech (28 of 30 s); "
                   "the click rejection only holds on the synthetic clicks")
def test_real_keyboard_alone_is_not_speech():
    import make_real_eval

    from livecoach.engine import Engine

    x = make_real_eval.read_wav(DATA / "real-noise" / "noise" / "typing_mechanical_keyboard.wav")
    engine = Engine()
    engine.push("coach", np.clip(x * 32768, -32768, 32767).astype(np.int16))
    engine.push("client", np.zeros(x.size, np.int16))
    engine.finish()
    talk = sum(b - a for a, b in engine.segments()["coach"])
    assert talk < 1.0
