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
    Source,
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

    def vitals(self, dev: str, hr: float, rr: float, spo2: float, *, charted: bool = False) -> None:
        """Device vitals; ``charted`` adds a nurse's set (SBP, CRT, effort, room air), so the
        score is complete."""
        now = datetime.now(UTC)
        obs = [
            Observation(device_id=dev, code=c, value=v, unit=u, measured_at=now, received_at=now)
            for c, v, u in (("HR", hr, "/min"), ("RR", rr, "/min"), ("SPO2", spo2, "%"))
        ]
        if charted:
            obs += [
                Observation(device_id=dev, code=c, value=v, unit=u, measured_at=now,
                            received_at=now, source=Source.ENTERED)
                for c, v, u in (("NIBP_SYS", 100, "mm[Hg]"), ("CRT", 1, "s"),
                                ("RESP_EFFORT", 0, "{score}"), ("O2_DEVICE", 0, "{device}"))
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

        # HR 4 + RR 2 + SpO2 2 = 8 -> HIGH. HR jumped 80/min within seconds: an abrupt
        # value needs a confirming reading before it is scored (artefact screen).
        rig.vitals("d1", 185, 65, 86)
        rig.vitals("d1", 185, 65, 86)
        raised = rig.event("raised", "pews")
        assert raised["alert"]["priority"] == "high"
        assert raised["alert"]["alert_kind"] == "clinical"
        assert "partial" in raised["alert"]["message"]

        assert raised["alert"]["level"] == "high" and raised["alert"]["complete"] is False
        # Calm again, but device-only: a partial score never resolves anything.
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
        assert acked["alert"]["state"] == "acknowledged"
        # A nurse's complete set below the threshold clears it (clear_s is 0 here).
        rig.vitals("d1", 105, 26, 98, charted=True)
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
    beds = rig.svc.engine.beds
    wait_until(lambda: beds["b1"].paused and beds["b2"].paused)
    # A child still lies in each bed: the orderly shutdown says "monitoring paused" (so the
    # nurse knows), and long after the data stopped it never turns into "no data" alerts.
    rig.event("raised", "monitoring_paused", bed="b1")
    rig.clock_offset += timedelta(minutes=10)
    rig.svc.tick()
    assert {c for b in beds.values() for c in b.episodes} == {"monitoring_paused"}
    # Control: a bed whose gateway vanished without goodbye does get "no data".
    beds["b2"].paused = False
    beds["b2"].due = rig.svc.clock()
    rig.svc.tick()
    b2 = beds["b2"]
    assert "no_data" in b2.episodes, (b2.paused, b2.last_data_at, b2.episodes, rig.clock_offset)
    rig.event("raised", "no_data", bed="b2")
