"""The console knows when nobody watches the unit: an engine's last will, or its heartbeat going
quiet for two intervals, marks the unit NOT MONITORED; a redelivered event is shown once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from console.board import WardView, render
from wardwire import topics
from wardwire.context import BedContext, GatewayContext, UnitContext
from wardwire.models import (
    Alert,
    AlertEvent,
    AlertEventType,
    AlertKind,
    AlertState,
    EngineState,
    EngineStatus,
    Generation,
    Priority,
)

WARD = UnitContext(site="s1", unit="u1", generation=Generation.TEST,
                   gateways=[GatewayContext(id="gw1")],
                   beds=[BedContext(id="b1", gateway="gw1", devices=["d1"])])
T0 = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
TOPIC = topics.engine_status("s1", "u1", "alerting-s1-u1")


def status(reason: str, at: datetime | None) -> bytes:
    state = EngineState.OFFLINE if reason in ("lwt", "shutdown") else EngineState.ONLINE
    return EngineStatus(instance="alerting-s1-u1", unit="u1", state=state, reason=reason,
                        at=at, heartbeat_s=5).model_dump_json().encode()


def shown(view: WardView, now: datetime) -> str:
    c = Console(record=True, width=120)
    c.print(render(view, now=now))
    return c.export_text()


def test_no_engine_ever_seen_is_not_monitored() -> None:
    v = WardView(WARD)
    assert not v.monitored(T0)
    assert "NOT MONITORED" in shown(v, T0)


def test_heartbeats_keep_it_monitored_and_silence_or_the_last_will_end_it() -> None:
    v = WardView(WARD)
    v.on_message(TOPIC, status("birth", T0))
    assert v.monitored(T0 + timedelta(seconds=9)) and "NOT MONITORED" not in shown(v, T0)
    assert not v.monitored(T0 + timedelta(seconds=11))  # two heartbeats of silence
    v.on_message(TOPIC, status("heartbeat", T0 + timedelta(seconds=10)))
    assert v.monitored(T0 + timedelta(seconds=11))
    v.on_message(TOPIC, status("lwt", None))  # kill -9: the broker speaks for it
    assert not v.monitored(T0 + timedelta(seconds=11))
    assert "NOT MONITORED" in shown(v, T0 + timedelta(seconds=11))


def test_an_engine_status_on_another_instances_topic_is_refused() -> None:
    v = WardView(WARD)
    v.on_message(topics.engine_status("s1", "u1", "impostor"), status("birth", T0))
    assert v.engines == {} and v.rejections == {"identity": 1}


def test_a_redelivered_event_is_shown_once() -> None:
    v = WardView(WARD)
    a = Alert(alert_id="a-1", unit="u1", bed_id="b1", alert_kind=AlertKind.CLINICAL,
              condition="pews", priority=Priority.HIGH, state=AlertState.ACTIVE, raised_at=T0,
              updated_at=T0, message="bedside_pews 8", generation=Generation.TEST)
    ev = AlertEvent(event=AlertEventType.RAISED, at=T0, alert=a, event_id="a-1-1")
    for _ in range(2):
        v.on_message(topics.alert_events("s1", "u1"), ev.model_dump_json().encode())
    assert len(v.events) == 1 and v.redelivered == 1
