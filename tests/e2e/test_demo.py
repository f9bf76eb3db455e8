"""The walking skeleton end to end: `wardwatch demo --headless --json` on real services."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_headless_demo_loses_nothing_and_alerts_the_deteriorating_bed(tmp_path: Path) -> None:
    duration = 40
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "wardwatch.cli",
            "demo",
            "--headless",
            "--beds",
            "5",
            "--duration",
            str(duration),
            "--json",
            "--workdir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(summary) >= {
        "beds",
        "published",
        "stored",
        "lost",
        "alerts",
        "deteriorating_beds",
        "alerted_beds",
    }
    assert summary["beds"] == 5
    # 5 monitors x 4 numerics x ~1 Hz x 30 s: every one of them stored.
    assert summary["published"] >= 5 * 4 * (duration - 2)
    assert summary["lost"] == 0
    assert summary["context_source"] == "registry"  # every service read the registry
    assert summary["mqtt_tls_only"] is True  # one TLS listener; every process used the CA
    assert summary["registry_https"] is True  # and read the registry over verified HTTPS
    assert summary["stored"] == summary["published"]
    assert summary["deteriorating_beds"] == ["bed02"]
    assert summary["alerted_beds"] == ["bed02"], summary["alerts"]
    raised = [a for a in summary["alerts"] if a["event"] == "raised" and a["kind"] == "clinical"]
    # The deteriorating child reaches the alert level in the first half of the run.
    assert min(a["t_s"] for a in raised) < duration / 2
    assert summary["stable_alerted_beds"] == []
    # The alert engine was killed (-9) and restarted mid-run on its state: nothing was
    # raised twice (a redelivered event, same event_id, is shown once by the console).
    assert summary["engine_restarts"] == 1
    # A nurse charted a set on every bed, then the deteriorating child's AVPU (a change):
    # every bed got a score from a charted set.
    assert summary["charted_sets"] == 5 + 1
    assert summary["charted_beds"] == [f"bed{i:02d}" for i in range(1, 6)], summary
    assert summary["raised_twice"] == [], summary["alerts"]
    # The deteriorating bed's SpO2 probe came off mid-run: its alert held SpO2's sub-score
    # (never lowered, never resolved) and parameter_lost was raised.
    assert summary["probe_off_bed"] == "bed02"
    assert summary["probe_off_alert_held"] is True, summary["alerts"]
    # A clean shutdown raises no clinical alert; the only thing it says is that the beds are
    # no longer monitored.
    late = [a for a in summary["alerts"] if a["t_s"] > duration and a["event"] == "raised"]
    assert {a["condition"] for a in late} <= {"monitoring_paused"}, summary["alerts"]
