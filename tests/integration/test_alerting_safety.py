"""The alert engine's safety rules on a real broker: a probe coming off never lowers or resolves
an alert, device problems are per device, ingest's findings reach the nurses, a child without a
date of birth is never silently unscored."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from alerting.service import AlertingService
from tests.helpers.alerting import alerting_service, instant_rules
from tests.helpers.mqtt import Collector, collector
from tests.helpers.wait import wait_until
from tests.integration.test_alerting_durability import INSTANT
from tests.integration.test_ingest import Publisher
from wardwatch.devstack import Stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import (
    AckCommand,
    DeviceState,
    DeviceStatus,
    Generation,
    Observation,
    ObservationBatch,
    Quality,
    TechnicalEvent,
)

pytestmark = pytest.mark.integration

WARD = UnitContext(
    site="s1",
    unit="u1",
    scoring_system="bedside_pews",
    generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1")],
    beds=[
        # a monitor (HR, RR) and an oximeter (SpO2) on one child
        BedContext(id="b1", patient="P-abcd", dob=date(2023, 1, 1), gateway="gw1",
                   devices=["mon1", "ox1"]),
        # a child admitted without a date of birth
        BedContext(id="b2", patient="P-efgh", gateway="gw1", devices=["mon2"]),
    ],
)
UNITS = {"HR": "/min", "RR": "/min", "SPO2": "%"}


@dataclass
class Rig:
    root: str
    svc: AlertingService
    pub: Publisher
    events: Collector
    seq: int = 0

    def send(self, dev: str, values: dict[str, float | None],
             **more: dict[str, float | None]) -> None:
        """Values from devices of gw1 in one batch, now (``more``: other devices' values);
        ``None``: the device flags the value invalid (probe off)."""
        now = datetime.now(UTC)
        obs = [
            Observation(device_id=d, code=c, value=0.0 if v is None else v, unit=UNITS[c],
                        measured_at=now, received_at=now,
                        quality=Quality.INVALID if v is None else Quality.VALID,
                        quality_reason="probe off" if v is None else None)
            for d, vals in {dev: values, **more}.items()
            for c, v in vals.items()
        ]
        b = ObservationBatch(gateway_id="gw1", seq=self.seq, sent_at=now,
                             generation=Generation.TEST, observations=obs)
        self.seq += 1
        self.pub.publish(topics.gateway_obs("s1", "u1", "gw1", root=self.root),
                         b.model_dump_json().encode())

    def device(self, dev: str, state: DeviceState) -> None:
        st = DeviceStatus(gateway_id="gw1", device_id=dev, state=state, at=datetime.now(UTC))
        self.pub.publish(topics.device_status("s1", "u1", "gw1", dev, root=self.root),
                         st.model_dump_json().encode())

    def all(self) -> list[dict]:
        with self.events.cond:
            return [json.loads(p) for _, p in self.events.messages]

    def event(self, kind: str, condition: str, bed: str = "b1", n: int = 1) -> dict:
        def found() -> list[dict]:
            return [e for e in self.all() if e["event"] == kind
                    and e["alert"]["condition"] == condition and e["alert"]["bed_id"] == bed]

        assert self.events.wait_for(lambda _m: len(found()) >= n, 20), [
            (e["event"], e["alert"]["condition"], e["alert"]["bed_id"]) for e in self.all()
        ]
        return found()[n - 1]


@pytest.fixture
def rig(stack: Stack) -> Iterator[Rig]:
    root = f"s{uuid.uuid4().hex[:8]}/v1"
    # no onset delay, a generous freshness so a slow CI machine never makes values stale, and
    # parameter_lost as soon as an item is held
    rules = instant_rules(freshness={"continuous_s": 600, "no_data_s": 600, "lost_after_s": 0})
    svc = alerting_service(stack.broker, WARD, root, rules=rules)
    events = collector(stack.broker, "admin", [topics.alert_events("s1", "u1", root=root)])
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    assert svc.ready.wait(10), "alerting did not subscribe"
    pub = Publisher(stack.broker)
    yield Rig(root, svc, pub, events)
    svc.stop()
    t.join(10)
    pub.close()
    events.close()


def test_a_probe_coming_off_holds_the_acknowledged_alert(rig: Rig) -> None:
    """Issue 12, defect 1 on the wire: HR 185, RR 65, SpO2 86 on a 3-year-old is Bedside PEWS
    8 (HIGH); acknowledged; the oximeter's probe comes off. The total must not drop, the alert
    must not resolve, SpO2 is shown as held and parameter_lost is raised."""
    rig.send("mon1", {"HR": 185, "RR": 65}, ox1={"SPO2": 86})
    raised = rig.event("raised", "pews")
    assert (raised["alert"]["priority"], raised["alert"]["score_total"]) == ("high", 8)
    ack = AckCommand(command_id="c-1", alert_id=raised["alert"]["alert_id"], by="nurse-3",
                     at=datetime.now(UTC))
    rig.pub.publish(topics.ack_commands("s1", "u1", root=rig.root), ack.model_dump_json().encode())
    rig.event("acknowledged", "pews")
    rig.device("ox1", DeviceState.NO_SIGNAL)
    rig.send("ox1", {"SPO2": None})
    rig.send("mon1", {"HR": 185, "RR": 65})
    lost = rig.event("raised", "parameter_lost")
    assert "spo2_pct" in lost["alert"]["message"]
    held = [e for e in rig.all() if e["alert"]["condition"] == "pews" and e["alert"]["held"]]
    assert held and held[-1]["alert"]["score_total"] == 8
    assert held[-1]["alert"]["state"] == "acknowledged" and held[-1]["alert"]["held"] == ["spo2"]
    rig.event("raised", "no_signal:ox1")
    # The monitor being fine says nothing about the oximeter.
    rig.device("mon1", DeviceState.CONNECTED)
    rig.send("mon1", {"HR": 185, "RR": 65})
    rig.event("updated", "pews", n=1)
    states = {(e["event"], e["alert"]["condition"]) for e in rig.all()}
    assert ("resolved", "pews") not in states
    assert ("resolved", "no_signal:ox1") not in states
    bed = rig.svc.engine.beds["b1"]
    assert {"pews", "parameter_lost", "no_signal:ox1"} <= set(bed.episodes)


def test_ingest_seq_gap_reaches_the_beds_of_its_gateway(rig: Rig) -> None:
    ev = TechnicalEvent(service="ingest", event="seq_gap", gateway_id="gw1",
                        at=datetime.now(UTC), detail="3 batches missing (seq 7..9)", count=3)
    rig.pub.publish(topics.technical("s1", "u1", "ingest", root=rig.root),
                    ev.model_dump_json().encode())
    gap = rig.event("raised", "seq_gap", bed="b1")
    assert gap["alert"]["alert_kind"] == "technical" and "seq 7..9" in gap["alert"]["message"]
    rig.event("raised", "seq_gap", bed="b2")
    # it already happened: it stays until a nurse (or biomed) acknowledges it
    ack = AckCommand(command_id="c-2", alert_id=gap["alert"]["alert_id"], by="biomed-1",
                     at=datetime.now(UTC))
    rig.pub.publish(topics.ack_commands("s1", "u1", root=rig.root), ack.model_dump_json().encode())
    rig.event("resolved", "seq_gap", bed="b1")


def test_a_child_without_a_date_of_birth_is_announced_not_silently_unscored(rig: Rig) -> None:
    raised = rig.event("raised", "no_dob", bed="b2")
    assert raised["alert"]["priority"] == "medium"
    rig.send("mon2", {"HR": 185, "RR": 65})  # never scored against a guessed age
    rig.send("mon1", {"HR": 100, "RR": 30})
    rig.event("raised", "no_dob", bed="b2")
    assert not [e for e in rig.all() if e["alert"]["bed_id"] == "b2"
                and e["alert"]["alert_kind"] == "clinical"]


def test_a_context_that_cannot_be_refreshed_is_announced_on_every_bed(stack: Stack) -> None:
    root = f"s{uuid.uuid4().hex[:8]}/v1"
    broken = {"now": False}

    def loader() -> UnitContext:
        if broken["now"]:
            raise OSError("registry unreachable")
        return WARD

    svc = alerting_service(stack.broker, WARD, root, context_loader=loader)
    events = collector(stack.broker, "admin", [topics.alert_events("s1", "u1", root=root)])
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    try:
        assert svc.ready.wait(10)
        broken["now"] = True
        svc.refresh_context(datetime.now(UTC))
        rig = Rig(root, svc, Publisher(stack.broker), events)
        for bed in ("b1", "b2"):
            raised = rig.event("raised", "context_unavailable", bed=bed)
            assert "registry unreachable" in raised["alert"]["message"]
        broken["now"] = False
        svc.refresh_context(datetime.now(UTC))
        rig.event("resolved", "context_unavailable", bed="b1")
        rig.pub.close()
    finally:
        svc.stop()
        t.join(10)
        events.close()


class _DrippingRegistry:
    """A registry that accepts, starts a 200 answer and then sends one byte of its body now and
    then, forever: every read is within the client's socket timeout, the answer never ends."""

    def __init__(self, good: bytes = b"", good_answers: int = 0) -> None:
        #: the first ``good_answers`` requests get ``good`` in full
        self.good, self.good_answers, self.requests = good, good_answers, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/context"
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            self.requests += 1
            if self.requests <= self.good_answers:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(self.good), self.good))
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100000\r\n\r\n")
            while not self.stop.wait(0.2):
                conn.sendall(b" ")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


