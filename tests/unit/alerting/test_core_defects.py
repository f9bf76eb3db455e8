"""Named regressions for the defects the pure alert-engine core (``alerting.core``) was written
to fix, each driven through ``UnitEngine`` with the real scorer (``alerting.pews.score``).

Clinical background: docs/clinical/conventions.md#missing-items and
docs/clinical/alarm_fatigue.md#missing-data (a missing item never lowers an active
escalation), docs/clinical/alarm_fatigue.md (persistence, hysteresis, de-duplication),
docs/clinical/artefact_limits.md (a rejected value is missing) and docs/clinical/vocabulary.md
(the input keys and levels).

A 3-year-old on Bedside PEWS (band BP-C) scores HR 185 -> 4, RR 65 -> 2, SpO2 86 -> 2: total 8,
HIGH. Those three device values are the running example.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from alerting.core import (
    AlertEffect,
    BedInfo,
    Reading,
    ScoreEffect,
    UnitEngine,
    UnitRules,
    default_rules,
    from_observation,
    rules_from,
)
from alerting.pews import score
from wardwire.models import (
    Alert,
    AlertEventType,
    AlertKind,
    AlertState,
    Generation,
    Observation,
    Priority,
    Quality,
    Source,
    TimeSource,
)

T0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
AGE_3Y = 3 * 365.25 + 30  # days: Bedside PEWS band BP-C, UK NPEWS band UK-B
HIGH8 = {"hr_bpm": 185, "rr_bpm": 65, "spo2_pct": 86}  # BP-C: 4 + 2 + 2 = 8 (HIGH)
NORMAL = {"hr_bpm": 100, "rr_bpm": 30, "spo2_pct": 98}  # BP-C: 0 + 0 + 0
E = AlertEventType
Effect = AlertEffect | ScoreEffect


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


@dataclass
class Driver:
    """Drives one ``UnitEngine`` the way the shell and the replay do: timers due before an
    input run first, at their own time; every effect is collected in order."""

    rules: UnitRules = field(default_factory=default_rules)
    tz: object = None
    effects: list[Effect] = field(default_factory=list)
    now: datetime = T0

    def __post_init__(self) -> None:
        self.eng = UnitEngine(
            self.rules, score, unit="ward1", generation=Generation.TEST, tz=self.tz  # type: ignore[arg-type]
        )

    def _take(self, effects: Iterable[Effect]) -> list[Effect]:
        got = list(effects)
        self.effects += got
        return got

    def bed(
        self, bed_id: str, system: str = "bedside_pews", at: datetime = T0, **kw: object
    ) -> None:
        if "dob" not in kw and "age_days" not in kw and not kw.pop("no_age", False):
            kw["age_days"], kw["age_at"] = AGE_3Y, at
        self._take(self.eng.set_bed(BedInfo(bed_id, system, **kw), at))  # type: ignore[arg-type]

    def until(self, t: datetime) -> None:
        """Run every timer due at or before ``t``."""
        while (d := self.eng.next_deadline()) is not None and d <= t:
            self._take(self.eng.on_deadline(d))
        self.now = max(self.now, t)

    def send(
        self,
        bed_id: str,
        t: datetime,
        values: Mapping[str, object],
        *,
        device: str | None = "mon1",
        source: Source = Source.MEASURED,
        quality: Quality = Quality.VALID,
        at: datetime | None = None,
    ) -> list[Effect]:
        self.until(t)
        readings = [
            Reading(k, v, at or t, source=source, device_id=device, quality=quality)
            for k, v in values.items()
        ]
        return self._take(self.eng.on_readings(bed_id, readings, t))

    def stream(
        self,
        bed_id: str,
        start: datetime,
        seconds: float,
        values: Mapping[str, object] | Callable[[int], Mapping[str, object]],
        every_s: float = 5,
        **kw: object,
    ) -> datetime:
        """Device readings every ``every_s`` from ``start`` for ``seconds``; the next tick."""
        n = int(seconds // every_s)
        for i in range(n):
            v = values(i) if callable(values) else values
            self.send(bed_id, start + s(i * every_s), v, **kw)  # type: ignore[arg-type]
        return start + s(n * every_s)

    def command(self, action: str, t: datetime, **kw: object) -> tuple[list[Effect], list[str]]:
        self.until(t)
        eff, refused = self.eng.on_command(action, t, "nurse", **kw)  # type: ignore[arg-type]
        self._take(eff)
        return eff, refused

    # -- what came out ---------------------------------------------------------------------
    def alerts(
        self,
        bed_id: str | None = None,
        rule: str | None = None,
        event: AlertEventType | None = None,
    ) -> list[AlertEffect]:
        return [
            e
            for e in self.effects
            if isinstance(e, AlertEffect)
            and (bed_id is None or e.alert.bed_id == bed_id)
            and (rule is None or e.alert.rule == rule or e.alert.condition == rule)
            and (event is None or e.event is event)
        ]

    def clinical(self, bed_id: str, event: AlertEventType | None = None) -> list[AlertEffect]:
        return [
            e
            for e in self.alerts(bed_id, event=event)
            if e.alert.alert_kind is AlertKind.CLINICAL
        ]

    def latest(self, bed_id: str, condition: str) -> Alert | None:
        """The alert's state as last published (``None``: never raised)."""
        found = [e.alert for e in self.alerts(bed_id) if e.alert.condition == condition]
        return found[-1] if found else None

    def scores(self, bed_id: str) -> list[ScoreEffect]:
        return [e for e in self.effects if isinstance(e, ScoreEffect) and e.bed_id == bed_id]

    def open_conditions(self, bed_id: str) -> set[str]:
        bed = self.eng.bed(bed_id)
        assert bed is not None
        return {c for c, ep in bed.episodes.items() if ep.state is not AlertState.RESOLVED}


