"""Nurses' commands on a real broker: acknowledge, snooze, escalate, resolve with a reason and
delivery receipts, each applied once, journaled with who and when; a nurse commands through the
registry's API as herself (no broker identity but the registry's may publish a command, the
console's neither); an escalation walks the chain of roles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from alerting.service import AlertingService
from servicekit.context import dump_ward_file
from servicekit.mqtt import MqttSession
from tests.helpers.alerting import alerting_service, instant_rules
from tests.helpers.mqtt import Collector, collector
from tests.integration.test_ingest import Publisher
from wardwatch.devstack import Stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import AlertCommand, Generation, Observation, ObservationBatch

pytestmark = pytest.mark.integration

WARD = UnitContext(
    site="s1", unit="u1", scoring_system="bedside_pews", generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1")],
    beds=[BedContext(id="b1", patient="P-abcd", dob=date(2023, 1, 1), gateway="gw1",
                     devices=["d1"]),
          BedContext(id="b2", patient="P-efgh", dob=date(2023, 1, 1), gateway="gw1",
                     devices=["d2"])],
)


@dataclass
class Rig:
    root: str
    svc: AlertingService
    pub: Publisher
    events: Collector
    stack: Stack
    ward_file: Path

    def sick(self, dev: str) -> None:
        now = datetime.now(UTC)
        obs = [Observation(device_id=dev, code=c, value=v, unit=u, measured_at=now,
                           received_at=now)
               for c, v, u in (("HR", 185, "/min"), ("RR", 65, "/min"), ("SPO2", 86, "%"))]
        b = ObservationBatch(gateway_id="gw1", seq=0, sent_at=now, generation=Generation.TEST,
                             observations=obs)
        self.pub.publish(topics.gateway_obs("s1", "u1", "gw1", root=self.root),
                         b.model_dump_json().encode())

    def all(self) -> list[dict]:
        with self.events.cond:
            return [json.loads(p) for _, p in self.events.messages]

    def wait(self, event: str, bed: str = "b1", n: int = 1, timeout: float = 20) -> dict:
        def found() -> list[dict]:
            return [e for e in self.all() if e["event"] == event
                    and e["alert"]["bed_id"] == bed and e["alert"]["condition"] == "pews"]

        assert self.events.wait_for(lambda _m: len(found()) >= n, timeout), [
            (e["event"], e["alert"]["bed_id"], e["alert"]["condition"]) for e in self.all()]
        return found()[n - 1]

    def cli(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "alerting", *args, "--ward", str(self.ward_file)],
            env={**os.environ, "WM_TOPIC_ROOT": self.root, **env},
            capture_output=True, text=True, timeout=60, check=False,
        )

    def command(self, **fields: object) -> None:
        cmd = AlertCommand.model_validate({"at": datetime.now(UTC), "by": "nurse-1", **fields})
        self.pub.publish(topics.alert_commands("s1", "u1", root=self.root),
                         cmd.model_dump_json().encode())


@pytest.fixture
def rig(stack: Stack, tmp_path: Path) -> Iterator[Rig]:
    root = f"c{uuid.uuid4().hex[:8]}/v1"
    rules = instant_rules(escalation={"high_s": 1.5})  # a quick chain for the test
    svc = alerting_service(stack.broker, WARD, root, rules=rules)
    events = collector(stack.broker, "admin", [topics.alert_events("s1", "u1", root=root)])
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    assert svc.ready.wait(10)
    ward_file = tmp_path / "ward.toml"
    ward_file.write_text(dump_ward_file(WARD), encoding="utf-8")
    r = Rig(root, svc, Publisher(stack.broker), events, stack, ward_file)
    yield r
    svc.stop()
    t.join(10)
    r.pub.close()
    events.close()


def test_an_escalation_walks_the_chain_and_receipts_come_back(rig: Rig) -> None:
    rig.sick("d1")
    raised = rig.wait("raised")
    aid = raised["alert"]["alert_id"]
    assert raised["alert"]["recipient_role"] == "bedside_nurse"
    first = rig.wait("escalated")
    assert first["alert"]["recipient_role"] == "nurse_in_charge"
    assert first["alert"]["priority"] == "high"  # the chain never changes the IEC priority
    second = rig.wait("escalated", n=2)
    assert second["alert"]["recipient_role"] == "rapid_response_team"
    rig.command(command_id="r-1", action="receipt", alert_id=aid, by="pager-7",
                receipt="viewed", role="rapid_response_team")
    rec = rig.wait("receipt")
    assert rec["by"] == "pager-7"
    rig.command(command_id="r-2", action="receipt", alert_id=aid, by="dr-rrt",
                receipt="accepted", role="rapid_response_team")
    acked = rig.wait("acknowledged")
    assert acked["by"] == "dr-rrt" and acked["alert"]["state"] == "acknowledged"


def broker_refuses(stack: Stack, identity: str, topic: str, payload: bytes) -> bool:
    """Whether the broker answers ``identity``'s QoS 1 publish with a failure (not authorised)."""
    session = MqttSession(replace(stack.broker.params(identity), session_expiry_s=0),
                          f"t-{identity}-{uuid.uuid4().hex[:6]}")
    session.start()
    answered, codes = threading.Event(), []

    def done(rc: Any) -> None:
        codes.append(rc)
        answered.set()

    try:
        session.publish(topic, payload, qos=1, on_done=done)
        assert answered.wait(10), "no PUBACK"
    finally:
        session.stop()
    return bool(codes[0].is_failure)