def test_a_context_read_that_never_returns_is_announced(stack: Stack) -> None:
    """Found by red-team: a context read that never returned (a registry dripping its answer,
    each read within the socket timeout; servicekit.context now has a deadline of its own, so
    the loader here simply blocks) kept the one read outstanding for ever: no read was started
    again and no bed said the context was not refreshed, while the engine ran on an ever older
    context."""
    root = f"s{uuid.uuid4().hex[:8]}/v1"
    release = threading.Event()
    calls = {"n": 0}

    def loader() -> UnitContext:
        calls["n"] += 1
        if calls["n"] > 1:  # the first read answers; the next hangs until the test ends
            release.wait()
        return WARD

    svc = alerting_service(stack.broker, WARD, root, context_loader=loader,
                           context_refresh_s=1.0)
    events = collector(stack.broker, "admin", [topics.alert_events("s1", "u1", root=root)])
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    pub = Publisher(stack.broker)
    try:
        assert svc.ready.wait(10)
        rig = Rig(root, svc, pub, events)
        for bed in ("b1", "b2"):
            raised = rig.event("raised", "context_unavailable", bed=bed)
            assert "has not answered for" in raised["alert"]["message"]
        release.set()  # the read returns the registry's answer: announced as refreshed
        rig.event("resolved", "context_unavailable", bed="b1")
    finally:
        release.set()
        svc.stop()
        t.join(10)
        pub.close()
        events.close()


