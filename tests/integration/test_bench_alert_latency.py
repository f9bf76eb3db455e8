"""bench/alert_latency.py at tiny scale: it runs end to end on a real mosquitto and the real
engine process, and its summary line has every key with alerts measured. Timings are printed
by the benchmark, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "alert_latency.py"
KEYS = {
    "p50_ms", "p99_ms", "score_us_per_obs", "beds", "obs_per_s", "alerts_measured", "probes",
    "probes_missed", "unexpected_alerts", "broker_p50_ms", "broker_p99_ms", "window_s",
    "observations", "observations_published", "engine_observations", "drained",
    "engine_cpu_pct", "goal_met",
}


def test_tiny_run_measures_alerts(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--beds", "20", "--seconds", "3", "--warmup", "1",
         "--json", "--keep", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result.keys() >= KEYS, KEYS - result.keys()
    assert result["beds"] == 20
    assert result["alerts_measured"] > 0
    assert result["probes_missed"] == 0, result
    assert result["unexpected_alerts"] == 0, result
    assert result["drained"] is True
    # the engine's own counter saw every observation published, warm-up included
    assert result["engine_observations"] == result["observations_published"]
    assert result["mqtt_refused"] == 0
    # the engine ran with onset windows 0 (the bench itself fails if a broker password is on
    # the engine's command line)
    assert "high_s = 0" in (tmp_path / "rules.toml").read_text()
    assert "Traceback" not in (tmp_path / "alerting.log").read_text()


def test_refuses_bad_arguments() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--beds", "1"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert out.returncode == 2
    assert "--beds" in out.stderr


def test_profile_mode_says_where_the_engine_time_goes(tmp_path: Path) -> None:
    prof = tmp_path / "engine.prof"
    out = subprocess.run(
        [sys.executable, str(BENCH), "--beds", "20", "--seconds", "2", "--warmup", "0",
         "--profile", str(prof), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["observations"] == 20 * 3 * 2 + 10 * 3  # two seconds and the sentinel's batch
    assert {"core_on_readings", "state_file_commit", "validate_json"} <= result["shares"].keys()
    assert 0 < result["shares"]["core_on_readings"] < 1
    assert prof.stat().st_size > 0
