"""What the edge admits onto the wire: device values judged as data, never as driver faults.

Theory of operation
-------------------
A driver hands the agent the values of one read (``Reading``, ``WaveformChunk``) with the
gateway's receive time ``now``. Before they are stored, two judgements are made here, purely
(``now`` is an argument: no clock, I/O or logging; the agent's shell logs and counts):

* **Device time** (:func:`judge_device_time`): a device's clock is judged against the
  gateway's. A device time more than ``max_ahead`` ahead of ``now``, older than ``max_age``,
  or outside the wire range (a clock reset to 1970) is implausible. The value is then kept but
  *re-timed*: ``measured_at`` is the receive time (a waveform block starts where a block of a
  device without a clock would), ``time_source=gateway``, and the device's reading is kept in
  ``device_time`` when the contract can carry it ([1900, 2200) UTC), else ``None``. A device
  without a clock is stamped with the receive time and is not re-timed. A clock that steps
  back but stays within the bounds is still the device's time.
* **Plausibility** (:func:`admit`): a value outside its parameter's physical range
  (``wardwire.params``) is kept as ``quality=invalid`` with a ``quality_reason`` (stored
  downstream, never scored). A value the contract cannot carry at all (an unknown code, a wrong
  unit, NaN: a driver bug) is refused on its own, with the reason; the rest of the read is
  admitted.

Nothing here raises for a value: every outcome is data that the shell stores, counts and logs,
so one bad value never costs its neighbours or reopens a port.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from edge_agent.config import ClockSection
from edge_agent.protocols.base import Reading, WaveformChunk
from wardwire.models import (
    DEVICE_TIME_MAX,
    DEVICE_TIME_MIN,
    WIRE_TIME_MAX,
    WIRE_TIME_MIN,
    Observation,
    Quality,
    Source,
    TimeSource,
    WaveformBlock,
    validation_summary,
)
from wardwire.params import BY_CODE, Parameter, ParamKind

__all__ = [
    "Admission",
    "ClockPolicy",
    "Refusal",
    "Timing",
    "admit",
    "implausible_reason",
    "judge_device_time",
]


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """How far a device clock may stray from the gateway's (``[clock]`` in the edge config).

    Attributes:
        max_ahead: A device time later than ``now + max_ahead`` is implausible (the device
            cannot have measured in the future; 5 min allows for unsynchronised clocks).
        max_age: A device time earlier than ``now - max_age`` is implausible (a device does not
            hold readings for a week; older data would also fall out of storage retention).
    """

    max_ahead: timedelta = timedelta(seconds=300)
    max_age: timedelta = timedelta(days=7)

    @classmethod
    def from_config(cls, section: ClockSection) -> ClockPolicy:
        return cls(
            max_ahead=timedelta(seconds=section.max_ahead_s),
            max_age=timedelta(seconds=section.max_age_s),
        )


@dataclass(frozen=True, slots=True)
class Timing:
    """The time a value goes on the wire with, and whose clock it is.

    Attributes:
        at: ``measured_at`` (UTC): the device's time, or the receive time.
        source: ``device`` (the device's clock was plausible, or it has none) or ``gateway``
            (re-timed).
        device_time: The device's reading, kept beside a re-timed value; None when the device
            has no clock, its time was used, or the contract cannot carry it.
        problem: Why the value was re-timed (None when it was not).
    """

    at: datetime
    source: TimeSource = TimeSource.DEVICE
    device_time: datetime | None = None
    problem: str | None = None

    @property
    def retimed(self) -> bool:
        return self.source is TimeSource.GATEWAY


def _span(delta: timedelta) -> str:
    s = abs(delta.total_seconds())
    if s < 120:
        return f"{s:.0f} s"
    if s < 2 * 3600:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.0f} h"
    return f"{s / 86400:.0f} d"


def judge_device_time(
    device_time: datetime | None, now: datetime, policy: ClockPolicy = ClockPolicy()
) -> Timing:
    """Judge a device's time against the gateway's clock ``now`` (aware, in the wire range).

    Returns the device time (in UTC) if it is plausible; otherwise ``now`` with
    ``source=gateway``, the device's reading (if the contract can carry it) and the reason.
    The bounds are inclusive: exactly ``max_ahead`` ahead or ``max_age`` old is plausible.
    """
    if device_time is None:
        return Timing(now)
    if device_time.utcoffset() is None:
        return Timing(now, TimeSource.GATEWAY, None, "device time has no time zone")
    try:
        utc = device_time.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00:00+14:00
        return Timing(
            now,
            TimeSource.GATEWAY,
            None,
            f"device time {device_time.isoformat()} cannot be represented in UTC",
        )
    if not WIRE_TIME_MIN <= utc < WIRE_TIME_MAX:
        problem = (
            f"device time {utc.isoformat()} is outside [{WIRE_TIME_MIN.year}, "
            f"{WIRE_TIME_MAX.year}) UTC"
        )
    elif utc - now > policy.max_ahead:
        problem = (
            f"device clock {_span(utc - now)} ahead of the gateway's "
            f"(bound {_span(policy.max_ahead)})"
        )
    elif now - utc > policy.max_age:
        problem = f"device time {_span(now - utc)} old (bound {_span(policy.max_age)})"
    else:
        return Timing(utc)
    kept = utc if DEVICE_TIME_MIN <= utc < DEVICE_TIME_MAX else None
    return Timing(now, TimeSource.GATEWAY, kept, problem)


def _num(value: float) -> str:
    value = float(value)  # the table's bounds may be ints
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def implausible_reason(param: Parameter, value: float) -> str | None:
    """Why ``value`` cannot physically be a reading of ``param`` (None if it can, or if it is
    not a finite number at all: that is for the contract to refuse)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if param.plausible(value):
        return None
    if param.kind is ParamKind.CATEGORICAL:
        return (
            f"{param.code}={_num(value)} is not one of its categories "
            f"[0, {len(param.categories) - 1}]"
        )
    bounds = f"[{_num(param.low)}, {_num(param.high)}]"
    return f"{param.code}={_num(value)} outside the physical range {bounds}"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A value the contract cannot carry (a driver bug), refused on its own."""

    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Admission:
    """What became of one read's values.

    Attributes:
        observations, waveforms: What goes to the outbox.
        invalid: Implausible values kept as ``quality=invalid`` (among ``observations``).
        retimed: Admitted values re-timed with the receive time.
        device_timed: Admitted values stamped with the device's own (plausible) clock.
        refused: Values not admitted, with the reason.
        clock_problem: Why the first re-timed value was re-timed.
    """

    observations: tuple[Observation, ...] = ()
    waveforms: tuple[WaveformBlock, ...] = ()
    invalid: int = 0
    retimed: int = 0
    device_timed: int = 0
    refused: tuple[Refusal, ...] = ()
    clock_problem: str | None = None


def _why(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return validation_summary(exc)
    return f"{type(exc).__name__}: {exc}"


def _observation(
    device_id: str, v: Reading, now: datetime, timing: Timing
) -> tuple[Observation, bool]:
    """The observation of one reading, and whether it was marked invalid as implausible."""
    quality, reason = v.quality, None
    param = BY_CODE.get(v.code)
    if param is not None and param.kind is not ParamKind.WAVEFORM:
        reason = implausible_reason(param, v.value)
        if reason is not None:
            quality = Quality.INVALID
    obs = Observation(
        device_id=device_id,
        code=v.code,
        value=v.value,
        unit=v.unit,
        measured_at=timing.at,
        received_at=now,
        quality=quality,
        quality_reason=reason,
        source=Source.MEASURED,
        time_source=timing.source,
        device_time=timing.device_time,
    )
    return obs, reason is not None


def _block(device_id: str, v: WaveformChunk, now: datetime, timing: Timing) -> WaveformBlock:
    if v.device_time is None or timing.retimed:
        # Without a (usable) device clock the block ends when its last sample arrived.
        start = now - timedelta(seconds=len(v.samples) / v.sample_rate_hz)
    else:
        start = timing.at
    return WaveformBlock(
        device_id=device_id,
        code=v.code,
        unit=v.unit,
        start=start,
        received_at=now,
        sample_rate_hz=v.sample_rate_hz,
        samples=list(v.samples),
        time_source=timing.source,
        device_time=timing.device_time,
    )


def admit(
    device_id: str,
    values: Iterable[Reading | WaveformChunk],
    now: datetime,
    policy: ClockPolicy = ClockPolicy(),
) -> Admission:
    """Turn one read's values into wire models; never raises for a value.

    Args:
        device_id: The configured device id.
        values: The driver's decoded values, in order.
        now: The gateway's receive time (aware UTC, within the wire range).
        policy: The device clock bounds.
    """
    obs: list[Observation] = []
    waves: list[WaveformBlock] = []
    refused: list[Refusal] = []
    invalid = retimed = device_timed = 0
    clock_problem: str | None = None
    for v in values:
        try:
            timing = judge_device_time(v.device_time, now, policy)
            if isinstance(v, Reading):
                o, implausible = _observation(device_id, v, now, timing)
                obs.append(o)
                invalid += implausible
            else:
                waves.append(_block(device_id, v, now, timing))
        # A driver bug (a value of the wrong type, a zero sample rate) is that value's fate,
        # never the frame's: ValidationError is a ValueError.
        except (ValueError, TypeError, ArithmeticError) as exc:
            refused.append(Refusal(str(getattr(v, "code", "?")), _why(exc)))
            continue
        if timing.retimed:
            retimed += 1
            clock_problem = clock_problem or timing.problem
        elif v.device_time is not None:
            device_timed += 1
    return Admission(
        _distinct_times(obs), tuple(waves), invalid, retimed, device_timed, tuple(refused),
        clock_problem,
    )


def _distinct_times(obs: list[Observation]) -> tuple[Observation, ...]:
    """Readings of one parameter stamped with the same time (several frames of a device
    without a usable clock in one read all get the receive time) would be one point
    downstream (same series and time: the last overwrites the others). Keep each: the
    earlier ones of a read move back by a microsecond each (ingest's time resolution), in
    order, the last keeps the receive time."""
    seen: dict[tuple[str, datetime], int] = {}
    for o in obs:
        seen[(o.code, o.measured_at)] = seen.get((o.code, o.measured_at), 0) + 1
    if all(n == 1 for n in seen.values()):
        return tuple(obs)
    left = dict(seen)
    out: list[Observation] = []
    for o in obs:
        key = (o.code, o.measured_at)
        left[key] -= 1
        if left[key]:
            earlier = o.measured_at - timedelta(microseconds=left[key])
            o = o.model_copy(update={"measured_at": earlier})
        out.append(o)
    return tuple(out)
