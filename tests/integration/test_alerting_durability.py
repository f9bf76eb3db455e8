"""The alert engine across kill -9, on a real broker, as operators run it (``python -m alerting
run`` processes): restarts lose nothing and raise nothing twice; the last will says when a unit
is not monitored; a new patient in the bed closes the previous child's alerts; two engines on
two units, one killed, the other goes on."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from servicekit.context import dump_ward_file
from servicekit.metrics import parse_metric
from tests.helpers.mqtt import Collector, collector
from tests.helpers.wait import wait_until
from tests.integration.test_ingest import Publisher
from wardwatch.devstack import Stack, free_port
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import (
    AckCommand,
    Generation,
    Observation,
    ObservationBatch,
)

pytestmark = pytest.mark.integration

#: no onset delay (one batch raises), so a test sees a raise at once
INSTANT = """
[onset]
high_s = 0
medium_s = 0
low_s = 0
confirmations = 1
[clear]
clear_s = 0
[freshness]
continuous_s = 600
no_data_s = 600
"""


def ward(unit: str = "u1", patient: str = "P-abcd1") -> UnitContext:
    return UnitContext(
        site="s1",
        unit=unit,
        scoring_system="bedside_pews",
        generation=Generation.TEST,
        gateways=[GatewayContext(id=f"gw-{unit}")],
        beds=[BedContext(id="b1", patient=patient, dob=date(2023, 1, 1), gateway=f"gw-{unit}",
                         devices=[f"mon-{unit}"])],
    )


def retained(stack: Stack, topic_filter: str, timeout: float = 10) -> dict[str, dict]:
    """Every retained message under ``topic_filter`` now (a marker published after the
    subscription arrives after them)."""
    marker = f"{topic_filter.split('/+')[0]}/test-marker-{uuid.uuid4().hex[:8]}"
    col = collector(stack.broker, "admin", [topic_filter, marker])
    try:
        col.client.publish(marker, b"m", qos=1).wait_for_publish(timeout)
        assert col.wait_for(lambda m: any(t == marker for t, _ in m), timeout)
        with col.cond:
            msgs = list(col.messages)
    finally:
        col.close()
    out: dict[str, dict] = {}
    for t, p in msgs:
        if t != marker and p:
            out[t] = json.loads(p)
    return out


@dataclass
class Engine:
    """One ``python -m alerting run`` process for one unit, with its own state file."""

    stack: Stack
    root: str
    dir: Path
    unit: str = "u1"
    proc: subprocess.Popen[bytes] | None = None
    seq: int = 0
    runs: int = 0
    extra: list[str] = field(default_factory=list)

    @property
    def state(self) -> Path:
        return self.dir / f"state-{self.unit}.sqlite"

    @property
    def ward_file(self) -> Path:
        return self.dir / f"ward-{self.unit}.toml"

    def write_ward(self, ctx: UnitContext) -> None:
        tmp = self.ward_file.with_suffix(".tmp")
        tmp.write_text(dump_ward_file(ctx), encoding="utf-8")
        tmp.replace(self.ward_file)

    def start(self, *extra: str) -> None:
        rules = self.dir / "rules.toml"
        rules.write_text(INSTANT, encoding="utf-8")
        if not self.ward_file.exists():
            self.write_ward(ward(self.unit))
        self.runs += 1
        log = open(self.dir / f"alerting-{self.unit}-{self.runs}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alerting", "run", "--ward", str(self.ward_file),
             "--rules", str(rules), "--state", str(self.state), "--heartbeat-s", "1",
             "--context-refresh-s", "1", *self.extra, *extra],
            env={**os.environ, **self.stack.env("alerting"), "WM_TOPIC_ROOT": self.root,
                 "WM_LOG_LEVEL": "INFO"},
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        log.close()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(20)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log(self) -> str:
        return "".join(p.read_text(errors="replace")[-3000:]
                       for p in sorted(self.dir.glob(f"alerting-{self.unit}-*.log")))

    def vitals(self, pub: Publisher, hr: float, rr: float, spo2: float) -> bytes:
        now = datetime.now(UTC)
        dev = f"mon-{self.unit}"
        obs = [Observation(device_id=dev, code=c, value=v, unit=u, measured_at=now,
                           received_at=now)
               for c, v, u in (("HR", hr, "/min"), ("RR", rr, "/min"), ("SPO2", spo2, "%"))]
        b = ObservationBatch(gateway_id=f"gw-{self.unit}", seq=self.seq, sent_at=now,
                             generation=Generation.TEST, observations=obs)
        self.seq += 1
        payload = b.model_dump_json().encode()
        pub.publish(topics.gateway_obs("s1", self.unit, f"gw-{self.unit}", root=self.root),
                    payload)
        return payload

    def journal(self) -> list[tuple[int, str, dict]]:
        with sqlite3.connect(f"file:{self.state}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT seq, kind, body FROM journal ORDER BY seq").fetchall()
        return [(s, k, json.loads(b)) for s, k, b in rows]


def events(col: Collector, kind: str | None = None, condition: str | None = None) -> list[dict]:
    with col.cond:
        evs = [json.loads(p) for _, p in col.messages]
    return [e for e in evs if (kind is None or e["event"] == kind)
            and (condition is None or e["alert"]["condition"] == condition)]


def raised_once(col: Collector, condition: str = "pews") -> dict:
    """The one raise of ``condition``: a redelivery after a restart (the outbox published again
    what the broker had acknowledged just before the kill) carries the same event_id."""
    raised = events(col, "raised", condition)
    assert raised and len({e["event_id"] for e in raised}) == 1, raised
    assert len({e["alert"]["alert_id"] for e in raised}) == 1
    return raised[0]


def statuses(col: Collector, reason: str) -> list[dict]:
    with col.cond:
        sts = [json.loads(p) for _, p in col.messages if p]
    return [s for s in sts if s["reason"] == reason]


@pytest.fixture
def rig(stack: Stack, tmp_path: Path) -> Iterator[tuple[Engine, Publisher, Collector, Collector]]:
    root = f"d{uuid.uuid4().hex[:8]}/v1"
    eng = Engine(stack, root, tmp_path)
    evs = collector(stack.broker, "admin", [topics.alert_events("s1", "u1", root=root)])
    sts = collector(stack.broker, "admin", [f"{root}/alerting/s1/u1/engine/+"])
    pub = Publisher(stack.broker)
    yield eng, pub, evs, sts
    eng.stop()
    pub.close()
    evs.close()
    sts.close()


def wait_birth(eng: Engine, sts: Collector, n: int) -> dict:
    assert sts.wait_for(lambda _m: len(statuses(sts, "birth")) >= n, 30), eng.log()
    return statuses(sts, "birth")[n - 1]


def test_kill9_with_an_acknowledged_alert_then_restart(
    stack: Stack, rig: tuple[Engine, Publisher, Collector, Collector]
) -> None:
    eng, pub, evs, sts = rig
    eng.start()
    wait_birth(eng, sts, 1)
    eng.vitals(pub, 185, 65, 86)  # Bedside PEWS 8: HIGH
    assert evs.wait_for(lambda _m: events(evs, "raised", "pews"), 20), eng.log()
    alert_id = events(evs, "raised", "pews")[0]["alert"]["alert_id"]
    ack = AckCommand(command_id="c-1", alert_id=alert_id, by="nurse-7", at=datetime.now(UTC))
    pub.publish(topics.ack_commands("s1", "u1", root=eng.root), ack.model_dump_json().encode())
    assert evs.wait_for(lambda _m: events(evs, "acknowledged", "pews"), 20), eng.log()

    eng.kill9()
    # The broker's last will marks the unit not monitored.
    assert sts.wait_for(lambda _m: statuses(sts, "lwt"), 10), eng.log()
    lwt = statuses(sts, "lwt")[0]
    assert (lwt["state"], lwt["unit"]) == ("offline", "u1")

    eng.start()
    birth = wait_birth(eng, sts, 2)
    assert birth["recovered_alerts"] == 1
    alerts = retained(stack, f"{eng.root}/alerting/s1/u1/alert/+/+")
    assert list(alerts) == [topics.alert_state("s1", "u1", "b1", alert_id, root=eng.root)]
    (state,) = alerts.values()
    assert (state["state"], state["acknowledged_by"]) == ("acknowledged", "nurse-7")
    # The child is still as ill: no second raise; an ack of the same alert is still known.
    eng.vitals(pub, 185, 65, 86)
    ack2 = AckCommand(command_id="c-2", alert_id=alert_id, by="nurse-8", at=datetime.now(UTC))
    pub.publish(topics.ack_commands("s1", "u1", root=eng.root), ack2.model_dump_json().encode())
    eng.stop()  # an orderly stop: everything handled before it is in the journal
    raised_once(evs)
    journal = eng.journal()
    assert [k for _, k, _ in journal].count("raised") == 1
    commands: dict[str, list[tuple[str, dict]]] = {}
    for _, k, b in journal:
        if k.startswith("command"):
            commands.setdefault(b["command_id"], []).append((k, b))
    first_kind, first = commands["c-1"][0]
    assert first_kind == "command" and first["result"] == "applied"
    assert first["user"] == "nurse-7" and first["command_at"] and first["received_at"]
    # the broker may deliver c-1 again (the kill came before its PUBACK): journaled, no change
    assert all(b["result"].startswith("no change") for _, b in commands["c-1"][1:])
    kind2, c2 = commands["c-2"][0]
    assert kind2 == "command", c2  # the restored engine knows the alert: not "unknown alert"
    assert c2["user"] == "nurse-8"
    assert statuses(sts, "shutdown")


def test_kill9_between_the_journal_and_the_publish_neither_loses_nor_duplicates_the_raise(
    stack: Stack, rig: tuple[Engine, Publisher, Collector, Collector]
) -> None:
    eng, pub, evs, sts = rig
    eng.start("--crash-after-commit", "raised")
    wait_birth(eng, sts, 1)
    eng.vitals(pub, 185, 65, 86)
    assert eng.proc is not None
    assert eng.proc.wait(20) == -signal.SIGKILL, eng.log()
    assert not events(evs, "raised")  # it died after the commit, before the publish
    eng.start()
    wait_birth(eng, sts, 2)
    assert evs.wait_for(lambda _m: events(evs, "raised", "pews"), 20), eng.log()
    alerts = retained(stack, f"{eng.root}/alerting/s1/u1/alert/+/+")
    assert len(alerts) == 1 and next(iter(alerts.values()))["condition"] == "pews"
    eng.stop()
    raised_once(evs)
    assert [k for _, k, _ in eng.journal()].count("raised") == 1


def test_a_redelivered_batch_changes_nothing(
    stack: Stack, rig: tuple[Engine, Publisher, Collector, Collector]
) -> None:
    eng, pub, evs, sts = rig
    eng.start()
    wait_birth(eng, sts, 1)
    payload = eng.vitals(pub, 185, 65, 86)
    assert evs.wait_for(lambda _m: events(evs, "raised", "pews"), 20), eng.log()
    n = len(events(evs))
    pub.publish(topics.gateway_obs("s1", "u1", "gw-u1", root=eng.root), payload)  # again
    eng.stop()  # handled in order before the orderly stop
    assert len(events(evs)) == n, events(evs)[n:]


def test_a_new_patient_in_the_bed_closes_the_previous_childs_alerts(
    stack: Stack, rig: tuple[Engine, Publisher, Collector, Collector]
) -> None:
    eng, pub, evs, sts = rig
    eng.start()
    wait_birth(eng, sts, 1)
    eng.vitals(pub, 185, 65, 86)
    assert evs.wait_for(lambda _m: events(evs, "raised", "pews"), 20), eng.log()
    eng.write_ward(ward(patient="P-next2"))  # discharge and admission: read without a restart
    assert evs.wait_for(lambda _m: events(evs, "resolved", "pews"), 20), eng.log()
    done = events(evs, "resolved", "pews")[0]["alert"]
    assert done["resolved_reason"] == "a new patient in the bed"
    assert retained(stack, f"{eng.root}/alerting/s1/u1/alert/+/+") == {}
    eng.stop()
    kinds = [k for _, k, _ in eng.journal()]
    assert "context" in kinds


def test_orphan_retained_alerts_do_not_survive_a_restart(
    stack: Stack, rig: tuple[Engine, Publisher, Collector, Collector]
) -> None:
    eng, pub, _evs, sts = rig
    orphan = topics.alert_state("s1", "u1", "b1", "a-0123456789ab", root=eng.root)
    # what an engine without durable state left behind (kapacitor #1115's failure mode)
    pub.client.publish(orphan, b'{"left": "behind"}', qos=1, retain=True).wait_for_publish(10)
    assert orphan in retained(stack, f"{eng.root}/alerting/s1/u1/alert/+/+")
    eng.start()
    wait_birth(eng, sts, 1)
    assert retained(stack, f"{eng.root}/alerting/s1/u1/alert/+/+") == {}


def test_two_engines_on_two_units_one_killed_the_other_goes_on(
    stack: Stack, tmp_path: Path
) -> None:
    root = f"d{uuid.uuid4().hex[:8]}/v1"
    a, b = Engine(stack, root, tmp_path, unit="u1"), Engine(stack, root, tmp_path, unit="u2")
    sts = collector(stack.broker, "admin", [f"{root}/alerting/s1/+/engine/+"])
    evs = collector(stack.broker, "admin", [f"{root}/alerting/s1/+/events"])
    pub = Publisher(stack.broker)
    try:
        a.start()
        b.start()
        assert sts.wait_for(lambda _m: len(statuses(sts, "birth")) >= 2, 30), a.log() + b.log()
        a.kill9()
        assert sts.wait_for(lambda _m: statuses(sts, "lwt"), 10)
        assert [s["unit"] for s in statuses(sts, "lwt")] == ["u1"]
        b.vitals(pub, 185, 65, 86)
        assert evs.wait_for(lambda _m: events(evs, "raised", "pews"), 20), b.log()
        assert {e["alert"]["unit"] for e in events(evs, "raised")} == {"u2"}
        # the same unit twice is refused: one writer per bed
        dup = subprocess.run(
            [sys.executable, "-m", "alerting", "run", "--ward", str(b.ward_file),
             "--state", str(b.state)],
            env={**os.environ, **stack.env("alerting"), "WM_TOPIC_ROOT": root},
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert dup.returncode == 2 and "another alert engine" in dup.stderr
    finally:
        a.stop()
        b.stop()
        pub.close()
        sts.close()
        evs.close()


def test_the_engine_process_answers_audit_verify(
    stack: Stack, rig: tuple[Engine, Publisher, Collector, Collector]
) -> None:
    eng, pub, evs, sts = rig
    port = free_port()
    eng.start("--metrics-port", str(port))
    wait_birth(eng, sts, 1)
    eng.vitals(pub, 185, 65, 86)
    assert evs.wait_for(lambda _m: events(evs, "raised", "pews"), 20), eng.log()

    def metric(name: str) -> float | None:
        try:
            return parse_metric(httpx.get(f"http://127.0.0.1:{port}/metrics").text, name)
        except httpx.HTTPError:
            return None

    wait_until(lambda: metric("wardwatch_alerting_live") == 1
               and (metric("wardwatch_alerting_journal_records") or 0) >= 2, timeout=20)
    assert metric("wardwatch_alerting_ready") == 1
    # the heartbeat anchors the journal's head outside the state file
    assert sts.wait_for(lambda _m: any((h.get("journal_seq") or 0) >= 2
                                       for h in statuses(sts, "heartbeat")), 20)
    backup = eng.dir / "backup.sqlite"
    res = subprocess.run(
        [sys.executable, "-m", "alerting", "backup", str(backup), "--state", str(eng.state)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert res.returncode == 0, res.stderr  # a consistent copy while the engine runs
    # the state (dates of birth in its bed snapshots), its -wal and the copy: owner only
    for f in (eng.state, Path(f"{eng.state}-wal"), backup):
        assert f.stat().st_mode & 0o777 == 0o600, f
    res = subprocess.run(
        [sys.executable, "-m", "alerting", "audit", "verify", "--db", str(backup)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert res.returncode == 0 and "intact" in res.stdout, res.stdout + res.stderr
