"""Properties of the pure alert-engine core (``alerting.core.UnitEngine``, real scorer):

* per-bed isolation: nothing sent to one bed stops or changes another;
* snapshot/restore (through JSON) at any point changes nothing that follows;
* a duplicate delivery of the same readings changes no alert decision;
* deadlines always move forward and ``on_deadline`` always returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.core import (
    AlertEffect,
    BedInfo,
    Reading,
    ScoreEffect,
    UnitEngine,
    default_rules,
)
from alerting.pews import score
from wardwire.models import Generation, Quality, Source

T0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
AGE_3Y = 3 * 365.25 + 30
Effect = AlertEffect | ScoreEffect
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NORMAL = {"hr_bpm": 100, "rr_bpm": 30, "spo2_pct": 98}
LOW5 = {"hr_bpm": 150, "rr_bpm": 61, "spo2_pct": 93}
MEDIUM7 = {"hr_bpm": 170, "rr_bpm": 61, "spo2_pct": 93}
HIGH8 = {"hr_bpm": 185, "rr_bpm": 65, "spo2_pct": 86}
PROBE_OFF = {"hr_bpm": 185, "rr_bpm": 65, "spo2_pct": None}
PROFILES: list[Mapping[str, object]] = [NORMAL, LOW5, MEDIUM7, HIGH8, PROBE_OFF]


def engine() -> UnitEngine:
    return UnitEngine(default_rules(), score, unit="ward1", generation=Generation.TEST)


def drive_deadlines(eng: UnitEngine, t: datetime, out: list[Effect]) -> None:
    while (d := eng.next_deadline()) is not None and d <= t:
        out += eng.on_deadline(d)


def alert_view(effects: Iterable[Effect], bed_id: str | None = None) -> list[tuple[Any, ...]]:
    return [
        (e.event.value, e.at.isoformat(), e.by, e.alert.model_dump_json())
        for e in effects
        if isinstance(e, AlertEffect) and (bed_id is None or e.alert.bed_id == bed_id)
    ]


def score_view(effects: Iterable[Effect], bed_id: str | None = None) -> list[tuple[Any, ...]]:
    return [
        (
            e.bed_id, e.at.isoformat(), e.result.total, e.result.band, e.result.complete,
            json.dumps(dict(e.result.items), sort_keys=True), e.level.word, e.held, e.mode,
        )
        for e in effects
        if isinstance(e, ScoreEffect) and (bed_id is None or e.bed_id == bed_id)
    ]


# ---------------------------------------------------------------------------------------------
# A scripted control bed, and hostile input for another bed.


def control_steps() -> list[tuple[int, Mapping[str, object] | str]]:
    """(second, readings or a command) for the control bed: calm, HIGH, acknowledged, probe
    off, calm again, a snooze refused (HIGH), and a charted set."""
    steps: list[tuple[int, Mapping[str, object] | str]] = []
    for i in range(0, 1200, 10):
        if i < 120:
            steps.append((i, NORMAL))
        elif i < 420:
            steps.append((i, HIGH8))
        elif i < 660:
            steps.append((i, PROBE_OFF))
        elif i < 900:
            steps.append((i, MEDIUM7))
        else:
            steps.append((i, NORMAL))
        if i == 300:
            steps.append((i, "ack"))
        if i == 700:
            steps.append((i, "snooze"))
    return steps


def control_call(eng: UnitEngine, t: datetime, step: Mapping[str, object] | str) -> list[Effect]:
    if step == "ack":
        return eng.on_command("ack", t, "nurse", bed_id="ctl")[0]
    if step == "snooze":
        return eng.on_command("snooze", t, "nurse", bed_id="ctl", minutes=10)[0]
    assert isinstance(step, Mapping)
    return eng.on_readings(
        "ctl", [Reading(k, v, t, device_id="ctl-mon") for k, v in step.items()], t
    )


KEYS = [
    "hr_bpm", "pr_bpm", "rr_bpm", "spo2_pct", "sbp_mmhg", "temp_c", "crt_s", "oxygen",
    "oxygen.device", "oxygen.flow_lpm", "oxygen.fio2_pct", "resp_effort", "resp_distress",
    "avpu", "consciousness", "on_oxygen", "bp_skip_code", "behaviour", "skin_colour",
    "resp_signs", "carer_question", "clinical_intuition", "specific_concern",
    "hr_above_upper_normal_bpm", "quarter_hourly_nebs", "no_such_key", "",
]
WORDS = [
    "normal", "mild", "moderate", "severe", "apnoea", "none", "A", "V", "P", "U", "asleep",
    "room_air", "NP", "HF", "CP", "U4", "NCO", "pink", "grey", "sleeping", "new_sepsis",
]
dt_any = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59), timezones=st.just(UTC)
)
value_any = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-50, max_value=400),
    st.sampled_from(WORDS),
    st.text(max_size=6),
    st.fixed_dictionaries(
        {"device": st.sampled_from([*WORDS, "BiP"])},
        optional={"flow_lpm": st.floats(allow_nan=True), "fio2_pct": st.integers(-5, 200)},
    ),
    st.lists(st.sampled_from(WORDS), max_size=3),
    st.fixed_dictionaries({"response": st.sampled_from(["W", "S", "X"])}),
)
reading_any = st.builds(
    Reading,
    key=st.sampled_from(KEYS),
    value=value_any,
    at=st.one_of(dt_any, st.integers(-3600, 3600).map(lambda s: T0 + timedelta(seconds=s))),
    source=st.sampled_from(Source),
    device_id=st.one_of(st.none(), st.sampled_from(["h-mon", "h-oxi", "ctl-mon"])),
    quality=st.sampled_from(Quality),
    retimed=st.booleans(),
)
info_any = st.builds(
    BedInfo,
    bed_id=st.just("bad"),
    system=st.sampled_from(["bedside_pews", "uk_npews", "news2", "brighton_pews", "nope"]),
    dob=st.one_of(st.none(), st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))),
    age_days=st.one_of(
        st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 40000)
    ),
    age_at=st.one_of(st.none(), dt_any),
    occupied=st.booleans(),
    admission=st.sampled_from([None, "adm1", "adm2"]),
)
hostile_op = st.one_of(
    st.tuples(st.just("readings"), st.lists(reading_any, max_size=6)),
    st.tuples(
        st.just("device"),
        st.sampled_from(["h-mon", "h-oxi", "ctl-mon"]),
        st.sampled_from(["connected", "disconnected", "no_signal", "error", "low_battery", "?"]),
    ),
    st.tuples(
        st.just("gateway"),
        st.sampled_from(["lwt", "shutdown", "online", "?"]),
        st.integers(0, 2**40),
    ),
    st.tuples(st.just("event"), st.sampled_from(["seq_gap", "outbox_reset", "outbox_overflow"])),
    st.tuples(
        st.just("command"),
        st.sampled_from(["ack", "snooze", "bogus"]),
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        st.one_of(st.none(), st.sampled_from(["c1", "c2"])),
    ),
    st.tuples(st.just("set_bed"), info_any),
)


def hostile_call(eng: UnitEngine, t: datetime, op: tuple[Any, ...]) -> list[Effect]:
    kind = op[0]
    if kind == "readings":
        return eng.on_readings("bad", op[1], t)
    if kind == "device":
        return eng.on_device("bad", op[1], op[2], t)
    if kind == "gateway":
        return eng.on_gateway("gw-bad", op[1], ["bad"], t, outbox_dropped=op[2])
    if kind == "event":
        return eng.on_event(op[1], "hostile", ["bad"], t)
    if kind == "command":
        return eng.on_command(op[1], t, "x", bed_id="bad", minutes=op[2], command_id=op[3])[0]
    assert kind == "set_bed"
    return eng.set_bed(op[1], t)


def run_unit(
    hostile: Sequence[tuple[int, int, tuple[Any, ...]]], first: BedInfo | None
) -> list[Effect]:
    """The control bed's script, with hostile ops (step index, offset s, op) interleaved."""
    eng = engine()
    out: list[Effect] = []
    out += eng.set_bed(BedInfo("ctl", "bedside_pews", age_days=AGE_3Y, age_at=T0), T0)
    if first is not None:
        out += eng.set_bed(first, T0)
    by_step: dict[int, list[tuple[int, tuple[Any, ...]]]] = {}
    for idx, off, op in hostile:
        by_step.setdefault(idx, []).append((off, op))
    for idx, (sec, step) in enumerate(control_steps()):
        t = T0 + timedelta(seconds=sec)
        drive_deadlines(eng, t, out)
        out += control_call(eng, t, step)
        for off, op in sorted(by_step.get(idx, []), key=lambda x: x[0]):
            th = t + timedelta(seconds=off)
            drive_deadlines(eng, th, out)
            out += hostile_call(eng, th, op)
    drive_deadlines(eng, T0 + timedelta(hours=2), out)
    return out


