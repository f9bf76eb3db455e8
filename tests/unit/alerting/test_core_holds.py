"""Held items built from several readings: the live wire's oxygen parts, NPEWS distress derived
from a charted effort. Found by the clinical-docs review: these were never held, so when the
charted values aged out the published score fell from 10 to 2 with no parameter_lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.core import AlertEffect, BedInfo, Reading, ScoreEffect, UnitEngine, default_rules
from alerting.pews import score
from wardwire.models import AlertEventType, Generation, Source

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def test_charted_oxygen_and_effort_from_the_wire_are_held_when_they_age_out() -> None:
    eng = UnitEngine(default_rules(), score, unit="u1", generation=Generation.TEST)
    eng.set_bed(BedInfo("b1", "uk_npews", age_days=1100, age_at=T0), T0)
    # the nurse charts, as the wire carries them: device and flow apart, effort as a word
    charted = [
        Reading("oxygen.device", "FM", T0, Source.ENTERED, "console"),
        Reading("oxygen.flow_lpm", 8.0, T0, Source.ENTERED, "console"),
        Reading("resp_effort", "moderate", T0, Source.ENTERED, "console"),
    ]
    out: list[object] = list(eng.on_readings("b1", charted, T0))
    t = T0
    while t < T0 + timedelta(hours=6):
        t += timedelta(minutes=1)
        vitals = [Reading(k, v, t, Source.MEASURED, "mon1")
                  for k, v in (("hr_bpm", 150.0), ("rr_bpm", 45.0), ("spo2_pct", 93.0))]
        out += eng.on_deadline(t) + eng.on_readings("b1", vitals, t)
    alerts = [e for e in out if isinstance(e, AlertEffect)]
    scores = [e for e in out if isinstance(e, ScoreEffect)]
    raised = [a for a in alerts if a.event is AlertEventType.RAISED and a.alert.condition == "pews"]
    assert raised, [(a.event.value, a.alert.condition) for a in alerts]
    peak = max(s.result.total for s in scores)
    late = [s for s in scores if s.at > T0 + timedelta(hours=5)]
    assert late and all(s.result.total == peak for s in late), [s.result.total for s in late]
    assert {"oxygen", "resp_distress"} <= set(late[-1].held)
    assert any(a.event is AlertEventType.RAISED and a.alert.condition == "parameter_lost"
               for a in alerts)
    assert not any(a.event is AlertEventType.RESOLVED and a.alert.condition == "pews"
                   for a in alerts)
