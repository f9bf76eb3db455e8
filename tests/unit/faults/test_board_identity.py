"""The console view takes identity from the topic too: gw-00 cannot show vitals on gw-01's bed."""

from __future__ import annotations

from datetime import UTC, datetime

from console.board import WardView
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import Generation, Observation, ObservationBatch

WARD = UnitContext(site="s1", unit="u1", generation=Generation.TEST,
                gateways=[GatewayContext(id="gw-00"), GatewayContext(id="gw-01")],
                beds=[BedContext(id="b0", gateway="gw-00", devices=["d0"]),
                      BedContext(id="b1", gateway="gw-01", devices=["d1"])])


def payload(gw: str, dev: str) -> bytes:
    now = datetime.now(UTC)
    o = Observation(device_id=dev, code="HR", value=190, unit="/min", measured_at=now,
                    received_at=now)
    return ObservationBatch(gateway_id=gw, seq=0, sent_at=now, generation=Generation.TEST,
                            observations=[o]).model_dump_json().encode()


def test_spoofed_gateway_id_is_rejected_not_shown() -> None:
    v = WardView(WARD)
    v.on_message(topics.gateway_obs("s1", "u1", "gw-00"), payload("gw-01", "d1"))
    assert v.beds["b1"].vitals == {} and v.rejections == {"identity": 1}
    v.on_message(topics.gateway_obs("s1", "u1", "gw-01"), payload("gw-01", "d1"))
    assert v.beds["b1"].vitals == {"HR": 190}


def test_poison_is_counted_not_raised() -> None:
    v = WardView(WARD)
    v.on_message(topics.gateway_obs("s1", "u1", "gw-00"),
                 payload("gw-00", "d0").replace(b'"seq":0', b'"seq":"0"'))
    assert v.rejections == {"malformed": 1}


def score_payload(bed: str) -> bytes:
    from wardwire.models import ScoreUpdate

    now = datetime.now(UTC)
    return ScoreUpdate.model_validate(
        {"unit": "u1", "bed_id": bed, "at": now, "system": "bedside_pews",
         "table_version": "1", "band": None, "total": 3, "complete": True, "missing": [],
         "items": {}, "mode": "provisional", "generation": "test"}
    ).model_dump_json().encode()


def test_a_score_on_another_beds_topic_is_rejected() -> None:
    v = WardView(WARD)
    v.on_message(topics.score("s1", "u1", "b0"), score_payload("b1"))
    assert v.beds["b0"].score is None and v.beds["b1"].score is None
    assert v.rejections == {"identity": 1}


def test_another_units_traffic_and_unknown_topics_are_rejected_not_routed_by_suffix() -> None:
    v = WardView(WARD)
    v.on_message(topics.gateway_obs("s1", "other", "gw-00"), payload("gw-00", "d0"))
    assert v.beds["b0"].vitals == {} and v.rejections == {"identity": 1}
    # ends in /obs but is no gateway topic
    v.on_message("wm/v1/gw/s1/u1/gw-00/dev/d0/obs", payload("gw-00", "d0"))
    assert v.beds["b0"].vitals == {} and v.rejections == {"identity": 1, "malformed": 1}