def raise_and_ack_high(
    d: Driver, bed_id: str = "b1", extra: Mapping[str, object] | None = None
) -> datetime:
    """Bedside PEWS 8 sustained until raised, then acknowledged; returns the time."""
    vals = {**HIGH8, **(extra or {})}
    t = d.stream(bed_id, T0, 150, vals)
    raised = d.clinical(bed_id, E.RAISED)
    assert len(raised) == 1 and raised[0].alert.priority is Priority.HIGH
    assert raised[0].alert.score_total == 8
    d.command("ack", t, bed_id=bed_id)
    ack = d.latest(bed_id, "pews")
    assert ack is not None and ack.state is AlertState.ACKNOWLEDGED
    return t


# ---------------------------------------------------------------------------------------------
# 1. Missing data lowers and then resolves an alert.


def _assert_held(d: Driver, bed_id: str, since: datetime, item: str, key: str) -> None:
    later = [e for e in d.scores(bed_id) if e.at >= since]
    assert later, "no score after the loss"
    assert all(e.result.total >= 8 for e in later), [e.result.total for e in later]
    assert all(key in e.held for e in later)
    alert = d.latest(bed_id, "pews")
    assert alert is not None
    assert alert.state is not AlertState.RESOLVED
    assert alert.score_total == 8
    assert item in alert.held
    assert not d.clinical(bed_id, E.RESOLVED)
    lost = d.latest(bed_id, "parameter_lost")
    assert lost is not None and lost.state is not AlertState.RESOLVED
    assert lost.alert_kind is AlertKind.TECHNICAL and key in lost.message


def _spo2_invalid_observation(t: datetime) -> Reading:
    """The oximeter flags the probe off: the value it sends is kept, never scored."""
    obs = Observation(
        device_id="mon1", code="SPO2", value=86, unit="%", measured_at=t, received_at=t,
        quality=Quality.INVALID, quality_reason="probe off",
    )
    r = from_observation(obs)
    assert r is not None and r.key == "spo2_pct" and r.value is None
    return r


@pytest.mark.parametrize("how", ["value_none", "invalid_observation"])
def test_missing_data_lowers_and_then_resolves_an_alert_spo2_probe_off(how: str) -> None:
    d = Driver()
    d.bed("b1")
    t = raise_and_ack_high(d)
    lost_at = t
    for i in range(240):  # 20 min of probe-off at one reading every 5 s
        now = lost_at + s(5 * i)
        if how == "value_none":
            d.send("b1", now, {"hr_bpm": 185, "rr_bpm": 65, "spo2_pct": None})
        else:
            d.until(now)
            d._take(
                d.eng.on_readings(
                    "b1",
                    [
                        Reading("hr_bpm", 185, now, device_id="mon1"),
                        Reading("rr_bpm", 65, now, device_id="mon1"),
                        _spo2_invalid_observation(now),
                    ],
                    now,
                )
            )
    _assert_held(d, "b1", lost_at, "spo2", "spo2_pct")


