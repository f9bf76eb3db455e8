"""A scorer refusal becomes the bed's ``cannot_score`` technical alert, whose message the engine
publishes on MQTT (and logs at INFO): it must never carry the child's date of birth, nor the
exact age (found by red-team: "dob: 2026-03-05 is after the observation date 2026-01-10").

Driven through ``UnitEngine`` with the real scorer (``alerting.pews.score``); the alert is
checked as it goes on the wire (``Alert.model_dump_json``) and every score effect too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from alerting.core import AlertEffect, BedInfo, Reading, ScoreEffect, UnitEngine, default_rules
from alerting.pews import PewsInputError, score
from wardwire.models import AlertEventType, Generation

T0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
VALUES = {"hr_bpm": 100, "rr_bpm": 30, "spo2_pct": 98}


def spellings(d: date) -> set[str]:
    """The date of birth as it might be written: ISO, its digits, day/month either way round,
    Python's repr, month names."""
    y, m, dd = d.year, d.month, d.day
    return {
        d.isoformat(), f"{y:04d}{m:02d}{dd:02d}", f"{y:04d}/{m:02d}/{dd:02d}",
        f"{dd:02d}/{m:02d}/{y}", f"{m:02d}/{dd:02d}/{y}", f"{dd}/{m}/{y}", f"{m}/{dd}/{y}",
        f"{dd:02d}.{m:02d}.{y}", f"{dd:02d}-{m:02d}-{y}", repr(d), f"{y}, {m}, {dd}",
        d.strftime("%d %b %Y"), d.strftime("%d %B %Y"), d.strftime("%b %d, %Y"),
    }


def run(info: BedInfo, scorer: Any = score, at: datetime = T0) -> list[AlertEffect | ScoreEffect]:
    eng = UnitEngine(default_rules(), scorer, unit="ward1", generation=Generation.TEST)
    out = list(eng.set_bed(info, at))
    for i in range(3):
        t = at + timedelta(seconds=5 * i)
        readings = [Reading(k, v, t, device_id="mon1") for k, v in VALUES.items()]
        out += eng.on_readings(info.bed_id, readings, t)
    return out


def wire_text(effects: list[AlertEffect | ScoreEffect]) -> str:
    """Everything the effects would put on the wire or in the INFO log, as one string."""
    parts: list[str] = []
    for e in effects:
        if isinstance(e, AlertEffect):
            parts += [e.alert.model_dump_json(), e.alert.message, e.event_id or ""]
        else:
            parts += [repr(e.result), str(e.level)]
    return "\n".join(parts)


def cannot_score(effects: list[AlertEffect | ScoreEffect]) -> list[AlertEffect]:
    return [
        e for e in effects
        if isinstance(e, AlertEffect) and e.alert.rule == "cannot_score"
        and e.event is AlertEventType.RAISED
    ]


def test_dob_after_the_observation_is_not_on_the_wire() -> None:
    dob = date(2026, 3, 5)
    effects = run(BedInfo("b1", "bedside_pews", dob=dob))
    raised = cannot_score(effects)
    assert len(raised) == 1
    assert raised[0].alert.message == (
        "not scored: the date of birth is after the observation date"
    )
    text = wire_text(effects)
    for spelling in spellings(dob):
        assert spelling not in text
    assert "2026-03" not in text and "20260305" not in text


def test_age_outside_the_bands_names_neither_the_age_nor_the_dob() -> None:
    dob = date(1980, 7, 14)  # 45 years on T0: outside every paediatric band
    effects = run(BedInfo("b1", "uk_npews", dob=dob))
    (raised,) = cannot_score(effects)
    assert raised.alert.message == (
        "not scored: the child's age is outside the uk_npews table's age bands"
    )
    text = wire_text(effects)
    assert not any(s in text for s in spellings(dob))
    assert "months" not in text and "545" not in text  # 545 completed months


