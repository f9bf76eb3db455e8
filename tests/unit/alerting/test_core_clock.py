"""Device clocks and late data on the pure core: what is a clock step and what is not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerting.core import AlertEffect, BedInfo, Reading, UnitEngine, default_rules
from alerting.pews import score
from wardwire.models import Generation, Source

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def engine() -> UnitEngine:
    eng = UnitEngine(default_rules(), score, unit="u1", generation=Generation.TEST)
    eng.set_bed(BedInfo("b1", "bedside_pews", age_days=1100, age_at=T0), T0)
    return eng


def m(key: str, value: float, at: datetime) -> Reading:
    return Reading(key, value, at, Source.MEASURED, "mon1")


def conditions(effects: list[object]) -> set[str]:
    return {e.alert.condition for e in effects if isinstance(e, AlertEffect)}


def test_an_nibp_stamped_when_the_cuff_measured_is_no_clock_step() -> None:
    """A monitor sends its NIBP (measured 3 minutes ago, when the cuff inflated) together with
    the current HR: per key, the device's clock only moved forward."""
    eng = engine()
    out: list[object] = []
    for s in range(0, 600, 10):
        now = T0 + timedelta(seconds=s)
        rs = [m("hr_bpm", 100.0, now)]
        if s == 300:
            rs.append(m("sbp_mmhg", 60.0, now - timedelta(minutes=3)))
        out += eng.on_deadline(now) + eng.on_readings("b1", rs, now)
    assert not any(c.startswith("clock_skew") for c in conditions(out))
    bed = eng.bed("b1")
    assert bed is not None and bed.readings["sbp_mmhg"].value == 60.0
    assert bed.counters.get("clock_step", 0) == 0


def test_a_device_clock_stepping_back_an_hour_is_skew_and_scoring_goes_on() -> None:
    eng = engine()
    for s in range(0, 60, 10):
        now = T0 + timedelta(seconds=s)
        eng.on_readings("b1", [m("hr_bpm", 100.0, now)], now)
    out: list[object] = []
    for s in range(60, 300, 10):  # the device now says it is an hour earlier
        now = T0 + timedelta(seconds=s)
        out += eng.on_readings("b1", [m("hr_bpm", 150.0 + s / 100, now - timedelta(hours=1))], now)
    assert "clock_skew:mon1" in conditions(out)
    bed = eng.bed("b1")
    assert bed is not None
    hr = bed.readings["hr_bpm"]
    assert hr.value == 150.0 + 290 / 100  # the latest reading is the current one
    assert T0 + timedelta(seconds=280) <= hr.at <= T0 + timedelta(seconds=290)


def test_a_backlog_after_an_outage_is_not_fresh_data() -> None:
    """Readings measured 20 minutes ago, delivered now (a gateway's outbox draining after a
    broker outage), do not count as current data: no_data is not cleared by them."""
    eng = engine()
    now = T0 + timedelta(minutes=30)
    out = eng.on_deadline(now)
    assert "no_data" in conditions(out)
    old = [m("hr_bpm", 100.0, now - timedelta(minutes=20, seconds=-i)) for i in range(5)]
    out = eng.on_readings("b1", old, now)
    bed = eng.bed("b1")
    assert bed is not None and "no_data" in bed.episodes
    assert "hr_bpm" not in {r.key for e in out if hasattr(e, "inputs") for r in e.inputs}