def test_missing_data_lowers_and_then_resolves_an_alert_hr_below_artefact_floor() -> None:
    d = Driver()
    d.bed("b1")
    t = raise_and_ack_high(d)
    # peri-arrest: HR 15 is below the artefact floor (20), so hr is *missing*, never normal
    d.stream("b1", t, 20 * 60, {"hr_bpm": 15, "rr_bpm": 65, "spo2_pct": 86})
    _assert_held(d, "b1", t, "hr", "hr_bpm")


def test_missing_data_lowers_and_then_resolves_an_alert_nibp_ages() -> None:
    d = Driver()
    d.bed("b1")
    # BP-C: HR 185 -> 4, SBP 60 -> 4 (on its own), RR 30 and SpO2 98 -> 0: total 8 (HIGH)
    vitals = {"hr_bpm": 185, "rr_bpm": 30, "spo2_pct": 98}
    d.send("b1", T0, {"sbp_mmhg": 60}, device="nibp1")
    t = d.stream("b1", T0, 150, vitals)
    raised = d.clinical("b1", E.RAISED)
    assert len(raised) == 1 and raised[0].alert.score_total == 8
    d.command("ack", t, bed_id="b1")
    # at 30 min the NIBP is still a fresh spot check: scored, not held
    t = d.stream("b1", t, 30 * 60 - 150, vitals, every_s=30)
    last = d.scores("b1")[-1]
    assert last.result.items["sbp"] == 4 and "sbp_mmhg" not in last.held
    assert d.latest("b1", "parameter_lost") is None
    # past 4 h (spot_s) it ages out while the alert is open: held at 60, not dropped
    t = d.stream("b1", t, 4 * 3600, vitals, every_s=60)
    aged = T0 + s(default_rules().freshness.spot_s)
    _assert_held(d, "b1", aged + s(60), "sbp", "sbp_mmhg")


# ---------------------------------------------------------------------------------------------
# 2. An acknowledged alert goes silent as the child worsens.

# UK NPEWS, UK-B (1-4 years): HR >= 170 -> 4, RR >= 60 -> 4, SpO2 <= 91 -> 4, 91-95 -> 1
NPEWS_9 = {"hr_bpm": 175, "rr_bpm": 65, "spo2_pct": 93}  # 4 + 4 + 1 = 9: high
NPEWS_12 = {"hr_bpm": 175, "rr_bpm": 65, "spo2_pct": 89}  # 4 + 4 + 4 = 12: high


def test_acknowledged_alert_goes_silent_as_the_child_worsens() -> None:
    d = Driver()
    d.bed("b1", "uk_npews")
    t = d.stream("b1", T0, 150, NPEWS_9)
    raised = d.clinical("b1", E.RAISED)
    assert len(raised) == 1
    assert raised[0].alert.level == "high" and raised[0].alert.priority is Priority.HIGH
    assert raised[0].alert.score_total == 9
    d.command("ack", t, bed_id="b1")
    n_before = len(d.clinical("b1"))

    # still high (9 -> 12): the alert follows the score (updated), but no re-notification
    t = d.stream("b1", t, 60, NPEWS_12)
    upd = [e for e in d.clinical("b1")[n_before:] if e.event is E.UPDATED]
    assert upd and upd[-1].alert.score_total == 12 and "12" in upd[-1].alert.message
    assert upd[-1].alert.state is AlertState.ACKNOWLEDGED
    assert not d.clinical("b1", E.WORSENED)

    # high -> emergency (>= 13, both HIGH priority): worsened, active again
    charted_at = t
    d.send("b1", t, {"resp_distress": "moderate"}, source=Source.ENTERED, device=None)  # +2: 14
    t = d.stream("b1", t + s(5), 150, NPEWS_12)
    worse = d.clinical("b1", E.WORSENED)
    assert len(worse) == 1, [e.event for e in d.clinical("b1")]
    w = worse[0].alert
    assert w.level == "emergency" and w.priority is Priority.HIGH
    assert w.state is AlertState.ACTIVE
    assert w.score_total == 14 and "14" in w.message and "emergency" in w.message
    assert worse[0].at <= charted_at + s(120)
    assert d.latest("b1", "pews").state is AlertState.ACTIVE  # type: ignore[union-attr]