N_STEPS = len(control_steps())


@SETTINGS
@given(
    first=info_any,
    hostile=st.lists(
        st.tuples(st.integers(0, N_STEPS - 1), st.integers(0, 9), hostile_op), max_size=40
    ),
)
def test_per_bed_isolation(first: BedInfo, hostile: list[tuple[int, int, tuple[Any, ...]]]) -> None:
    alone = run_unit([], None)
    mixed = run_unit(hostile, first)  # nothing raises
    assert alert_view(mixed, "ctl") == alert_view(alone, "ctl")
    assert score_view(mixed, "ctl") == score_view(alone, "ctl")


def test_per_bed_isolation_control_is_not_trivial() -> None:
    """The control script raises, acknowledges, holds and re-notifies (so isolation means
    something)."""
    events = {e[0] for e in alert_view(run_unit([], None), "ctl")}
    assert {"raised", "acknowledged", "updated"} <= events


# ---------------------------------------------------------------------------------------------
# A plausible ward stream (two beds), for snapshot/restore, duplicates and deadlines.


@dataclass(frozen=True)
class Step:
    dt_s: int
    bed: str
    what: str  # "readings" | "charted" | "ack" | "snooze" | "device" | "gateway" | "seq_gap"
    values: Mapping[str, object] | None = None
    arg: str | float | None = None
    quality: Quality = Quality.VALID
    lag_s: int = 0  # measured this long before it arrives


