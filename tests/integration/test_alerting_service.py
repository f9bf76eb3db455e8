"""The alerting service on a real broker: scores, raise -> acknowledge -> resolve, technical
alerts from the gateway's last will, and nothing from an orderly shutdown."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from alerting.service import AlertingService
from tests.helpers.alerting import alerting_service
from tests.helpers.mqtt import Collector, collector
from tests.helpers.wait import wait_until
from tests.integration.test_ingest import Publisher
from wardwatch.devstack import Stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import (
    AckCommand,
    GatewayState,
    GatewayStatus,
    Generation,
    Observation,
    ObservationBatch,
)

pytestmark = pytest.mark.integration

WARD = UnitContext(
    site="s1",
    unit="u1",
    scoring_system="bedside_pews",
    generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1")],
    beds=[
        BedContext(id="b1", patient="P-abcd", dob=date(2022, 1, 1), gateway="gw1", devices=["d1"]),
        BedContext(id="b2", patient="P-efgh", dob=date(2022, 1, 1), gateway="gw1", devices=["d2"]),
    ],
)


@dataclass
class Rig:
    root: str
    svc: AlertingService
    pub: Publisher
    events: Collector
    seq: int = 0
    clock_offset: timedelta = timedelta(0)

    def vitals(self, dev: str, hr: float, rr: float, spo2: float) -> None:
        now = datetime.now(UTC)
        obs = [
            Observation(device_id=dev, code=c, value=v, unit=u, measured_at=now, received_at=now)
            for c, v, u in (("HR", hr, "/min"), ("RR", rr, "/min"), ("SPO2", spo2, "%"))
        ]
        b = ObservationBatch(
            gateway_id="gw1",
            seq=self.seq,
            sent_at=now,
            generation=Generation.TEST,
            observations=obs,
        )
        self.seq += 1
        self.pub.publish(
            topics.gateway_obs("s1", "u1", "gw1", root=self.root), b.model_dump_json().encode()
        )

    def event(self, kind: str, condition: str, bed: str = "b1", timeout: float = 20) -> dict:
        def match(m: list[tuple[str, bytes]]) -> bool:
            return any(self._is(p, kind, condition, bed) for _, p in m)

        assert self.events.wait_for(match, timeout), [
            json.loads(p) for _, p in self.events.messages
        ]
        return next(
            json.loads(p) for _, p in self.events.messages if self._is(p, kind, condition, bed)
        )

    @staticmethod
    def _is(p: bytes, kind: str, condition: str, bed: str) -> bool:
        d = json.loads(p)
        return bool(
            d["event"] == kind
            and d["alert"]["condition"] == condition
            and d["alert"]["bed_id"] == bed
        )


@pytest.fixture
def rig(stack: Stack) -> Iterator[Rig]:
    root = f"a{uuid.uuid4().hex[:8]}/v1"
    holder: list[Rig] = []

    def clock() -> datetime:  # real time, plus whatever a test fast-forwards
        return datetime.now(UTC) + (holder[0].clock_offset if holder else timedelta(0))

    svc = alerting_service(stack.broker, WARD, root, clock=clock)
    t = threading.Thread(target=svc.run, daemon=True)
    events = collector(stack.broker, "admin", [topics.alert_events("s1", "u1", root=root)])
    t.start()
    assert svc.ready.wait(10), "alerting did not subscribe"
    pub = Publisher(stack.broker)
    r = Rig(root, svc, pub, events)
    holder.append(r)
    yield r
    svc.stop()
    t.join(10)
    pub.close()
    events.close()


def test_score_raise_ack_resolve(stack: Stack, rig: Rig) -> None:
    scores = collector(stack.broker, "admin", [topics.score("s1", "u1", "b1", root=rig.root)])
    try:
        rig.vitals("d1", 105, 26, 98)  # a calm 3-year-old
        assert scores.wait_for(lambda m: len(m) >= 1)
        first = json.loads(scores.messages[0][1])
        assert (first["total"], first["band"], first["complete"]) == (0, "BP-C", False)
        assert "sbp" in first["missing"] and first["mode"] == "provisional"
        assert {i["code"] for i in first["inputs"]} == {"HR", "RR", "SPO2"}

        rig.vitals("d1", 185, 65, 86)  # HR 4 + RR 2 + SpO2 2 = 8 -> HIGH
        raised = rig.event("raised", "pews")
        assert raised["alert"]["priority"] == "high"
        assert raised["alert"]["alert_kind"] == "clinical"
        assert "partial" in raised["alert"]["message"]

        # The condition clears before anyone answers: a clinical alert latches.
        rig.vitals("d1", 105, 26, 98)
        ack = AckCommand(
            command_id="c1",
            alert_id=raised["alert"]["alert_id"],
            by="nurse-7",
            at=datetime.now(UTC),
        )
        rig.pub.publish(
            topics.ack_commands("s1", "u1", root=rig.root), ack.model_dump_json().encode()
        )
        acked = rig.event("acknowledged", "pews")
        assert acked["by"] == "nurse-7"
        resolved = rig.event("resolved", "pews")
        assert resolved["alert"]["state"] == "resolved"
    finally:
        scores.close()
    assert not [1 for _, p in rig.events.messages if json.loads(p)["alert"]["bed_id"] == "b2"]


def test_gateway_last_will_raises_technical_alert_and_shutdown_does_not(rig: Rig) -> None:
    rig.vitals("d1", 105, 26, 98)
    rig.vitals("d2", 105, 26, 98)
    status = topics.gateway_status("s1", "u1", "gw1", root=rig.root)
    lwt = GatewayStatus(
        gateway_id="gw1", state=GatewayState.OFFLINE, reason="lwt", generation=Generation.TEST
    )
    rig.pub.publish(status, lwt.model_dump_json().encode())
    raised = rig.event("raised", "gateway_offline", bed="b1")
    assert raised["alert"]["alert_kind"] == "technical"
    rig.event("raised", "gateway_offline", bed="b2")
    birth = GatewayStatus(
        gateway_id="gw1",
        state=GatewayState.ONLINE,
        reason="birth",
        at=datetime.now(UTC),
        generation=Generation.TEST,
    )
    rig.pub.publish(status, birth.model_dump_json().encode())
    rig.event("resolved", "gateway_offline", bed="b1")  # technical alerts do not latch
    bye = GatewayStatus(
        gateway_id="gw1",
        state=GatewayState.OFFLINE,
        reason="shutdown",
        at=datetime.now(UTC),
        generation=Generation.TEST,
    )
    rig.pub.publish(status, bye.model_dump_json().encode())
    wait_until(lambda: rig.svc.beds["b1"].paused and rig.svc.beds["b2"].paused)
    # Long after the data stopped: an orderly shutdown must not turn into "no data" alerts.
    rig.clock_offset += timedelta(minutes=10)
    rig.svc.tick()
    assert not any(b.alerts for b in rig.svc.beds.values())
    # Control: a bed whose gateway vanished without goodbye does get "no data".
    rig.svc.beds["b2"].paused = False
    rig.svc.tick()
    b2 = rig.svc.beds["b2"]
    assert "no_data" in b2.alerts, (b2.paused, b2.last_data_at, b2.alerts, rig.clock_offset)
    rig.event("raised", "no_data", bed="b2")