def registry_cli(db: str, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run([sys.executable, "-m", "registry", *args, "--db", db],
                          capture_output=True, text=True, timeout=120, check=False, input=stdin)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture
def registry_url(rig: Rig, tmp_path: Path) -> Iterator[tuple[str, dict[str, Path]]]:
    """``registry serve --mqtt`` for the rig's unit (the registry identity on the rig's broker),
    with a nurse and a biomed and their tokens in 0600 files."""
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    registry_cli(db, "import-ward", str(rig.ward_file))
    tokens = {}
    for user, role in (("nurse-2", "nurse"), ("bme-1", "biomed")):
        registry_cli(db, "user", "add", user, "--role", role, "--password-stdin",
                     stdin="correct horse battery staple\n")
        tokens[user] = tmp_path / f"{user}.token"
        registry_cli(db, "user", "token", user, "--out", str(tokens[user]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", "--db", db, "--port", "0", "--mqtt"],
        env={**os.environ, **rig.stack.env("registry"), "WM_TOPIC_ROOT": rig.root},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("serving http://"), first
        yield first.split()[1], tokens
    finally:
        proc.terminate()
        proc.wait(30)


def test_nurses_command_through_the_registry_and_nobody_else_can(
    rig: Rig, registry_url: tuple[str, dict[str, Path]]
) -> None:
    url, tokens = registry_url
    rig.sick("d1")
    aid = rig.wait("raised")["alert"]["alert_id"]

    def as_user(user: str) -> dict[str, str]:
        return {"WM_REGISTRY_TOKEN_FILE": str(tokens[user])}

    # the console's broker identity (or any service's) may not publish a command: refused
    for identity in ("console", "ingest", "alerting"):
        cmd = AlertCommand(command_id=f"x-{identity}", action="ack", alert_id=aid,
                           by="nurse-x", at=datetime.now(UTC))
        assert broker_refuses(rig.stack, identity,
                              topics.alert_commands("s1", "u1", root=rig.root),
                              cmd.model_dump_json().encode()), identity
    # a biomed's token: refused by the registry; --as someone else: nothing sent
    res = rig.cli(as_user("bme-1"), "ack", "--alert", aid, "--registry", url)
    assert res.returncode == 2 and "403" in res.stderr and "biomed" in res.stderr, res.stderr
    res = rig.cli(as_user("nurse-2"), "ack", "--alert", aid, "--as", "nurse-9",
                  "--registry", url)
    assert res.returncode == 2 and "nurse-2's" in res.stderr, res.stderr
    res = rig.cli({}, "ack", "--alert", aid, "--registry", url)
    assert res.returncode == 2 and "WM_REGISTRY_TOKEN_FILE" in res.stderr, res.stderr
    forged = tokens["nurse-2"].with_name("forged.token")
    forged.write_text("wwt_" + "0" * 16 + "_" + "A" * 43 + "\n")
    forged.chmod(0o600)
    res = rig.cli({"WM_REGISTRY_TOKEN_FILE": str(forged)}, "ack", "--alert", aid,
                  "--registry", url)
    assert res.returncode == 2 and "401" in res.stderr, res.stderr  # refused, not "down"
    assert not [e for e in rig.all() if e["event"] == "acknowledged"]
    # a HIGH alert is never snoozed: the engine refuses it (the registry sent the command)
    res = rig.cli(as_user("nurse-2"), "snooze", "--alert", aid, "--minutes", "5",
                  "--registry", url)
    assert res.returncode == 0, res.stderr
    res = rig.cli(as_user("nurse-2"), "escalate", "--alert", aid, "--as", "nurse-2",
                  "--registry", url)
    assert res.returncode == 0 and "as nurse-2: sent" in res.stdout, res.stderr
    assert rig.events.wait_for(lambda _m: any(
        e["event"] == "escalated" and e.get("by") == "nurse-2" for e in rig.all()), 20)
    res = rig.cli(as_user("nurse-2"), "resolve", "--alert", aid,
                  "--reason", "reviewed by the registrar, plan in notes", "--registry", url)
    assert res.returncode == 0, res.stderr
    done = rig.wait("resolved")
    assert done["by"] == "nurse-2"
    assert "reviewed by the registrar" in done["alert"]["resolved_reason"]
    assert not [e for e in rig.all() if e["event"] == "snoozed"]
    assert rig.svc.commands_refused >= 1
    # resolved by a nurse: the same condition does not raise again at once
    rig.sick("d1")
    rig.sick("d2")
    rig.wait("raised", bed="b2")
    assert len([e for e in rig.all() if e["event"] == "raised" and e["alert"]["bed_id"] == "b1"
                and e["alert"]["condition"] == "pews"]) == 1


def test_a_command_delivered_twice_acts_once(rig: Rig) -> None:
    rig.sick("d1")
    aid = rig.wait("raised")["alert"]["alert_id"]
    for _ in range(2):
        rig.command(command_id="same-1", action="ack", alert_id=aid)
    rig.wait("acknowledged")
    rig.command(command_id="same-2", action="escalate", alert_id=aid)  # a later, new command
    rig.wait("escalated", n=1)
    assert len([e for e in rig.all() if e["event"] == "acknowledged"]) == 1


def test_hostile_commands_are_dead_lettered_with_a_reason(rig: Rig, stack: Stack) -> None:
    dlq = collector(stack.broker, "admin", [topics.dead_letter("alerting", root=rig.root)])
    try:
        topic = topics.alert_commands("s1", "u1", root=rig.root)
        bad = [
            {"command_id": "h1", "action": "snooze", "alert_id": "a-1", "by": "n",
             "at": "2026-01-01T00:00:00Z"},  # no minutes
            {"command_id": "h2", "action": "resolve", "alert_id": "a-1", "by": "n",
             "at": "2026-01-01T00:00:00Z"},  # no reason
            {"command_id": "h3", "action": "ack", "alert_id": "a-1", "by": "n\u0000",
             "at": "2026-01-01T00:00:00Z"},  # a control character in the user id
            {"command_id": "h4", "action": "delete", "alert_id": "a-1", "by": "n",
             "at": "2026-01-01T00:00:00Z"},
        ]
        for doc in bad:
            rig.pub.publish(topic, json.dumps(doc).encode())
        rig.pub.publish(topic, b"{not json")
        assert dlq.wait_for(lambda m: len(m) >= 5, 20)
        with dlq.cond:
            reasons = [json.loads(p)["reason"] for _, p in dlq.messages]
        assert all(r.startswith("malformed:") for r in reasons), reasons
        assert any("minutes" in r for r in reasons) and any("reason" in r for r in reasons)
    finally:
        dlq.close()


def test_a_snooze_and_its_expiry(rig: Rig) -> None:
    now = datetime.now(UTC)
    obs = [Observation(device_id="d2", code=c, value=v, unit=u, measured_at=now,
                       received_at=now)
           for c, v, u in (("HR", 175, "/min"), ("RR", 65, "/min"), ("SPO2", 93, "%"))]
    b = ObservationBatch(gateway_id="gw1", seq=1, sent_at=now, generation=Generation.TEST,
                         observations=obs)
    rig.pub.publish(topics.gateway_obs("s1", "u1", "gw1", root=rig.root),
                    b.model_dump_json().encode())
    raised = rig.wait("raised", bed="b2")
    assert raised["alert"]["priority"] == "medium"  # Bedside PEWS 7
    aid = raised["alert"]["alert_id"]
    rig.command(command_id="z-1", action="snooze", alert_id=aid, minutes=0.05,
                reason="family at the bedside")
    snoozed = rig.wait("snoozed", bed="b2")
    assert snoozed["alert"]["state"] == "snoozed" and snoozed["alert"]["snoozed_until"]
    back = rig.wait("reminder", bed="b2")  # 3 s later the condition is still there
    assert back["alert"]["state"] == "active"
