"""`livecoach analyze` as a user runs it: a real process, real files, every output format."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import track, track_path
from livecoach.ingest import write_wav

ROLES = ("coach", "client")


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "livecoach", *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def as_json():
    done = run("analyze", "--coach", track_path("bleed", "coach"), "--client", track_path("bleed", "client"), "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_text_summary_reads_at_a_glance():
    done = run("analyze", "--coach", track_path("clean", "coach"), "--client", track_path("clean", "client"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in ("Talk balance", "Talk time", "Wait time", "Silences", "Longest turn", "Turn taking"):
        assert heading in out
    assert "coach 6" in out and "client 3" in out  # about 61% / 39% in the clean fixture
    assert "Silences of 2 s or more:" in out


def test_json_carries_metrics_segments_and_events(as_json):
    data = as_json
    assert data["schema"] == "livecoach.analysis/1"
    assert set(data) >= {"sources", "duration", "metrics", "timeline", "attribution", "config"}
    tl = data["timeline"]
    assert set(tl) >= {"segments", "silences", "overlaps", "turns", "waits", "filled_silences", "interruptions"}
    assert all(len(tl["segments"][p]) >= 5 for p in ROLES)
    m = data["metrics"]
    coach, client = m["talk_time"]["coach"], m["talk_time"]["client"]
    assert m["talk_share_coach"] == pytest.approx(coach / (coach + client), abs=0.001)
    assert data["attribution"]["coach_into_client"] == pytest.approx(-25, abs=3)


def test_rttm_has_one_line_per_segment(as_json, tmp_path):
    out = tmp_path / "x.rttm"
    done = run("analyze", "--coach", track_path("bleed", "coach"), "--client", track_path("bleed", "client"), "--format", "rttm", "-o", out)
    assert done.returncode == 0 and done.stdout == ""
    lines = out.read_text().splitlines()
    segments = [s for p in ROLES for s in as_json["timeline"]["segments"][p]]
    assert len(lines) == len(segments)
    for line in lines:
        f = line.split()
        assert f[0] == "SPEAKER" and f[1] == "coach" and f[2] == "1" and f[5:7] == ["<NA>", "<NA>"]
        assert f[7] in ROLES and f[8:] == ["<NA>", "<NA>"]
        assert float(f[3]) >= 0 and float(f[4]) > 0
    starts = [float(line.split()[3]) for line in lines]
    assert starts == sorted(starts)


def test_stereo_file_gives_the_same_result_as_two_files(tmp_path, as_json):
    stereo = tmp_path / "call (2).wav"
    left, right = track("bleed", "coach"), track("bleed", "client")
    write_wav(stereo, np.stack([left, right], axis=1))
    done = run("analyze", "--stereo", stereo, "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["timeline"]["segments"] == as_json["timeline"]["segments"]
    assert data["metrics"] == as_json["metrics"]
    rttm = run("analyze", "--stereo", stereo, "--format", "rttm")
    assert rttm.stdout.splitlines()[0].split()[1] == "call_(2)"


def one_line_error(done):
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_missing_file_is_one_clear_line(tmp_path):
    msg = one_line_error(run("analyze", "--coach", tmp_path / "nope.wav", "--client", track_path("clean", "client")))
    assert "nope.wav" in msg and "no such file" in msg


def test_an_unreadable_file_is_one_clear_line(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("these are my session notes, not audio\n" * 20)
    msg = one_line_error(run("analyze", "--coach", bad, "--client", track_path("clean", "client")))
    assert "notes.wav" in msg


def test_an_empty_file_is_one_clear_line(tmp_path):
    empty = tmp_path / "empty.opus"
    empty.write_bytes(b"")
    msg = one_line_error(run("analyze", "--coach", track_path("clean", "coach"), "--client", empty))
    assert "empty.opus" in msg and "empty" in msg


def test_a_directory_is_one_clear_line(tmp_path):
    msg = one_line_error(run("analyze", "--coach", tmp_path, "--client", track_path("clean", "client")))
    assert str(tmp_path) in msg


def test_mismatched_inputs_are_refused(tmp_path):
    same = track_path("clean", "coach")
    msg = one_line_error(run("analyze", "--coach", same, "--client", same))
    assert "same recording" in msg
    msg = one_line_error(run("analyze", "--stereo", same))
    assert "channel" in msg


def test_usage_mistakes_are_explained(tmp_path):
    done = run("analyze", "--coach", track_path("clean", "coach"))
    assert done.returncode == 2 and "--client" in done.stderr and "Traceback" not in done.stderr
    msg = one_line_error(
        run("analyze", "--coach", track_path("clean", "coach"), "--client", track_path("clean", "client"), "-o", tmp_path / "no" / "dir" / "x.txt")
    )
    assert "cannot write" in msg
