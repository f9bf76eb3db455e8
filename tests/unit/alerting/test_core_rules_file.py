"""Defect 6, "Dead and missing configuration": the unit rules file (``alerting/unit_rules.toml``,
``alerting.core.config``) is validated, every key it has does something, and a unit's file
that sets one value keeps every other default.

Driven through the pure ``UnitEngine`` with the real scorer where a rule changes behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerting.core import (
    AlertEffect,
    BedInfo,
    Reading,
    RulesError,
    ScoreEffect,
    UnitEngine,
    UnitRules,
    default_rules,
    load_rules,
    rules_from,
)
from alerting.core.levels import LEVELS
from alerting.pews import score
from wardwire.models import AlertEventType, AlertKind, Generation, Priority

T0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
AGE_3Y = 3 * 365.25 + 30
E = AlertEventType
Effect = AlertEffect | ScoreEffect

# Bedside PEWS, BP-C: HR 150 -> 2, RR 61 -> 2, SpO2 93 -> 1 (5: LOW); HR 170 -> 4 (7: MEDIUM);
# HR 185 -> 4, RR 65 -> 2, SpO2 86 -> 2 (8: HIGH)
LOW5 = {"hr_bpm": 150, "rr_bpm": 61, "spo2_pct": 93}
LOW6 = {"hr_bpm": 150, "rr_bpm": 61, "spo2_pct": 90}
MEDIUM7 = {"hr_bpm": 170, "rr_bpm": 61, "spo2_pct": 93}
HIGH8 = {"hr_bpm": 185, "rr_bpm": 65, "spo2_pct": 86}


def run(
    rules: UnitRules,
    values: Mapping[str, object],
    seconds: float = 15 * 60,
    every_s: float = 5,
    *,
    info: BedInfo | None = None,
    start: datetime = T0,
    tz: tzinfo | None = None,
) -> list[Effect]:
    """One bed, device readings every ``every_s``; every effect in order."""
    eng = UnitEngine(rules, score, unit="ward1", generation=Generation.TEST, tz=tz)
    out: list[Effect] = list(
        eng.set_bed(info or BedInfo("b1", "bedside_pews", age_days=AGE_3Y, age_at=start), start)
    )
    for i in range(int(seconds // every_s)):
        t = start + timedelta(seconds=i * every_s)
        while (d := eng.next_deadline()) is not None and d <= t:
            out += eng.on_deadline(d)
        out += eng.on_readings(
            "b1", [Reading(k, v, t, device_id="mon1") for k, v in values.items()], t
        )
    return out


def clinical(effects: list[Effect], event: AlertEventType | None = None) -> list[AlertEffect]:
    return [
        e
        for e in effects
        if isinstance(e, AlertEffect)
        and e.alert.alert_kind is AlertKind.CLINICAL
        and (event is None or e.event is event)
    ]


# ---------------------------------------------------------------------------------------------
# Unknown keys are errors.

UNKNOWN: dict[str, dict[str, Any]] = {
    "top_level_threshold": {"threshold": 8},
    "top_level_misspelt": {"min_priorty": "medium"},
    "onset_threshold": {"onset": {"threshold": 8}},
    "freshness": {"freshness": {"continous_s": 60}},
    "clear": {"clear": {"clear_after_s": 60}},
    "escalation": {"escalation": {"emergency_s": 30}},
    "snooze": {"snooze": {"emergency": 5}},
    "artefact_jump_param": {"artefact": {"jump": {"crt_s": 3}}},
    "technical": {"technical": {"no_signl": "low"}},
    "reassessment_system": {"reassessment": {"uk_pews": {"high": 10}}},
    "reassessment_level": {"reassessment": {"uk_npews": {"hgih": 10}}},
    "reassessment_level_of_another_system": {"reassessment": {"news2": {"emergency": 10}}},
}


@pytest.mark.parametrize("name", sorted(UNKNOWN))
def test_dead_and_missing_configuration_unknown_key_is_an_error(name: str) -> None:
    with pytest.raises(RulesError):
        rules_from(UNKNOWN[name])


def test_dead_and_missing_configuration_threshold_in_a_rules_file(tmp_path: Path) -> None:
    f = tmp_path / "unit.toml"
    f.write_text('version = "7"\nthreshold = 8\n[onset]\nhigh_s = 60\n', encoding="utf-8")
    with pytest.raises(RulesError) as exc:
        load_rules(f)
    assert "threshold" in str(exc.value) and str(f) in str(exc.value)


@pytest.mark.parametrize(
    "raw",
    [
        {"min_priority": "info"},
        {"min_priority": "critical"},
        {"onset": {"sustained_fraction": 0}},
        {"onset": {"confirmations": 0}},
        {"snooze": {"high": 5}},  # a HIGH alert is never silenced
        {"technical": {"no_data": "urgent"}},
        {"time_zone": "Mars/Olympus_Mons"},
        {"freshness": {"no_data_s": -1}},
    ],
)
def test_dead_and_missing_configuration_out_of_range_is_an_error(raw: dict[str, Any]) -> None:
    with pytest.raises(RulesError):
        rules_from(raw)


def test_dead_and_missing_configuration_shipped_file_is_the_defaults() -> None:
    assert default_rules() == UnitRules()
    assert load_rules(None) == default_rules()
    # every system with levels has a reassessment for each alarm level
    r = default_rules()
    for system in ("uk_npews", "bedside_pews", "news2"):
        for word in LEVELS[system]:
            if word != "none" and not (system == "news2" and word == "low"):
                assert word in r.reassessment[system], (system, word)


# ---------------------------------------------------------------------------------------------
# A unit's file that sets one value keeps every other default.


def test_dead_and_missing_configuration_partial_reassessment_row_keeps_the_rest() -> None:
    r = rules_from({"reassessment": {"uk_npews": {"high": 10}}})
    assert r.reassess_s("uk_npews", "high") == 600
    # the rest of the uk_npews row is the shipped one, not the generic default row
    assert r.reassess_s("uk_npews", "emergency") == 15 * 60
    assert r.reassess_s("uk_npews", "medium") == 30 * 60
    r2 = rules_from({"reassessment": {"news2": {"high": 10}}})
    assert r2.reassess_s("news2", "low_medium") == 60 * 60


def test_dead_and_missing_configuration_partial_jump_table_keeps_the_rest() -> None:
    r = rules_from({"artefact": {"jump": {"hr_bpm": 30}}})
    assert r.artefact.jump["hr_bpm"] == 30
    assert r.artefact.jump == {**default_rules().artefact.jump, "hr_bpm": 30}


def test_dead_and_missing_configuration_partial_technical_keeps_the_rest() -> None:
    r = rules_from({"technical": {"no_data": "high"}})
    assert r.technical_priority("no_data") is Priority.HIGH
    assert r.technical == {**default_rules().technical, "no_data": Priority.HIGH}


# ---------------------------------------------------------------------------------------------
# min_priority


@pytest.mark.parametrize("values", [LOW5, LOW6], ids=["total5", "total6"])
def test_dead_and_missing_configuration_min_priority_low_shows_pews_5_6(
    values: dict[str, int],
) -> None:
    got = clinical(run(rules_from({"min_priority": "low"}), values), E.RAISED)
    assert got and got[0].alert.priority is Priority.LOW
    assert got[0].alert.level == "low"
    assert got[0].at <= T0 + timedelta(seconds=300)


@pytest.mark.parametrize("values", [LOW5, LOW6], ids=["total5", "total6"])
def test_dead_and_missing_configuration_min_priority_medium_hides_pews_5_6(
    values: dict[str, int],
) -> None:
    assert not clinical(run(rules_from({"min_priority": "medium"}), values))
    got = clinical(run(rules_from({"min_priority": "medium"}), MEDIUM7), E.RAISED)
    assert got and got[0].alert.priority is Priority.MEDIUM


def test_dead_and_missing_configuration_min_priority_high_hides_medium() -> None:
    assert not clinical(run(rules_from({"min_priority": "high"}), MEDIUM7))
    got = clinical(run(rules_from({"min_priority": "high"}), HIGH8), E.RAISED)
    assert got and got[0].alert.priority is Priority.HIGH


# ---------------------------------------------------------------------------------------------
# escalation timers per priority


@pytest.mark.parametrize(
    ("values", "priority", "key"),
    [(HIGH8, Priority.HIGH, "high_s"), (MEDIUM7, Priority.MEDIUM, "medium_s"),
     (LOW5, Priority.LOW, "low_s")],
)
def test_dead_and_missing_configuration_escalation_timer_per_priority(
    values: dict[str, int], priority: Priority, key: str
) -> None:
    timers = {"high_s": 45, "medium_s": 200, "low_s": 500}
    effects = run(rules_from({"escalation": timers}), values, seconds=30 * 60)
    raised = clinical(effects, E.RAISED)
    assert raised and raised[0].alert.priority is priority
    esc = clinical(effects, E.ESCALATED)
    assert esc, "never escalated"
    assert esc[0].at - raised[0].at == timedelta(seconds=timers[key])
    if len(esc) > 1:
        assert esc[1].at - esc[0].at == timedelta(seconds=timers[key])
    assert esc[0].alert.escalation_step == 1


# ---------------------------------------------------------------------------------------------
# age from the date of birth in the unit's time zone, at observation time

DOB = date(2025, 3, 1)  # turns 1 at 2025-03-01T00:00+08:00 = 2026-02-28T16:00Z in Shanghai
SHANGHAI = "Asia/Shanghai"


def _band(rules: UnitRules, at: datetime, tz: tzinfo | None = None) -> str | None:
    info = BedInfo("b1", "bedside_pews", dob=DOB)
    effects = run(rules, HIGH8, seconds=10, info=info, start=at, tz=tz)
    scores = [e for e in effects if isinstance(e, ScoreEffect) and e.at == at]
    assert scores
    return scores[-1].result.band


@pytest.mark.parametrize("how", ["rules_time_zone", "engine_tz"])
def test_dead_and_missing_configuration_age_in_the_unit_time_zone(how: str) -> None:
    if how == "rules_time_zone":
        rules, tz = rules_from({"time_zone": SHANGHAI}), None
    else:
        rules, tz = default_rules(), ZoneInfo(SHANGHAI)
    after = datetime(2026, 2, 28, 17, 0, tzinfo=UTC)  # 01:00 on 1 March in Shanghai
    before = datetime(2026, 2, 28, 15, 0, tzinfo=UTC)  # 23:00 on 28 February in Shanghai
    assert _band(rules, after, tz) == "BP-C"
    assert _band(rules, before, tz) == "BP-B"
    # in UTC the child is still under 1 at 17:00Z
    assert _band(default_rules(), after) == "BP-B"


def test_dead_and_missing_configuration_age_crosses_a_band_during_admission() -> None:
    """The band follows each observation's time, not the admission's (spec §0.2)."""
    rules = rules_from({"time_zone": SHANGHAI})
    start = datetime(2026, 2, 28, 15, 50, tzinfo=UTC)
    eng = UnitEngine(rules, score, unit="ward1", generation=Generation.TEST)
    eng.set_bed(BedInfo("b1", "bedside_pews", dob=DOB), start)
    bands = []
    for minutes in (0, 5, 9, 11, 20):
        t = start + timedelta(minutes=minutes)
        for e in eng.on_readings("b1", [Reading("hr_bpm", 120, t, device_id="m")], t):
            if isinstance(e, ScoreEffect) and e.at == t:
                bands.append(e.result.band)
    assert bands == ["BP-B", "BP-B", "BP-B", "BP-C", "BP-C"]