def test_an_injected_scorer_that_quotes_the_dob_is_blanked() -> None:
    dob = date(2019, 11, 23)

    def leaky(system: str, inputs: object, **age: Any) -> object:
        d = age["dob"]
        raise RuntimeError(f"cannot score child born {d} ({d!r}, {d:%d/%m/%Y}, {d:%Y%m%d})")

    effects = run(BedInfo("b1", "bedside_pews", dob=dob), scorer=leaky)
    (raised,) = cannot_score(effects)
    assert "<date of birth>" in raised.alert.message
    assert not any(s in wire_text(effects) for s in spellings(dob))


def test_the_scorer_itself_names_no_date() -> None:
    """``alerting.pews``'s own text (also what the CLI prints) names neither date."""
    dob, at = date(2026, 3, 5), datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
    try:
        score("bedside_pews", VALUES, dob=dob, at=at)
    except PewsInputError as exc:
        assert exc.field == "dob"
        assert not any(s in str(exc) for s in spellings(dob) | spellings(at.date()))
    else:
        raise AssertionError("a dob after the observation was scored")
    try:
        score("bedside_pews", VALUES, dob=datetime(2020, 2, 3, tzinfo=UTC), at=at)
    except PewsInputError as exc:
        assert "2020" not in str(exc) and "datetime" in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dob=st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)),
    offset_s=st.integers(min_value=0, max_value=86_400 * 365),
    system=st.sampled_from(["bedside_pews", "uk_npews", "news2"]),
)
def test_no_dob_and_no_age_reaches_the_wire(dob: date, offset_s: int, system: str) -> None:
    """Any date of birth, before, on or after the observation, on any system: whatever the
    bed publishes names neither the date of birth nor the age in months or days."""
    at = T0 + timedelta(seconds=offset_s)
    # a child born on the day of the observation: its date is in every timestamp, rightly
    assume(dob not in {at.date(), (at + timedelta(seconds=15)).date()})
    effects = run(BedInfo("b1", system, dob=dob), at=at)
    text = wire_text(effects)
    assert not any(s in text for s in spellings(dob))
    for e in cannot_score(effects):
        assert "months" not in e.alert.message and "days" not in e.alert.message
    if dob > at.date():
        assert [e.alert.message for e in cannot_score(effects)] == [
            "not scored: the date of birth is after the observation date"
        ]


@settings(max_examples=40, deadline=None)
@given(days=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_an_age_in_days_is_not_on_the_wire_either(days: float) -> None:
    effects = run(BedInfo("b1", "bedside_pews", age_days=days, age_at=T0))
    for e in cannot_score(effects):
        assert "months" not in e.alert.message
        assert f"{days!r}" not in e.alert.message and f"{abs(days):.2f}" not in e.alert.message


def test_an_open_alert_restored_with_the_old_text_is_updated_without_it() -> None:
    """An engine upgraded with a ``cannot_score`` alert open (its state and the retained alert
    still carry the old text, date of birth included): the next evaluation publishes the
    alert again (``updated``, retained) with the new text, which replaces the old one."""
    dob = date(2026, 3, 5)
    old_text = "not scored: dob: 2026-03-05 is after the observation date 2026-01-10"
    eng = UnitEngine(default_rules(), score, unit="ward1", generation=Generation.TEST)
    eng.set_bed(BedInfo("b1", "bedside_pews", dob=dob), T0)
    eng.on_readings("b1", [Reading("hr_bpm", 100, T0, device_id="mon1")], T0)
    snap = eng.snapshot()
    (bed,) = snap["beds"]
    (ep,) = [e for e in bed["episodes"] if e["condition"] == "cannot_score"]
    ep["message"] = old_text
    again = UnitEngine(default_rules(), score, unit="ward1", generation=Generation.TEST)
    again.restore(snap)
    t = T0 + timedelta(seconds=5)
    effects = again.on_readings("b1", [Reading("hr_bpm", 101, t, device_id="mon1")], t)
    updated = [
        e for e in effects
        if isinstance(e, AlertEffect) and e.alert.rule == "cannot_score"
        and e.event is AlertEventType.UPDATED
    ]
    assert [e.alert.message for e in updated] == [
        "not scored: the date of birth is after the observation date"
    ]
