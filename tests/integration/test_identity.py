"""No gateway can speak for another (issue 9, finding 1), on real mosquitto.

On gw-00's own topic (which its credentials allow), a batch claiming gw-01 once raised a HIGH
PEWS alert on a stable bed of gw-01, and a spoofed last will raised ``gateway_offline`` on all
of gw-01's beds. The topic is the identity: a payload that disagrees is dead-lettered and
reported against the publisher, never as an alert, and never on the beds it names.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

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
    DeviceState,
    DeviceStatus,
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
    gateways=[GatewayContext(id="gw-00"), GatewayContext(id="gw-01")],
    beds=[
        BedContext(id="b0", patient="P-0000", dob=date(2022, 1, 1), gateway="gw-00",
                   devices=["d0"]),
        BedContext(id="b1", patient="P-1111", dob=date(2022, 1, 1), gateway="gw-01",
                   devices=["d1"]),
    ],
)


def deteriorating(gw: str, dev: str, seq: int) -> bytes:
    now = datetime.now(UTC)
    obs = [
        Observation(device_id=dev, code=c, value=v, unit=u, measured_at=now, received_at=now)
        for c, v, u in (("HR", 185, "/min"), ("RR", 65, "/min"), ("SPO2", 86, "%"))
    ]
    return ObservationBatch(
        gateway_id=gw, seq=seq, sent_at=now, generation=Generation.TEST, observations=obs
    ).model_dump_json().encode()


@dataclass
class Rig:
    root: str
    svc: AlertingService
    pub: Publisher
    events: Collector
    tech: Collector
    dlq: Collector


@pytest.fixture
def rig(stack: Stack) -> Iterator[Rig]:
    root = f"i{uuid.uuid4().hex[:8]}/v1"
    svc = alerting_service(stack.broker, WARD, root)
    events = collector(stack.broker, "admin", [topics.alert_events("s1", "u1", root=root)])
    tech = collector(stack.broker, "admin", [topics.technical("s1", "u1", "alerting", root=root)])
    dlq = collector(stack.broker, "admin", [topics.dead_letter("alerting", root=root)])
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    assert svc.ready.wait(10)
    pub = Publisher(stack.broker)
    yield Rig(root, svc, pub, events, tech, dlq)
    svc.stop()
    t.join(10)
    for c in (pub, events, tech, dlq):
        c.close()


def _alerts(r: Rig) -> list[dict[str, object]]:
    with r.events.cond:
        return [json.loads(p)["alert"] for _, p in r.events.messages]


def test_a_batch_claiming_another_gateway_raises_nothing_on_its_beds(rig: Rig) -> None:
    spoof_topic = topics.gateway_obs("s1", "u1", "gw-00", root=rig.root)
    rig.pub.publish(spoof_topic, deteriorating("gw-01", "d1", 1))
    assert rig.dlq.wait_for(lambda m: len(m) >= 1, timeout=20)
    assert rig.tech.wait_for(lambda m: len(m) >= 1, timeout=20)
    dl = json.loads(rig.dlq.messages[0][1])
    assert dl["reason"].startswith("identity:") and "gw-01" in dl["reason"]
    ev = json.loads(rig.tech.messages[0][1])
    assert ev["event"] == "identity_mismatch" and ev["gateway_id"] == "gw-00"
    # The same values on the right topic do raise (the check is not just refusing everything).
    rig.pub.publish(topics.gateway_obs("s1", "u1", "gw-01", root=rig.root),
                    deteriorating("gw-01", "d1", 2))
    assert rig.events.wait_for(lambda m: len(m) >= 1, timeout=20)
    assert [(a["bed_id"], a["condition"]) for a in _alerts(rig)] == [("b1", "pews")]


def test_a_spoofed_last_will_and_device_status_raise_nothing(rig: Rig) -> None:
    lwt = GatewayStatus(gateway_id="gw-01", state=GatewayState.OFFLINE, reason="lwt",
                        generation=Generation.TEST)
    rig.pub.publish(topics.gateway_status("s1", "u1", "gw-00", root=rig.root),
                    lwt.model_dump_json().encode())
    dev = DeviceStatus(gateway_id="gw-01", device_id="d1", state=DeviceState.NO_SIGNAL,
                       at=datetime.now(UTC))
    rig.pub.publish(topics.device_status("s1", "u1", "gw-00", "d1", root=rig.root),
                    dev.model_dump_json().encode())
    # and a device status naming another device than its topic
    dev0 = DeviceStatus(gateway_id="gw-00", device_id="d0", state=DeviceState.NO_SIGNAL,
                        at=datetime.now(UTC))
    rig.pub.publish(topics.device_status("s1", "u1", "gw-00", "dX", root=rig.root),
                    dev0.model_dump_json().encode())
    assert rig.dlq.wait_for(lambda m: len(m) >= 3, timeout=20)
    assert rig.tech.wait_for(lambda m: len(m) >= 3, timeout=20)
    assert {json.loads(p)["gateway_id"] for _, p in rig.tech.messages} == {"gw-00"}
    # A genuine last will of gw-01 still raises gateway_offline on gw-01's bed only.
    rig.pub.publish(topics.gateway_status("s1", "u1", "gw-01", root=rig.root),
                    lwt.model_dump_json().encode())
    assert rig.events.wait_for(lambda m: len(m) >= 1, timeout=20)
    wait_until(lambda: rig.svc.boundary.faults_total == 0 and len(_alerts(rig)) >= 1)
    assert [(a["bed_id"], a["condition"]) for a in _alerts(rig)] == [("b1", "gateway_offline")]
