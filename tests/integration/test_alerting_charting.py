"""Nurses' charted sets in the alert engine, on a real broker: an AVPU change re-scores at once
(NPEWS "newly"), a correction supersedes a set, a back-entered set already acted on notifies
nobody, and a set the scorer would refuse is dead-lettered with the reason."""

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
from tests.integration.test_ingest import Publisher
from wardwatch.devstack import Stack
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import ChartedSet, Generation

pytestmark = pytest.mark.integration

WARD = UnitContext(
    site="s1", unit="u1", scoring_system="uk_npews", generation=Generation.TEST,
    gateways=[GatewayContext(id="gw1")],
    beds=[BedContext(id="b1", patient="P-abcd", dob=date(2020, 1, 1), gateway="gw1",
                     devices=["d1"])],
)


@dataclass
class Rig:
    root: str
    svc: AlertingService
    pub: Publisher
    events: Collector
    scores: Collector
    n: int = 0

    def chart(self, items: dict, **kw: object) -> str:
        self.n += 1
        now = datetime.now(UTC)
        cs = ChartedSet.model_validate({
            "set_id": f"set-{self.n}", "unit": "u1", "bed_id": "b1", "by": "nurse-4",
            "observed_at": kw.pop("observed_at", now), "charted_at": now,
            "generation": "test", "items": items, **kw,
        })
        self.pub.publish(topics.charting("s1", "u1", root=self.root), cs.model_dump_json().encode())
        return cs.set_id

    def all(self) -> list[dict]:
        with self.events.cond:
            return [json.loads(p) for _, p in self.events.messages]

    def score(self, pred: object) -> dict:
        def found() -> list[dict]:
            with self.scores.cond:
                return [s for s in (json.loads(p) for _, p in self.scores.messages)
                        if pred(s)]  # type: ignore[operator]

        assert self.scores.wait_for(lambda _m: found(), 20)
        return found()[-1]


@pytest.fixture
def rig(stack: Stack) -> Iterator[Rig]:
    root = f"h{uuid.uuid4().hex[:8]}/v1"
    svc = alerting_service(stack.broker, WARD, root, score_refresh_s=3600)
    events = collector(stack.broker, "admin", [topics.alert_events("s1", "u1", root=root)])
    scores = collector(stack.broker, "admin", [topics.score("s1", "u1", "b1", root=root)])
    t = threading.Thread(target=svc.run, daemon=True)
    t.start()
    assert svc.ready.wait(10)
    r = Rig(root, svc, Publisher(stack.broker), events, scores)
    yield r
    svc.stop()
    t.join(10)
    r.pub.close()
    events.close()
    scores.close()


CALM = {"rr_bpm": 24, "hr_bpm": 100, "spo2_pct": 98, "sbp_mmhg": 100, "crt_s": 1,
        "resp_distress": "none", "oxygen": {"device": "room_air"}}


def test_a_charted_avpu_change_rescores_at_once(rig: Rig) -> None:
    rig.chart({**CALM, "avpu": "A"})
    first = rig.score(lambda s: s["mode"] == "charted")
    assert first["escalation"]["final_level"] == "none" and first["complete"]
    rig.chart({**CALM, "avpu": "V"})  # newly V: high (docs/clinical/uk_npews.md)
    worse = rig.score(lambda s: s["escalation"].get("final_level") == "high")
    assert worse["mode"] == "charted"
    assert rig.events.wait_for(lambda _m: any(
        e["event"] == "raised" and e["alert"]["level"] == "high" for e in rig.all()), 20)
    rig.chart({**CALM, "avpu": "V"})  # the same V again is no new trigger
    again = rig.score(lambda s: s["escalation"].get("final_level") == "none"
                      and s["at"] > worse["at"])
    assert again["complete"]


def test_a_correction_supersedes_the_set_entered_in_error(rig: Rig) -> None:
    rig.chart({**CALM, "avpu": "A"})
    wrong = rig.chart({**CALM, "avpu": "A", "crt_s": 5})  # CRT 5 s charted by mistake
    rig.score(lambda s: s["items"].get("crt") == 2)
    rig.chart({**CALM, "avpu": "A"}, supersedes=wrong)
    fixed = rig.score(lambda s: s["items"].get("crt") == 0 and s["mode"] == "charted")
    assert fixed["total"] == 0


def test_a_back_entered_set_already_acted_on_notifies_nobody(rig: Rig) -> None:
    rig.chart({**CALM, "avpu": "P"}, observed_at=datetime.now(UTC) - timedelta(minutes=8),
              already_escalated=True)
    assert rig.events.wait_for(lambda _m: any(e["event"] == "acknowledged" for e in rig.all()),
                               20)
    raised = [e for e in rig.all() if e["event"] == "raised"]
    acked = [e for e in rig.all() if e["event"] == "acknowledged"]
    assert raised and raised[0]["alert"]["level"] == "emergency"
    assert "already escalated" in acked[0]["by"]


def test_a_set_the_scorer_refuses_is_dead_lettered_and_the_bed_goes_on(
    rig: Rig, stack: Stack
) -> None:
    dlq = collector(stack.broker, "admin", [topics.dead_letter("alerting", root=rig.root)])
    try:
        rig.chart({"oxygen": {"device": "room_air", "flow_lpm": 4}})  # contradictory
        rig.chart({"avpu": "X"})  # not an AVPU word
        rig.chart({"carer_question": {"response": "W", "escalation_level": "urgent"}})
        assert dlq.wait_for(lambda m: len(m) >= 3, 20)
        with dlq.cond:
            reasons = [json.loads(p)["reason"] for _, p in dlq.messages]
        assert all(r.startswith("charting:") for r in reasons), reasons
        rig.chart({**CALM, "avpu": "A"})
        rig.score(lambda s: s["mode"] == "charted" and s["complete"])
        assert not [e for e in rig.all() if e["alert"]["condition"] == "cannot_score"]
    finally:
        dlq.close()