BEDS = ("b1", "b2")
CHARTED = [
    {"crt_s": 1, "resp_effort": "normal", "sbp_mmhg": 100, "oxygen": {"device": "room_air"}},
    {"crt_s": 4, "resp_effort": "severe", "resp_distress": "severe"},
    {"avpu": "V", "oxygen": {"device": "NP", "flow_lpm": 1}},
]
step_st = st.one_of(
    st.builds(
        Step,
        dt_s=st.integers(1, 90),
        bed=st.sampled_from(BEDS),
        what=st.just("readings"),
        values=st.sampled_from(PROFILES),
        quality=st.sampled_from([Quality.VALID, Quality.VALID, Quality.QUESTIONABLE]),
        lag_s=st.sampled_from([0, 0, 0, 2, 30, -20]),
    ),
    st.builds(
        Step,
        dt_s=st.integers(0, 300),
        bed=st.sampled_from(BEDS),
        what=st.just("charted"),
        values=st.sampled_from(CHARTED),
    ),
    st.builds(Step, dt_s=st.integers(0, 600), bed=st.sampled_from(BEDS), what=st.just("ack")),
    st.builds(
        Step,
        dt_s=st.integers(0, 600),
        bed=st.sampled_from(BEDS),
        what=st.just("snooze"),
        arg=st.sampled_from([5.0, 15.0, 60.0]),
    ),
    st.builds(
        Step,
        dt_s=st.integers(0, 60),
        bed=st.sampled_from(BEDS),
        what=st.just("device"),
        arg=st.sampled_from(["connected", "no_signal", "disconnected", "low_battery"]),
    ),
    st.builds(
        Step,
        dt_s=st.integers(0, 60),
        bed=st.sampled_from(BEDS),
        what=st.just("gateway"),
        arg=st.sampled_from(["lwt", "shutdown", "online"]),
    ),
    st.builds(Step, dt_s=st.integers(0, 60), bed=st.sampled_from(BEDS), what=st.just("seq_gap")),
)
# mostly runs of readings (so alerts happen), with the rest sprinkled in
stream_st = st.lists(
    st.one_of(
        st.builds(
            lambda n, bed, prof, every: [
                Step(every, bed, "readings", prof) for _ in range(n)
            ],
            st.integers(5, 40),
            st.sampled_from(BEDS),
            st.sampled_from(PROFILES),
            st.sampled_from([5, 10, 30]),
        ),
        step_st.map(lambda s: [s]),
    ),
    min_size=1,
    max_size=25,
).map(lambda runs: [s for r in runs for s in r])


def new_ward() -> tuple[UnitEngine, list[Effect]]:
    eng = engine()
    out = list(eng.set_bed(BedInfo("b1", "bedside_pews", age_days=AGE_3Y, age_at=T0), T0))
    out += eng.set_bed(BedInfo("b2", "uk_npews", dob=date(2023, 5, 17)), T0)
    return eng, out


