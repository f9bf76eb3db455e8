"""Every technical alert, one row each: what raises it, its default priority, what it is about.

The table is the contract of docs/alerting.md#technical-alerts: a rule missing here, or a
default priority changed, is a visible test failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from alerting.core import AlertEffect, BedInfo, Reading, UnitEngine, default_rules
from alerting.core.config import TECHNICAL
from alerting.pews import score
from wardwire.models import AlertEventType, AlertKind, Generation, Priority, Source

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
AGE = 3 * 365.25  # a 3-year-old
Drive = Callable[[UnitEngine], list[AlertEffect]]


def engine(*, dob: date | None = None, age: float | None = AGE) -> UnitEngine:
    eng = UnitEngine(default_rules(), score, unit="u1", generation=Generation.TEST)
    eng.set_bed(BedInfo("b1", "bedside_pews", dob=dob, age_days=None if dob else age,
                        age_at=T0), T0)
    return eng


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def alerts(effects: list[object]) -> list[AlertEffect]:
    return [e for e in effects if isinstance(e, AlertEffect)]


def vitals(eng: UnitEngine, t: datetime, hr: float | None = 105.0, rr: float | None = 26.0,
           spo2: float | None = 98.0, dev: str = "mon1") -> list[AlertEffect]:
    rs = [Reading(k, v, t, Source.MEASURED, dev)
          for k, v in (("hr_bpm", hr), ("rr_bpm", rr), ("spo2_pct", spo2))]
    return alerts(eng.on_deadline(t) + eng.on_readings("b1", rs, t))


def run(eng: UnitEngine, seconds: int, step: int = 10, **kw: float | None) -> list[AlertEffect]:
    out: list[AlertEffect] = []
    for s in range(0, seconds, step):
        out += vitals(eng, at(s), **kw)  # type: ignore[arg-type]
    return out


def gateway_offline(eng: UnitEngine) -> list[AlertEffect]:
    return run(eng, 30) + alerts(eng.on_gateway("gw1", "lwt", ["b1"], at(30)))


def monitoring_paused(eng: UnitEngine) -> list[AlertEffect]:
    return run(eng, 30) + alerts(eng.on_gateway("gw1", "shutdown", ["b1"], at(30)))


def device_state(state: str) -> Drive:
    def drive(eng: UnitEngine) -> list[AlertEffect]:
        return run(eng, 30) + alerts(eng.on_device("b1", "mon1", state, at(30)))
    return drive


def no_data(eng: UnitEngine) -> list[AlertEffect]:
    return alerts(eng.on_deadline(at(600)))  # silent since monitoring started


def stale_parameter(eng: UnitEngine) -> list[AlertEffect]:
    out = run(eng, 60)
    for s in range(60, 600, 10):  # SpO2 stops, HR and RR go on
        rs = [Reading(k, v, at(s), Source.MEASURED, "mon1")
              for k, v in (("hr_bpm", 105.0), ("rr_bpm", 26.0))]
        out += alerts(eng.on_deadline(at(s)) + eng.on_readings("b1", rs, at(s)))
    return out


def parameter_lost(eng: UnitEngine) -> list[AlertEffect]:
    return run(eng, 300, hr=185, rr=65, spo2=86) + run_from(eng, 300, 400, spo2=None)


def run_from(eng: UnitEngine, start: int, end: int, **kw: float | None) -> list[AlertEffect]:
    out: list[AlertEffect] = []
    for s in range(start, end, 10):
        v = {"hr": 185.0, "rr": 65.0, "spo2": 86.0, **kw}
        out += vitals(eng, at(s), **v)  # type: ignore[arg-type]
    return out


def event(rule: str) -> Drive:
    def drive(eng: UnitEngine) -> list[AlertEffect]:
        return run(eng, 30) + alerts(eng.on_event(rule, "ingest saw it", ["b1"], at(30)))
    return drive


def outbox_overflow(eng: UnitEngine) -> list[AlertEffect]:
    out = run(eng, 30) + alerts(eng.on_gateway("gw1", "heartbeat", ["b1"], at(30), 0))
    return out + alerts(eng.on_gateway("gw1", "heartbeat", ["b1"], at(40), outbox_dropped=12))


def clock_skew(eng: UnitEngine) -> list[AlertEffect]:
    ahead = Reading("hr_bpm", 105.0, at(40) + timedelta(minutes=50), Source.MEASURED, "mon1")
    return run(eng, 30) + alerts(eng.on_readings("b1", [ahead], at(40)))


def cannot_score(eng: UnitEngine) -> list[AlertEffect]:
    # NEWS2 is for patients aged 16 and over: a 3-year-old cannot be scored on it
    return alerts(eng.set_bed(BedInfo("b1", "news2", age_days=AGE, age_at=T0), T0)) + run(eng, 30)


def no_dob(eng: UnitEngine) -> list[AlertEffect]:
    return alerts(eng.set_bed(BedInfo("b1", "bedside_pews", admission="P-x1"), T0)) + run(eng, 30)


def context_unavailable(eng: UnitEngine) -> list[AlertEffect]:
    return run(eng, 30) + alerts(eng.on_context(False, "registry unreachable", at(30)))


def pager_failed(eng: UnitEngine) -> list[AlertEffect]:
    return run(eng, 30) + alerts(eng.on_condition("pager_failed", True, "gateway 503",
                                                  ["b1"], at(30)))


@dataclass(frozen=True)
class Row:
    rule: str
    priority: Priority
    drive: Drive
    per_device: bool = False
    latches: bool = False


TABLE = [
    Row("gateway_offline", Priority.MEDIUM, gateway_offline),
    Row("monitoring_paused", Priority.LOW, monitoring_paused),
    Row("device_offline", Priority.LOW, device_state("disconnected"), per_device=True),
    Row("no_signal", Priority.LOW, device_state("no_signal"), per_device=True),
    Row("low_battery", Priority.LOW, device_state("low_battery"), per_device=True),
    Row("no_data", Priority.MEDIUM, no_data),
    Row("stale_parameter", Priority.LOW, stale_parameter),
    Row("parameter_lost", Priority.MEDIUM, parameter_lost),
    Row("seq_gap", Priority.LOW, event("seq_gap"), latches=True),
    Row("outbox_reset", Priority.LOW, event("outbox_reset"), latches=True),
    Row("outbox_overflow", Priority.MEDIUM, outbox_overflow, latches=True),
    Row("clock_skew", Priority.LOW, clock_skew, per_device=True),
    Row("cannot_score", Priority.MEDIUM, cannot_score),
    Row("no_dob", Priority.MEDIUM, no_dob),
    Row("context_unavailable", Priority.MEDIUM, context_unavailable),
    Row("pager_failed", Priority.MEDIUM, pager_failed),
]


def test_the_table_names_every_technical_alert_once() -> None:
    assert sorted(r.rule for r in TABLE) == sorted(TECHNICAL)
    assert default_rules().technical == {r.rule: r.priority for r in TABLE}


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.rule)
def test_each_technical_alert_is_raised_with_its_default_priority(row: Row) -> None:
    eng = engine()
    raised = [e for e in row.drive(eng)
              if e.event is AlertEventType.RAISED and e.alert.rule == row.rule]
    assert len(raised) == 1, [(e.event.value, e.alert.condition) for e in row.drive(engine())]
    a = raised[0].alert
    assert a.alert_kind is AlertKind.TECHNICAL
    assert a.priority is row.priority
    assert a.bed_id == "b1" and a.message
    assert (a.device_id == "mon1") if row.per_device else (a.device_id is None)
    assert a.condition == (f"{row.rule}:mon1" if row.per_device else row.rule)
    bed = eng.bed("b1")
    assert bed is not None
    ep = bed.episodes.get(a.condition)
    if row.latches:  # an event that already happened: active until a nurse acknowledges it
        assert ep is not None and not ep.condition_present
        effects, refused = eng.on_command("ack", at(3600), "nurse-1", alert_id=a.alert_id)
        assert not refused
        assert [e.event for e in alerts(list(effects))] == [
            AlertEventType.ACKNOWLEDGED, AlertEventType.RESOLVED,
        ]


def test_a_site_can_change_a_technical_priority() -> None:
    from alerting.core import rules_from

    rules = rules_from({"technical": {"monitoring_paused": "medium"}})
    assert rules.technical["monitoring_paused"] is Priority.MEDIUM
    assert rules.technical["no_data"] is Priority.MEDIUM  # the rest keep their defaults