def test_acknowledged_alert_goes_silent_reminder_when_reassessment_runs_out() -> None:
    d = Driver()
    d.bed("b1", "uk_npews")
    t = d.stream("b1", T0, 150, NPEWS_12)
    d.command("ack", t, bed_id="b1")
    acked = d.latest("b1", "pews")
    assert acked is not None and acked.state is AlertState.ACKNOWLEDGED
    assert acked.reassess_by == t + s(15 * 60)  # uk_npews high: 15 min
    d.stream("b1", t, 20 * 60, NPEWS_12)
    rem = d.clinical("b1", E.REMINDER)
    assert rem, [e.event for e in d.clinical("b1")]
    assert rem[0].at == t + s(15 * 60)
    assert rem[0].alert.state is AlertState.ACTIVE


# ---------------------------------------------------------------------------------------------
# 3. Flicker defeats the onset delay.

# BP-C: HR 170 -> 4, 169 -> 2; RR 61 -> 2; SpO2 90 -> 2, 92 -> 1; RR 60 -> 1; HR 150 -> 2
FLICKER_ON = {"hr_bpm": 170, "rr_bpm": 65, "spo2_pct": 86}  # 4 + 2 + 2 = 8 (HIGH)
FLICKER_OFF = {"hr_bpm": 169, "rr_bpm": 65, "spo2_pct": 86}  # 2 + 2 + 2 = 6 (LOW)
CALM = {"hr_bpm": 150, "rr_bpm": 60, "spo2_pct": 92}  # 2 + 1 + 1 = 4 (no alarm)
SPIKE = {"hr_bpm": 170, "rr_bpm": 61, "spo2_pct": 90}  # 4 + 2 + 2 = 8, no abrupt jump


def test_flicker_defeats_the_onset_delay() -> None:
    d = Driver()
    d.bed("b1")
    d.stream("b1", T0, 30 * 60, lambda i: FLICKER_OFF if i % 30 == 29 else FLICKER_ON, every_s=1)
    raised = d.clinical("b1", E.RAISED)
    assert raised, "a total of 8 on 29 of every 30 seconds never raised"
    assert raised[0].alert.priority is Priority.HIGH
    assert raised[0].at <= T0 + s(120)


@pytest.mark.parametrize("excursion_s", [1, 10])
def test_flicker_defeats_the_onset_delay_short_excursion_never_raises(excursion_s: int) -> None:
    d = Driver()
    d.bed("b1")
    start = 5 * 60
    d.stream(
        "b1", T0, 20 * 60,
        lambda i: SPIKE if start <= i < start + excursion_s else CALM,
        every_s=1,
    )
    assert any(e.result.total == 8 for e in d.scores("b1")), "the excursion was never scored"
    assert not d.clinical("b1"), [e.event for e in d.clinical("b1")]


def test_flicker_defeats_the_onset_delay_sustained_medium_within_5_min() -> None:
    d = Driver()
    d.bed("b1")
    d.stream("b1", T0, 10 * 60, {"hr_bpm": 170, "rr_bpm": 61, "spo2_pct": 93}, every_s=15)  # 7
    raised = d.clinical("b1", E.RAISED)
    assert raised and raised[0].alert.priority is Priority.MEDIUM
    assert raised[0].at <= T0 + s(300)


def test_flicker_defeats_the_onset_delay_sustained_high_one_reading_a_minute() -> None:
    d = Driver()
    d.bed("b1")
    d.stream("b1", T0, 10 * 60, HIGH8, every_s=60)
    raised = d.clinical("b1", E.RAISED)
    assert raised and raised[0].alert.priority is Priority.HIGH
    assert raised[0].at <= T0 + s(120)


# ---------------------------------------------------------------------------------------------
# 4. One bed stops the whole unit.

BAD_BEDS: dict[str, tuple[dict[str, object], Mapping[str, object]]] = {
    "age_outside_table": ({"system": "bedside_pews", "age_days": 7000}, {}),
    "child_on_news2": ({"system": "news2", "age_days": 2 * 365.25}, {}),
    "future_dob": ({"system": "bedside_pews", "dob": date(2027, 6, 1)}, {}),
    "contradictory_oxygen": (
        {"system": "bedside_pews"},
        {"oxygen": {"device": "room_air", "flow_lpm": 4}},
    ),
}


def _unit_run(bad: str | None) -> Driver:
    d = Driver()
    d.bed("ok1")
    d.bed("ok2", "uk_npews")
    if bad is not None:
        info, charted = BAD_BEDS[bad]
        kw = dict(info)
        d.bed("bad", str(kw.pop("system")), **kw)
        if charted:
            d.send("bad", T0, charted, source=Source.ENTERED, device=None)
    for i in range(120):
        t = T0 + s(5 * i)
        d.send("ok1", t, HIGH8)
        d.send("ok2", t, NPEWS_9)
        if bad is not None:
            d.send("bad", t, HIGH8)
    d.command("ack", T0 + s(600), bed_id="ok1")
    d.until(T0 + s(1200))
    return d


