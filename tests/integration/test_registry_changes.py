"""The registry's change events on a real broker: ``registry serve --mqtt`` (its own broker
identity) announces every unit at start and then each change of a unit's context, including one
made by the CLI on the database directly; the events carry ids only. The alert engine, reading
its context from that registry, takes a new admission at once on the event (its periodic re-read
set to an hour), and while the registry is gone runs on its cache saying so on every bed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from servicekit.context import ContextSource, dump_ward_file
from tests.helpers.alerting import alerting_service
from tests.helpers.mqtt import Collector, collector
from tests.helpers.wait import wait_until
from wardwatch.devstack import Stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import AlertCommand, ContextChanged, Generation

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WARD = UnitContext(
    site="demo", unit="picu", generation=Generation.TEST,
    gateways=[GatewayContext(id="gw-a")],
    beds=[BedContext(id="bed01", patient="P-1a2b3c", dob=date(2022, 3, 14), gateway="gw-a",
                     devices=["mon-01"]),
          BedContext(id="bed02", gateway="gw-a", devices=["mon-02"])],
)


def registry(db: str, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "registry", *args, "--db", db], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False, input=stdin)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


@dataclass
class Serving:
    db: str
    url: str
    token_file: Path
    events: Collector
    proc: subprocess.Popen[str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()


@pytest.fixture
def serving(stack: Stack, topic_root: str, tmp_path: Path) -> Iterator[Serving]:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    ward = tmp_path / "ward.toml"
    ward.write_text(dump_ward_file(WARD), encoding="utf-8")
    registry(db, "import-ward", str(ward))
    registry(db, "user", "add", "svc", "--role", "alert_engine")
    token_file = tmp_path / "registry.token"
    registry(db, "user", "token", "svc", "--out", str(token_file))
    events = collector(stack.broker, "admin", [f"{topic_root}/registry/#"])
    env = {**os.environ, **stack.env("registry"), "WM_TOPIC_ROOT": topic_root}
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", "--db", db, "--port", "0", "--mqtt",
         "--watch-s", "0.5"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    srv = Serving(db, first.split()[1] + "/units/demo/picu/context", token_file, events, proc)
    try:
        assert first.startswith("serving http://"), first
        yield srv
    finally:
        events.close()
        srv.stop()


def changes(events: Collector) -> list[ContextChanged]:
    return [ContextChanged.model_validate_json(p) for _, p in events.messages]


def test_every_unit_at_start_then_each_change_with_ids_only(
    serving: Serving, topic_root: str
) -> None:
    db, events = serving.db, serving.events
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


def test_the_alert_engine_follows_the_registry_and_says_when_it_cannot(
    serving: Serving, stack: Stack, topic_root: str, tmp_path: Path
) -> None:
    source = ContextSource(serving.url, tmp_path / "alerting.context.json", timeout_s=5,
                           token_file=serving.token_file)
    ward = source.load()
    assert [b.id for b in ward.beds if b.dob is not None] == ["bed01"]
    svc = alerting_service(
        stack.broker, ward, topic_root, context_loader=source.load, context_refresh_s=3600,
        context_stale=lambda: source.last_error if source.stale else None,
    )
    alerts = collector(stack.broker, "admin", [topics.alert_events("demo", "picu",
                                                                   root=topic_root)])
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    try:
        assert svc.ready.wait(10)  # subscribed, the registry's change topic included
        # admitted by the CLI: the registry's event, not the hourly re-read, brings it
        registry(serving.db, "patient", "add", "P-9f8e7d", "--dob", "2020-05-01")
        registry(serving.db, "admit", "P-9f8e7d", "demo/picu/bed02")
        wait_until(lambda: any(b.id == "bed02" and b.dob is not None for b in svc.ward.beds),
                   15)
        assert svc.context_changes >= 1
        assert "wardwatch_alerting_context_stale{unit=\"picu\"} 0.0" in svc.metrics_text()

        serving.stop()  # the registry is gone: the engine runs on its cache and says so
        svc.refresh_context(datetime.now(UTC))
        assert alerts.wait_for(lambda m: {
            json.loads(p)["alert"]["bed_id"] for _, p in m
            if json.loads(p)["event"] == "raised"
            and json.loads(p)["alert"]["condition"] == "context_unavailable"
        } >= {"bed01", "bed02"}), "context_unavailable not raised on every bed"
        text = svc.metrics_text()
        assert "wardwatch_alerting_context_stale{unit=\"picu\"} 1.0" in text
        assert [b.id for b in svc.ward.beds] == ["bed01", "bed02"]  # the cached context
    finally:
        svc.stop()
        t.join(10)
        alerts.close()


def test_a_nurses_ack_through_the_api_reaches_the_alert_engines_topic(
    serving: Serving, stack: Stack, topic_root: str
) -> None:
    import httpx

    for user, role in (("rn-0412", "nurse"), ("bme-7", "biomed")):
        registry(serving.db, "user", "add", user, "--role", role, "--password-stdin",
                 stdin="correct horse battery staple\n")
    tokens = {u: registry(serving.db, "user", "token", u).strip() for u in ("rn-0412", "bme-7")}
    commands = collector(stack.broker, "admin",
                         [topics.alert_commands("demo", "picu", root=topic_root)])
    base = serving.url.removesuffix("/units/demo/picu/context")
    url = f"{base}/units/demo/picu/alerts/a-0123456789ab/ack"
    try:
        refused = httpx.post(url, headers={"Authorization": f"Bearer {tokens['bme-7']}"},
                             timeout=10)
        assert refused.status_code == 403 and "biomed" in refused.text
        ok = httpx.post(url, headers={"Authorization": f"Bearer {tokens['rn-0412']}"},
                        timeout=10)
        assert ok.status_code == 202, ok.text
        assert commands.wait_for(lambda m: len(m) >= 1)
        sent = AlertCommand.model_validate_json(commands.messages[0][1])
        assert (sent.action.value, sent.alert_id, sent.by) == ("ack", "a-0123456789ab",
                                                               "rn-0412")
        assert len(commands.messages) == 1  # the refused request sent nothing
    finally:
        commands.close()