def test_an_engine_stops_on_sigterm_while_its_context_read_hangs(
    stack: Stack, tmp_path: Path
) -> None:
    """Found by red-team: the context was read on a ThreadPoolExecutor worker, which the
    interpreter joins at exit, so an engine told to stop (SIGTERM) while a registry dripped its
    answer finished its run and then never exited (until the drip ended: hours)."""
    ctx = WARD.model_dump_json().encode()
    registry = _DrippingRegistry(good=ctx, good_answers=1)
    root = f"s{uuid.uuid4().hex[:8]}/v1"
    rules = tmp_path / "rules.toml"
    rules.write_text(INSTANT, encoding="utf-8")
    log = tmp_path / "alerting.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alerting", "run", "--context", registry.url,
             "--rules", str(rules), "--state", str(tmp_path / "state.sqlite"),
             "--context-refresh-s", "1"],
            env={**os.environ, **stack.env("alerting"), "WM_TOPIC_ROOT": root},
            stdout=out, stderr=out, stdin=subprocess.DEVNULL,
        )
    try:
        # the start-up read was answered; a later one is hanging on the drip
        assert wait_until(lambda: registry.requests >= 2 or proc.poll() is not None, 30), (
            log.read_text(errors="replace")[-2000:])
        assert proc.poll() is None, log.read_text(errors="replace")[-2000:]
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            pytest.fail("the engine did not exit on SIGTERM while its context read hung")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        registry.close()