def _bed_effects(d: Driver, bed_id: str) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for e in d.effects:
        if isinstance(e, AlertEffect) and e.alert.bed_id == bed_id:
            out.append((e.event, e.at, e.alert.model_dump_json()))
        elif isinstance(e, ScoreEffect) and e.bed_id == bed_id:
            out.append(("score", e.at, e.result.total, e.level.word))
    return out


@pytest.mark.parametrize("bad", sorted(BAD_BEDS))
def test_one_bed_stops_the_whole_unit(bad: str) -> None:
    alone = _unit_run(None)
    d = _unit_run(bad)
    cannot = d.alerts("bad", "cannot_score", E.RAISED)
    assert len(cannot) == 1 and cannot[0].alert.alert_kind is AlertKind.TECHNICAL
    assert d.latest("bad", "cannot_score").state is AlertState.ACTIVE  # type: ignore[union-attr]
    assert not d.clinical("bad")
    for ok in ("ok1", "ok2"):
        assert not d.alerts(ok, "cannot_score")
        assert d.clinical(ok, E.RAISED)
        assert _bed_effects(d, ok) == _bed_effects(alone, ok)


# ---------------------------------------------------------------------------------------------
# 5. Technical alerts have holes.

NO_DATA_S = default_rules().freshness.no_data_s


def test_technical_alerts_have_holes_invalid_only_data_raises_no_data() -> None:
    d = Driver()
    d.bed("b1")
    d.stream("b1", T0, 10 * 60, {"hr_bpm": None, "rr_bpm": None, "spo2_pct": None})
    raised = d.alerts("b1", "no_data", E.RAISED)
    assert raised and raised[0].at <= T0 + s(NO_DATA_S + 5)
    assert d.latest("b1", "no_data").state is AlertState.ACTIVE  # type: ignore[union-attr]


def test_technical_alerts_have_holes_future_stamped_reading_keeps_nothing_quiet() -> None:
    d = Driver()
    d.bed("b1")
    d.send("b1", T0 + s(10), HIGH8, device="mon9", at=T0 + s(10 + 50 * 60))
    d.until(T0 + s(15 * 60))
    scored = [e for e in d.scores("b1") if e.inputs]
    assert not scored, "a value stamped 50 min ahead was scored"
    skew = d.alerts("b1", "clock_skew", E.RAISED)
    assert skew and skew[0].alert.device_id == "mon9"
    assert skew[0].alert.condition == "clock_skew:mon9"
    no_data = d.alerts("b1", "no_data", E.RAISED)
    assert no_data and no_data[0].at <= T0 + s(NO_DATA_S + 5)
    assert not d.clinical("b1")


def test_technical_alerts_have_holes_silent_bed_raises_no_data() -> None:
    d = Driver()
    d.bed("b1")
    d.until(T0 + s(NO_DATA_S - 1))
    assert not d.alerts("b1", "no_data")
    d.until(T0 + s(NO_DATA_S))
    raised = d.alerts("b1", "no_data", E.RAISED)
    assert raised and raised[0].at == T0 + s(NO_DATA_S)


def test_technical_alerts_have_holes_no_dob_raises_no_dob() -> None:
    d = Driver()
    d.bed("b1", no_age=True)
    d.stream("b1", T0, 60, HIGH8)
    raised = d.alerts("b1", "no_dob", E.RAISED)
    assert raised and raised[0].at == T0
    assert raised[0].alert.alert_kind is AlertKind.TECHNICAL
    assert not d.clinical("b1")


def test_technical_alerts_have_holes_gateway_shutdown_raises_monitoring_paused() -> None:
    d = Driver()
    d.bed("b1")
    d.bed("b2")
    t = d.stream("b1", T0, 60, NORMAL)
    d.until(t)
    d._take(d.eng.on_gateway("gw1", "shutdown", ["b1", "b2"], t))
    for b in ("b1", "b2"):
        paused = d.alerts(b, "monitoring_paused", E.RAISED)
        assert paused and paused[0].at == t
    d.until(t + s(3600))
    assert "monitoring_paused" in d.open_conditions("b1")
    assert not d.alerts("b1", "no_data", E.RAISED), "a paused bed raised no_data"