def apply(
    eng: UnitEngine, step: Step, t: datetime, deliver: int = 1
) -> list[Effect]:
    out: list[Effect] = []
    drive_deadlines(eng, t, out)
    if step.what in ("readings", "charted"):
        assert step.values is not None
        charted = step.what == "charted"
        rs = [
            Reading(
                k, v, t - timedelta(seconds=step.lag_s),
                source=Source.ENTERED if charted else Source.MEASURED,
                device_id=None if charted else f"{step.bed}-mon",
                quality=step.quality,
            )
            for k, v in step.values.items()
        ]
        for _ in range(deliver):
            out += eng.on_readings(step.bed, rs, t)
    elif step.what == "ack":
        out += eng.on_command("ack", t, "nurse", bed_id=step.bed)[0]
    elif step.what == "snooze":
        assert isinstance(step.arg, float)
        out += eng.on_command("snooze", t, "nurse", bed_id=step.bed, minutes=step.arg)[0]
    elif step.what == "device":
        out += eng.on_device(step.bed, f"{step.bed}-mon", str(step.arg), t)
    elif step.what == "gateway":
        out += eng.on_gateway("gw1", str(step.arg), [step.bed], t)
    else:
        out += eng.on_event("seq_gap", "gateway gw1: seq gap", [step.bed], t)
    return out


def times(steps: Sequence[Step]) -> list[datetime]:
    t, out = T0, []
    for s in steps:
        t += timedelta(seconds=s.dt_s)
        out.append(t)
    return out


def run_stream(
    steps: Sequence[Step],
    *,
    cut: int | None = None,
    deliver: int = 1,
    restore: Callable[[UnitEngine], UnitEngine] | None = None,
) -> list[Effect]:
    """Effects of the stream; with ``cut``, only those after step ``cut`` (the engine is
    passed through ``restore`` there)."""
    eng, out = new_ward()
    ts = times(steps)
    for i, (s, t) in enumerate(zip(steps, ts, strict=True)):
        if cut is not None and i == cut:
            out = []
            if restore is not None:
                eng = restore(eng)
        out += apply(eng, s, t, deliver)
    end = (ts[-1] if ts else T0) + timedelta(hours=1)
    if cut is not None and cut >= len(steps):
        out = []
        if restore is not None:
            eng = restore(eng)
    drive_deadlines(eng, end, out)
    return out


def through_json(eng: UnitEngine) -> UnitEngine:
    snap = json.loads(json.dumps(eng.snapshot()))
    fresh = engine()
    fresh.restore(snap)
    return fresh


def test_ward_stream_is_not_trivial() -> None:
    steps = [Step(5, "b1", "readings", HIGH8) for _ in range(40)]
    steps += [Step(0, "b1", "ack")] + [Step(5, "b1", "readings", PROBE_OFF) for _ in range(40)]
    events = {e[0] for e in alert_view(run_stream(steps))}
    assert {"raised", "acknowledged", "updated", "escalated"} <= events


@SETTINGS
@given(steps=stream_st, data=st.data())
def test_snapshot_restore_through_json_changes_nothing(
    steps: list[Step], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(steps)), label="cut")
    straight = run_stream(steps, cut=cut)
    restored = run_stream(steps, cut=cut, restore=through_json)
    assert alert_view(restored) == alert_view(straight)
    assert score_view(restored) == score_view(straight)


@SETTINGS
@given(steps=stream_st)
def test_duplicate_delivery_changes_no_alert_decision(steps: list[Step]) -> None:
    once = run_stream(steps)
    twice = run_stream(steps, deliver=2)
    assert alert_view(twice) == alert_view(once)


@SETTINGS
@given(steps=stream_st)
def test_deadlines_move_forward_and_on_deadline_returns(steps: list[Step]) -> None:
    eng, _ = new_ward()
    ts = times(steps)
    calls = 0
    for s, t in zip(steps, ts, strict=True):
        while (d := eng.next_deadline()) is not None and d <= t:
            eng.on_deadline(d)
            calls += 1
            nxt = eng.next_deadline()
            assert nxt is None or nxt > d, (d, nxt)
        apply(eng, s, t)
    # a quiet hour: timers only when something can change without input, never a busy loop
    last = ts[-1] if ts else T0
    wakes: list[datetime] = []
    while (d := eng.next_deadline()) is not None and d <= last + timedelta(hours=1):
        eng.on_deadline(d)
        wakes.append(d)
        calls += 1
    run = longest = 0
    for a, b in pairwise(wakes):
        run = run + 1 if b - a <= timedelta(seconds=1) else 0
        longest = max(longest, run)
    assert longest < 30, f"{longest} one-second wakes in a row"
    end = last + timedelta(hours=6)
    eng.on_deadline(end)  # one call runs every timer up to ``end`` and returns
    nxt = eng.next_deadline()
    assert nxt is None or nxt > end
    span_s = (end - T0).total_seconds()
    assert calls <= span_s, "more than one timer a second"
