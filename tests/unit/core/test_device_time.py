"""Device time judged against the gateway's clock, and plausibility as data
(``edge_agent.admission``): examples at every bound, and properties over any time and value."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.admission import ClockPolicy, admit, implausible_reason, judge_device_time
from edge_agent.protocols.base import Reading, WaveformChunk
from wardwire.models import (
    DEVICE_TIME_MAX,
    DEVICE_TIME_MIN,
    WIRE_TIME_MAX,
    WIRE_TIME_MIN,
    Generation,
    Observation,
    ObservationBatch,
    Quality,
    TimeSource,
)
from wardwire.params import BY_CODE, PARAMETERS, ParamKind

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = ClockPolicy()
US = timedelta(microseconds=1)


# -- the timing function: examples ---------------------------------------------------------
def test_no_device_clock_is_stamped_with_the_receive_time_and_not_retimed() -> None:
    t = judge_device_time(None, NOW)
    assert (t.at, t.source, t.device_time, t.problem) == (NOW, TimeSource.DEVICE, None, None)


def test_default_bounds_are_5_minutes_ahead_and_7_days_old() -> None:
    assert ClockPolicy(timedelta(seconds=300), timedelta(seconds=604800)) == POLICY


@pytest.mark.parametrize(
    ("device_time", "source"),
    [
        (NOW + timedelta(minutes=5), TimeSource.DEVICE),  # exactly the bound: plausible
        (NOW + timedelta(minutes=5) + US, TimeSource.GATEWAY),  # just over
        (NOW + timedelta(seconds=1), TimeSource.DEVICE),
        (NOW - timedelta(days=7), TimeSource.DEVICE),  # exactly the age bound
        (NOW - timedelta(days=7) - US, TimeSource.GATEWAY),
        (NOW - timedelta(hours=1), TimeSource.DEVICE),
    ],
)
def test_bounds_are_inclusive(device_time: datetime, source: TimeSource) -> None:
    t = judge_device_time(device_time, NOW)
    assert t.source is source
    if source is TimeSource.DEVICE:
        assert (t.at, t.device_time, t.problem) == (device_time, None, None)
    else:
        assert (t.at, t.device_time) == (NOW, device_time)
        assert t.problem


def test_ahead_reason_names_the_offset() -> None:
    t = judge_device_time(NOW + timedelta(hours=3), NOW)
    assert t.problem == "device clock 3 h ahead of the gateway's (bound 5 min)"


def test_configured_bounds() -> None:
    policy = ClockPolicy(max_ahead=timedelta(seconds=10), max_age=timedelta(hours=1))
    assert judge_device_time(NOW + timedelta(seconds=11), NOW, policy).retimed
    assert not judge_device_time(NOW + timedelta(seconds=10), NOW, policy).retimed
    assert judge_device_time(NOW - timedelta(hours=1, seconds=1), NOW, policy).retimed
    assert not judge_device_time(NOW - timedelta(minutes=59), NOW, policy).retimed


def test_clock_reset_to_1970_is_retimed_and_its_reading_kept() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    t = judge_device_time(epoch, NOW)
    assert (t.at, t.source, t.device_time) == (NOW, TimeSource.GATEWAY, epoch)
    assert t.problem == "device time 1970-01-01T00:00:00+00:00 is outside [2000, 2100) UTC"


@pytest.mark.parametrize(
    "device_time",
    [
        datetime(1, 1, 1, tzinfo=UTC),  # year 1: outside even the device range
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # not representable in UTC
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-14))),
        datetime(2300, 1, 1, tzinfo=UTC),
        datetime(1899, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0),  # naive: a parser bug, no zone to judge
    ],
)
def test_times_the_contract_cannot_carry_are_retimed_without_device_time(
    device_time: datetime,
) -> None:
    t = judge_device_time(device_time, NOW)
    assert (t.at, t.source, t.device_time) == (NOW, TimeSource.GATEWAY, None)
    assert t.problem


@pytest.mark.parametrize(
    "device_time",
    [datetime(1900, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC), DEVICE_TIME_MAX - US],
)
def test_outside_the_wire_but_inside_the_device_range_is_kept(device_time: datetime) -> None:
    t = judge_device_time(device_time, NOW)
    assert (t.source, t.device_time) == (TimeSource.GATEWAY, device_time)


def test_a_clock_stepping_back_within_the_bounds_is_still_the_devices_time() -> None:
    times = [NOW - timedelta(seconds=s) for s in (0, 1, 2, 60, 3, 3600, 10)]  # NTP steps back
    for dt in times:
        t = judge_device_time(dt, NOW)
        assert (t.at, t.source) == (dt, TimeSource.DEVICE)


def test_device_time_in_another_zone_is_normalised_to_utc() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    t = judge_device_time(local, NOW)
    assert t.at == NOW and t.at.tzinfo is UTC and t.source is TimeSource.DEVICE


# -- the timing function: properties ------------------------------------------------------
offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                            max_value=timedelta(hours=23, minutes=59))
)  # fmt: skip
device_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=offsets
)
gateway_nows = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1), timezones=st.just(UTC)
)
policies = st.builds(
    ClockPolicy,
    max_ahead=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),
    max_age=st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=366)),
)


@given(device_times, gateway_nows, policies)
@settings(max_examples=500)
def test_judgement_is_total_and_its_result_is_always_on_the_wire(
    device_time: datetime, now: datetime, policy: ClockPolicy
) -> None:
    t = judge_device_time(device_time, now, policy)
    assert WIRE_TIME_MIN <= t.at < WIRE_TIME_MAX
    if t.source is TimeSource.DEVICE:
        assert t.at == device_time
        assert now - policy.max_age <= t.at <= now + policy.max_ahead
        assert t.device_time is None and t.problem is None
    else:
        assert t.at == now and t.problem
        assert t.device_time is None or t.device_time == device_time
        try:
            in_range = DEVICE_TIME_MIN <= device_time.astimezone(UTC) < DEVICE_TIME_MAX
        except OverflowError:
            in_range = False
        assert (t.device_time is not None) == in_range
    # whatever the verdict, the contract carries it
    Observation(
        device_id="d1", code="HR", value=80.0, unit="/min", measured_at=t.at, received_at=now,
        time_source=t.source, device_time=t.device_time,
    )  # fmt: skip


@given(gateway_nows, policies, st.timedeltas(min_value=-timedelta(days=400),
                                             max_value=timedelta(days=2)))  # fmt: skip
def test_device_time_is_used_exactly_within_the_bounds(
    now: datetime, policy: ClockPolicy, offset: timedelta
) -> None:
    dt = now + offset
    in_bounds = -policy.max_age <= offset <= policy.max_ahead
    plausible = in_bounds and WIRE_TIME_MIN <= dt < WIRE_TIME_MAX
    assert (judge_device_time(dt, now, policy).source is TimeSource.DEVICE) == plausible


# -- admission: plausibility as data --------------------------------------------------------
def test_implausible_values_are_kept_as_invalid_with_the_reason() -> None:
    frame = [
        Reading("HR", 120.0, "/min", NOW),
        Reading("SPO2", 101.0, "%", NOW),
        Reading("TEMP", 14.0, "Cel", NOW),
        Reading("RR", 30.0, "/min", NOW),
    ]
    adm = admit("mon1", frame, NOW)
    assert (adm.invalid, adm.retimed, adm.refused) == (2, 0, ())
    by_code = {o.code: o for o in adm.observations}
    assert list(by_code) == ["HR", "SPO2", "TEMP", "RR"]
    assert by_code["SPO2"].quality is Quality.INVALID
    assert by_code["SPO2"].quality_reason == "SPO2=101 outside the physical range [0, 100]"
    assert by_code["TEMP"].quality_reason == "TEMP=14 outside the physical range [15, 47]"
    for code in ("HR", "RR"):
        assert (by_code[code].quality, by_code[code].quality_reason) == (Quality.VALID, None)


def test_device_flags_are_kept_and_an_implausible_flagged_value_gets_a_reason() -> None:
    adm = admit("d", [Reading("SPO2", 70.0, "%", None, Quality.QUESTIONABLE),
                      Reading("SPO2", 150.5, "%", None, Quality.QUESTIONABLE),
                      Reading("SPO2", 0.0, "%", None, Quality.INVALID)], NOW)  # fmt: skip
    assert [(o.quality, o.quality_reason) for o in adm.observations] == [
        (Quality.QUESTIONABLE, None),
        (Quality.INVALID, "SPO2=150.5 outside the physical range [0, 100]"),
        (Quality.INVALID, None),
    ]
    assert adm.invalid == 1


def test_values_the_contract_cannot_carry_are_refused_one_by_one() -> None:
    frame: list[Reading | WaveformChunk] = [
        Reading("HR", 80.0, "/min", NOW),
        Reading("XYZ", 1.0, "/min", NOW),  # unknown code
        Reading("HR", 80.0, "%", NOW),  # wrong unit
        Reading("SPO2", math.nan, "%", NOW),
        Reading("SPO2", math.inf, "%", NOW),
        Reading("PLETH", 1.0, "{unitless}", NOW),  # a waveform code as a number
        WaveformChunk("PLETH", "{unitless}", 0.0, (1.0,)),  # zero sample rate
        WaveformChunk("HR", "/min", 75.0, (1.0,)),  # not a waveform
        Reading("RR", 20.0, "/min", NOW),
    ]
    adm = admit("d", frame, NOW)
    assert [o.code for o in adm.observations] == ["HR", "RR"]
    assert [r.code for r in adm.refused] == ["XYZ", "HR", "SPO2", "SPO2", "PLETH", "PLETH", "HR"]
    assert all(r.reason for r in adm.refused)
    assert "unknown numeric parameter code 'XYZ'" in adm.refused[0].reason


def test_retimed_values_and_blocks() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    chunk = WaveformChunk("PLETH", "{unitless}", 75.0, tuple(float(i) for i in range(25)), epoch)
    adm = admit("d", [Reading("HR", 80.0, "/min", epoch), chunk], NOW)
    assert (adm.retimed, adm.device_timed) == (2, 0)
    assert adm.clock_problem and "1970" in adm.clock_problem
    (o,) = adm.observations
    assert (o.measured_at, o.time_source, o.device_time) == (NOW, TimeSource.GATEWAY, epoch)
    (w,) = adm.waveforms
    # as for a device without a clock: the block ends when its last sample arrived
    assert w.start == NOW - timedelta(seconds=25 / 75.0)
    assert (w.time_source, w.device_time) == (TimeSource.GATEWAY, epoch)
    timed: list[Reading | WaveformChunk] = [
        Reading("HR", 80.0, "/min", NOW - timedelta(seconds=2)),
        WaveformChunk("PLETH", "{unitless}", 75.0, (1.0,), NOW),
    ]
    plausible = admit("d", timed, NOW)
    assert (plausible.retimed, plausible.device_timed) == (0, 2)
    assert plausible.waveforms[0].start == NOW
    assert plausible.observations[0].time_source is TimeSource.DEVICE


numeric_codes = [p.code for p in PARAMETERS if p.kind is not ParamKind.WAVEFORM]
any_value = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-1000, 1000).map(float)


@given(
    st.lists(
        st.builds(
            Reading,
            code=st.sampled_from([*numeric_codes, "PLETH", "NOPE"]),
            value=any_value,
            unit=st.sampled_from(["/min", "%", "Cel", "mm[Hg]", "{score}", "x"]),
            device_time=st.none() | device_times,
            quality=st.sampled_from(list(Quality)),
        ),
        max_size=8,
    ),
    gateway_nows,
)
@settings(max_examples=300)
def test_admission_never_raises_and_accounts_for_every_value(
    frame: list[Reading], now: datetime
) -> None:
    adm = admit("d1", frame, now)
    assert len(adm.observations) + len(adm.refused) == len(frame)
    for o in adm.observations:
        param = BY_CODE[o.code]
        assert (o.quality_reason is not None) == (not param.plausible(o.value))
    assert adm.invalid == sum(o.quality_reason is not None for o in adm.observations)
    if adm.observations:  # and the batch they go in validates (no poison pill at seal)
        ObservationBatch(
            gateway_id="gw", seq=0, sent_at=now, generation=Generation.TEST,
            observations=list(adm.observations),
        )  # fmt: skip


def test_reason_fits_the_contract_for_every_parameter() -> None:
    for p in PARAMETERS:
        if p.kind is ParamKind.WAVEFORM:
            continue
        for value in (p.high + 1e300, -1.7976931348623157e308, p.low - 0.1):
            reason = implausible_reason(p, value)
            assert reason is not None and 1 <= len(reason) <= 200
        assert implausible_reason(p, math.nan) is None  # for the contract to refuse


def test_readings_of_one_read_stamped_alike_stay_distinct_points() -> None:
    """Found end to end: two frames of a 1970-clock device in one read both got the receive
    time, so their HR readings were one point in InfluxDB (the first was overwritten)."""
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    reset = datetime(1970, 1, 1, tzinfo=UTC)
    values = [Reading("HR", 100.0 + i, "/min", reset + timedelta(seconds=i)) for i in range(3)]
    values.append(Reading("SPO2", 97.0, "%", reset))
    got = admit("d1", values, now)
    hr = [o.measured_at for o in got.observations if o.code == "HR"]
    assert hr == [now - timedelta(microseconds=2), now - timedelta(microseconds=1), now]
    assert [o.value for o in got.observations if o.code == "HR"] == [100.0, 101.0, 102.0]
    assert next(o.measured_at for o in got.observations if o.code == "SPO2") == now
    clockless = admit("d1", [Reading("HR", 90.0, "/min", None)] * 2, now)
    assert len({o.measured_at for o in clockless.observations}) == 2