def test_technical_alerts_have_holes_device_problems_are_per_device() -> None:
    d = Driver()
    d.bed("b1")
    d.stream("b1", T0, 30, NORMAL)
    t = T0 + s(30)
    d._take(d.eng.on_device("b1", "oxi1", "no_signal", t))
    d._take(d.eng.on_device("b1", "ecg1", "connected", t + s(1)))
    d._take(d.eng.on_device("b1", "ecg1", "disconnected", t + s(2)))
    d._take(d.eng.on_device("b1", "oxi1", "connected", t + s(3)))
    ns = d.latest("b1", "no_signal:oxi1")
    assert ns is not None and ns.state is AlertState.RESOLVED
    d._take(d.eng.on_device("b1", "oxi1", "no_signal", t + s(4)))
    d._take(d.eng.on_device("b1", "ecg1", "connected", t + s(5)))
    opened = d.open_conditions("b1")
    assert "no_signal:oxi1" in opened
    assert "device_offline:ecg1" not in opened
    ns = d.latest("b1", "no_signal:oxi1")
    assert ns is not None and ns.state is AlertState.ACTIVE and ns.device_id == "oxi1"


def test_technical_alerts_have_holes_device_clock_steps_back() -> None:
    d = Driver()
    d.bed("b1")
    t = d.stream("b1", T0, 60, NORMAL)
    # the monitor's clock steps back one hour; it goes on measuring a HIGH child
    for i in range(60):
        now = t + s(5 * i)
        d.send("b1", now, HIGH8, at=now - s(3600))
    skew = d.alerts("b1", "clock_skew", E.RAISED)
    assert skew and skew[0].alert.condition == "clock_skew:mon1" and skew[0].at == t
    later = [e for e in d.scores("b1") if e.at > t]
    assert later and later[-1].result.total == 8 and later[-1].result.items["hr"] == 4
    raised = d.clinical("b1", E.RAISED)
    assert raised and raised[0].at <= t + s(120)
    assert not d.alerts("b1", "no_data", E.RAISED)


def test_technical_alerts_have_holes_seq_gap_latches_until_acknowledged() -> None:
    d = Driver()
    d.bed("b1")
    t = d.stream("b1", T0, 30, NORMAL)
    d._take(d.eng.on_event("seq_gap", "gateway gw1: seq 17..19 missing", ["b1"], t))
    raised = d.alerts("b1", "seq_gap", E.RAISED)
    assert raised and raised[0].alert.alert_kind is AlertKind.TECHNICAL
    t2 = d.stream("b1", t, 30 * 60, NORMAL)
    assert not d.alerts("b1", "seq_gap", E.RESOLVED)
    assert "seq_gap" in d.open_conditions("b1")
    d.command("ack", t2, alert_id=raised[0].alert.alert_id)
    assert d.alerts("b1", "seq_gap", E.RESOLVED)
    assert "seq_gap" not in d.open_conditions("b1")


# ---------------------------------------------------------------------------------------------
# Clearing needs the condition absent for clear_s on a complete or charted score.

CHARTED_NORMAL = {
    "hr_bpm": 100, "sbp_mmhg": 100, "crt_s": 1, "rr_bpm": 30,
    "resp_effort": "normal", "spo2_pct": 98, "oxygen": {"device": "room_air"},
}


def test_clearing_needs_a_complete_or_charted_score() -> None:
    d = Driver()
    d.bed("b1")
    t = raise_and_ack_high(d)
    # device-only (partial) normal values for an hour: never resolves the clinical alert
    t = d.stream("b1", t, 3600, NORMAL)
    assert d.scores("b1")[-1].result.total == 0
    assert not d.scores("b1")[-1].result.complete
    assert not d.clinical("b1", E.RESOLVED)
    assert "pews" in d.open_conditions("b1")
    # a complete charted set below threshold, held for clear_s: resolved
    charted_at = t
    d.send("b1", t, CHARTED_NORMAL, source=Source.ENTERED, device=None)
    clear_s = default_rules().clear.clear_s
    t = d.stream("b1", t + s(5), clear_s - 10, NORMAL)
    assert not d.clinical("b1", E.RESOLVED), "resolved before clear_s"
    d.stream("b1", t, 60, NORMAL)
    res = d.clinical("b1", E.RESOLVED)
    assert res and charted_at + s(clear_s) <= res[0].at <= charted_at + s(clear_s + 10)
    assert "pews" not in d.open_conditions("b1")


