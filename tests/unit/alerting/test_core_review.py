"""Findings of the core's review, each a regression test: data that is sparse by nature,
acknowledged technical alerts, alert ids, commands for beds the engine does not know."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.core import AlertEffect, BedInfo, Reading, UnitEngine, default_rules
from alerting.pews import score
from wardwire.models import AlertEventType, Generation, Source

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def engine() -> UnitEngine:
    eng = UnitEngine(default_rules(), score, unit="u1", generation=Generation.TEST)
    eng.set_bed(BedInfo("b1", "bedside_pews", age_days=1100, age_at=T0), T0)
    return eng


def alerts(effects: list[object]) -> list[AlertEffect]:
    return [e for e in effects if isinstance(e, AlertEffect)]


def run_until(eng: UnitEngine, end: datetime) -> list[AlertEffect]:
    out: list[AlertEffect] = []
    while (d := eng.next_deadline()) is not None and d <= end:
        out += alerts(eng.on_deadline(d))
    return out


def test_a_bed_with_only_an_nibp_every_15_minutes_is_not_no_data_between_readings() -> None:
    """An NIBP is fresh for hours: a bed measured that way is not silent between cuffs (the
    review saw no_data raised and cleared 8 times, with 32 escalations, in 2 hours)."""
    eng = engine()
    out: list[AlertEffect] = []
    for n in range(8):
        t = T0 + timedelta(minutes=15 * n)
        out += run_until(eng, t)
        out += alerts(eng.on_readings("b1", [Reading("sbp_mmhg", 95.0, t, Source.MEASURED,
                                                      "nibp1")], t))
    out += run_until(eng, T0 + timedelta(hours=2))
    assert not [e for e in out if e.alert.condition == "no_data"]


def test_a_monitor_that_dies_beside_a_fresh_nibp_is_still_no_data() -> None:
    eng = engine()
    out = alerts(eng.on_readings("b1", [Reading("sbp_mmhg", 95.0, T0, Source.MEASURED, "m1")], T0))
    for s in range(0, 120, 10):
        t = T0 + timedelta(seconds=s)
        out += run_until(eng, t)
        out += alerts(eng.on_readings("b1", [Reading("hr_bpm", 100.0, t, Source.MEASURED, "m1")],
                                      t))
    out += run_until(eng, T0 + timedelta(minutes=10))  # the HR stops; the NIBP is still fresh
    assert [e for e in out if e.alert.condition == "no_data" and e.event is AlertEventType.RAISED]


def test_an_acknowledged_technical_alert_reminds_while_it_lasts() -> None:
    """An acknowledged no_data used to stay silent however long the bed stayed silent."""
    eng = engine()
    raised = [e for e in run_until(eng, T0 + timedelta(minutes=5))
              if e.alert.condition == "no_data" and e.event is AlertEventType.RAISED]
    assert raised and raised[0].alert.priority.value == "medium"
    t_ack = T0 + timedelta(minutes=5)
    eff, refused = eng.on_command("ack", t_ack, "nurse-1", alert_id=raised[0].alert.alert_id)
    assert not refused and alerts(eff)[0].alert.reassess_by == t_ack + timedelta(minutes=30)
    later = run_until(eng, t_ack + timedelta(minutes=31))
    assert [e.event for e in later if e.alert.condition == "no_data"] == [AlertEventType.REMINDER]


def test_a_condition_raised_again_at_the_same_instant_gets_a_new_alert_id() -> None:
    eng = engine()
    t = T0 + timedelta(minutes=1)
    first = alerts(eng.on_event("seq_gap", "3 missing", ["b1"], t))
    eng.on_command("ack", t, "nurse-1", alert_id=first[0].alert.alert_id)
    second = alerts(eng.on_event("seq_gap", "2 more missing", ["b1"], t))
    assert first[0].alert.alert_id != second[0].alert.alert_id


def test_a_command_for_an_unknown_bed_is_refused_with_the_reason() -> None:
    eff, refused = engine().on_command("ack", T0, "nurse-1", bed_id="nope")
    assert eff == [] and refused == ["unknown bed nope"]
