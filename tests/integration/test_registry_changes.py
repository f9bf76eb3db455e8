"""The registry's change events on a real broker: ``registry serve --mqtt`` (its own broker
identity) announces every unit at start and then each change of a unit's context, including one
made by the CLI on the database directly; the events carry ids only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from servicekit.context import dump_ward_file
from tests.helpers.mqtt import Collector, collector
from wardwatch.devstack import Stack
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import ContextChanged, Generation

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WARD = UnitContext(
    site="demo", unit="picu", generation=Generation.TEST,
    gateways=[GatewayContext(id="gw-a")],
    beds=[BedContext(id="bed01", patient="P-1a2b3c", dob=date(2022, 3, 14), gateway="gw-a",
                     devices=["mon-01"]),
          BedContext(id="bed02", gateway="gw-a", devices=["mon-02"])],
)


def registry(db: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "registry", *args, "--db", db], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture
def serving(stack: Stack, topic_root: str, tmp_path: Path) -> Iterator[tuple[str, Collector]]:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    ward = tmp_path / "ward.toml"
    ward.write_text(dump_ward_file(WARD), encoding="utf-8")
    registry(db, "import-ward", str(ward))
    events = collector(stack.broker, "admin", [f"{topic_root}/registry/#"])
    env = {**os.environ, **stack.env("registry"), "WM_TOPIC_ROOT": topic_root}
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", "--db", db, "--port", "0", "--mqtt",
         "--watch-s", "0.5"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("serving http://")
        yield db, events
    finally:
        events.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def changes(events: Collector) -> list[ContextChanged]:
    return [ContextChanged.model_validate_json(p) for _, p in events.messages]


def test_every_unit_at_start_then_each_change_with_ids_only(
    serving: tuple[str, Collector], topic_root: str
) -> None:
    db, events = serving
    assert events.wait_for(lambda m: len(m) >= 1), "no start announcement"
    first = changes(events)[0]
    assert (first.site, first.unit, first.reason) == ("demo", "picu", "started")
    assert events.messages[0][0] == f"{topic_root}/registry/demo/picu/changed"

    # the CLI writes the database directly: the serve process sees it on its next look
    registry(db, "patient", "add", "P-9f8e7d", "--dob", "2020-05-01")
    registry(db, "admit", "P-9f8e7d", "demo/picu/bed02")
    assert events.wait_for(lambda m: len(m) >= 2), "no change event after an admission"
    ev = changes(events)[1]
    assert (ev.reason, ev.beds, ev.gateways, ev.devices) == ("changed", ["bed02"], [], [])
    raw = events.messages[1][1].decode()
    for secret in ("P-9f8e7d", "2020-05-01", "P-1a2b3c", "2022-03-14"):
        assert secret not in raw

    registry(db, "device", "unassign", "mon-01")
    assert events.wait_for(lambda m: len(m) >= 3)
    ev = changes(events)[2]
    assert (ev.beds, ev.devices) == (["bed01"], ["mon-01"])
    # nothing else: a patient registered but not admitted changes no context
    registry(db, "patient", "add", "P-000001", "--dob", "2021-01-01")
    assert not events.wait_for(lambda m: len(m) >= 4, timeout=2.0)
    assert json.loads(raw)["kind"] == "context_changed"