@pytest.mark.parametrize(
    "value",
    ["normal", True, float("nan"), float("inf"), 10**400, {"device": "HF"}, [185]],
    ids=["text", "bool", "nan", "inf", "huge_int", "dict", "list"],
)
def test_one_bed_stops_the_whole_unit_non_numeric_device_value(value: object) -> None:
    """A device value for a numeric key that is not a finite number is an artefact on its own
    bed (hr missing), never an exception out of the engine (found by test_per_bed_isolation:
    a measured hr_bpm "normal" hit an assert in the jump check; an int too large for a float
    raised OverflowError in the artefact check)."""
    d = Driver()
    d.bed("ok1")
    d.bed("bad")
    for i in range(60):
        t = T0 + s(5 * i)
        d.send("ok1", t, HIGH8)
        d.send("bad", t, {"hr_bpm": value, "pr_bpm": value, "rr_bpm": 65, "spo2_pct": 86})
    d.until(T0 + s(900))
    bad = d.scores("bad")[-1]
    assert bad.result.items["hr"] is None and "hr" in bad.result.missing
    assert d.clinical("ok1", E.RAISED)
    assert not d.alerts("bad", "cannot_score")


@pytest.mark.parametrize("how", ["questionable", "abrupt_jump"])
def test_duplicate_delivery_does_not_confirm_a_questionable_value(how: str) -> None:
    """A questionable (or abrupt) device value waits for a *second* reading to confirm it; the
    same reading delivered twice (an at-least-once redelivery) is not that second reading
    (found by test_duplicate_delivery_changes_no_alert_decision)."""
    d = Driver()
    d.bed("b1")
    t = d.stream("b1", T0, 60, NORMAL)  # HR 100, every 5 s
    quality = Quality.QUESTIONABLE if how == "questionable" else Quality.VALID
    for _ in range(2):
        d.send("b1", t, {"hr_bpm": 185}, quality=quality)  # +85 bpm within 5 s
    assert d.scores("b1")[-1].result.items["hr"] == 0  # still the confirmed HR 100
    # a real second reading confirms it
    d.send("b1", t + s(5), {"hr_bpm": 186})
    assert d.scores("b1")[-1].result.items["hr"] == 4


CHARTED_HIGH = {**CHARTED_NORMAL, "hr_bpm": 185, "rr_bpm": 65, "spo2_pct": 86}  # complete: 8


def test_charted_set_before_the_date_of_birth_raises_once_the_bed_can_be_scored() -> None:
    """A complete charted set of 8 (HIGH) taken while the bed had no date of birth (no_dob):
    when the date of birth arrives, the set is scored HIGH and must raise like any charted set,
    not wait for another reading that may be hours away (the onset confirmations were counted
    only for readings arriving while the bed could be scored, so it never raised, and the
    bed's timer fired every second while it waited)."""
    d = Driver()
    d.bed("b1", no_age=True)
    d.send("b1", T0 + s(10), CHARTED_HIGH, source=Source.ENTERED, device=None)
    assert d.alerts("b1", "no_dob", E.RAISED)
    t = T0 + s(60)
    d.until(t)
    d._take(d.eng.set_bed(BedInfo("b1", "bedside_pews", age_days=AGE_3Y, age_at=t), t))
    assert d.scores("b1")[-1].result.total == 8 and d.scores("b1")[-1].result.complete
    n = 0
    while (dd := d.eng.next_deadline()) is not None and dd <= t + s(3600):
        d._take(d.eng.on_deadline(dd))
        n += 1
    raised = d.clinical("b1", E.RAISED)
    assert raised and raised[0].alert.priority is Priority.HIGH
    assert raised[0].at <= t + s(120)
    assert n < 600, f"{n} timer calls in an hour"


def test_single_reading_excursion_does_not_wake_the_bed_every_second() -> None:
    """One HIGH reading, then silence: once its onset time is covered, only a new reading can
    confirm the level, so no timer is due until something can change without input (found by
    a quiet-hour search over the property streams: the bed woke, and published a score, every
    second until the reading went stale)."""
    d = Driver()
    d.bed("b1")
    d.send("b1", T0, HIGH8)
    wakes = []
    while (dd := d.eng.next_deadline()) is not None and dd <= T0 + s(3600):
        d._take(d.eng.on_deadline(dd))
        wakes.append(dd)
    one_s = sum(1 for a, b in pairwise(wakes) if b - a <= s(1))
    assert one_s < 10, f"{one_s} one-second wakes of {len(wakes)}"
    assert not d.clinical("b1")
    # the same reading confirmed a minute later still raises on time
    d2 = Driver()
    d2.bed("b1")
    d2.send("b1", T0, HIGH8)
    d2.send("b1", T0 + s(60), HIGH8)
    d2.until(T0 + s(600))
    raised = d2.clinical("b1", E.RAISED)
    assert raised and raised[0].at == T0 + s(72)


def test_emptied_bed_does_not_keep_escalating_its_alerts() -> None:
    """A bed marked unoccupied (the same admission id, e.g. none) closes its alerts: an open
    HIGH alert kept escalating every minute for an empty bed."""
    d = Driver()
    d.bed("b1")
    t = d.stream("b1", T0, 150, HIGH8)
    assert d.clinical("b1", E.RAISED)
    d._take(
        d.eng.set_bed(
            BedInfo("b1", "bedside_pews", age_days=AGE_3Y, age_at=T0, occupied=False), t
        )
    )
    n = len(d.effects)
    d.until(t + s(3600))
    assert not [e for e in d.effects[n:] if isinstance(e, AlertEffect)]
    assert not d.open_conditions("b1")
    res = d.clinical("b1", E.RESOLVED)
    assert res and res[0].at == t


@pytest.mark.parametrize("min_priority", ["low", "medium"])
def test_missing_data_lowers_the_onset_before_an_alert_is_open(min_priority: str) -> None:
    """Before an alert is open, an item that scored and then reads nothing is held for
    ``onset.bridge_s`` (30 s): a probe reading nothing on 1 reading in 4 does not read as a
    lower score, so the HIGH child alerts within the HIGH onset."""
    d = Driver(rules=rules_from({"min_priority": min_priority}))
    d.bed("b1")
    off = {"hr_bpm": 185, "rr_bpm": 65, "spo2_pct": None}
    d.stream("b1", T0, 30 * 60, lambda i: off if i % 4 == 3 else HIGH8)  # probe off 1 in 4
    high = [
        e for e in d.clinical("b1")
        if e.event in (E.RAISED, E.WORSENED) and e.alert.priority is Priority.HIGH
    ]
    assert high and high[0].at <= T0 + s(120)


def test_technical_alerts_have_holes_retimed_device_raises_clock_skew() -> None:
    """The gateway re-times every value of a monitor whose clock is implausible (time_source
    gateway): those values are never scored, so the bed raises no_data, and the monitor itself
    must be named by clock_skew (nothing said why a monitor showing numbers gave no data)."""
    d = Driver()
    d.bed("b1")
    for i in range(60):
        t = T0 + s(5 * i)
        obs = [
            Observation(
                device_id="mon1", code=code, value=v, unit=unit, measured_at=t, received_at=t,
                time_source=TimeSource.GATEWAY,
            )
            for code, v, unit in (("HR", 185, "/min"), ("SPO2", 86, "%"))
        ]
        rs = [r for r in map(from_observation, obs) if r is not None]
        assert all(r.retimed for r in rs)
        d.until(t)
        d._take(d.eng.on_readings("b1", rs, t))
    assert not [e for e in d.scores("b1") if e.inputs]
    assert d.alerts("b1", "no_data", E.RAISED)
    skew = d.alerts("b1", "clock_skew", E.RAISED)
    assert skew and skew[0].alert.condition == "clock_skew:mon1" and skew[0].at == T0
    # its clock is plausible again: scored, clock_skew and no_data end
    t = d.stream("b1", T0 + s(300), 60, HIGH8)
    assert d.latest("b1", "clock_skew:mon1").state is AlertState.RESOLVED  # type: ignore[union-attr]
    assert d.latest("b1", "no_data").state is AlertState.RESOLVED  # type: ignore[union-attr]
    assert d.scores("b1")[-1].result.total == 8


def test_the_onset_bridge_is_short_a_brief_excursion_then_probe_off_does_not_raise() -> None:
    """The bridge is bounded: 10 s at HIGH, then the SpO2 probe off for 10 minutes (HR and RR
    go on; without SpO2 the total is 6, LOW) must not raise a MEDIUM or HIGH alert on 10 s of
    evidence plus a held value."""
    d = Driver(rules=rules_from({"min_priority": "medium"}))
    d.bed("b1")
    off = {"hr_bpm": 185, "rr_bpm": 65, "spo2_pct": None}
    d.stream("b1", T0, 10 * 60, lambda i: HIGH8 if i < 2 else off)  # 5 s apart
    assert not [e for e in d.clinical("b1") if e.event in (E.RAISED, E.WORSENED)]
