"""Ingest decisions, pure: validate and route one MQTT message; track per-gateway sequences.

``route`` never raises on bad input: a malformed payload, an unknown gateway, a batch of the
wrong generation all come back as ``Rejected`` with a reason (the shell dead-letters it and
counts it). Observations of devices the ward does not know are split off into the result's
``unknown_devices`` (dead-lettered), while the known devices' observations are written:
everything either lands in InfluxDB or in the dead-letter topic, nothing in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import ValidationError

from ingest.lineproto import encode_point, escape_field_string, series_prefix
from wardwire import topics
from wardwire.context import BedContext, UnitContext
from wardwire.models import (
    Observation,
    ObservationBatch,
    Quality,
    TimeSource,
    validation_summary,
)

MAX_SERIES_CACHE = 1_000_000
QUALITY_FIELD = {q: escape_field_string(q.value) for q in Quality}


@dataclass(frozen=True, slots=True)
class Rejected:
    kind: str  # malformed | identity | unknown_gateway | wrong_generation | topic
    reason: str


@dataclass(frozen=True, slots=True)
class Accepted:
    gateway_id: str
    seq: int
    lines: list[str]
    n_obs: int
    unknown_devices: dict[str, int] = field(default_factory=dict)
    t_min_ns: int = 0  # earliest measurement time in the batch (for late-data backfill)
    t_max_ns: int = 0
    sent_at: datetime | None = None  # the gateway's clock when it sealed the batch
    epoch: str | None = None  # the gateway's outbox epoch (seqs are per epoch)


def _ns(dt_ts: float) -> int:
    return round(dt_ts * 1_000_000) * 1000  # microsecond resolution, in ns


@dataclass
class WardIndex:
    """Fast lookups derived from the ward file."""

    ward: UnitContext
    devices: dict[tuple[str, str], BedContext] = field(init=False)
    gateways: set[str] = field(init=False)
    #: encoded measurement+tags per series (the hot path formats only fields and time)
    series: dict[tuple[object, ...], str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.devices = self.ward.device_index()
        self.gateways = {g.id for g in self.ward.gateways}


def route(
    topic: str, payload: bytes, index: WardIndex, *, root: str | None = None
) -> Accepted | Rejected:
    """Validate one message from a gateway's ``obs`` topic and turn it into line protocol."""
    try:
        t = topics.parse_gateway_topic(topic, root=root)
    except ValueError as exc:
        return Rejected("topic", str(exc))
    try:
        batch = ObservationBatch.model_validate_json(payload)
    except ValidationError as exc:
        return Rejected("malformed", f"{validation_summary(exc)} ({exc.error_count()} errors)")
    ward = index.ward
    if t.leaf != "obs":
        return Rejected("topic", f"observation batch on a {t.leaf!r} topic: {topic!r}")
    try:
        topics.check_gateway_identity(t, batch.gateway_id)
    except topics.IdentityMismatch as exc:
        return Rejected("identity", str(exc))
    if t.gateway not in index.gateways or (t.site, t.unit) != (ward.site, ward.unit):
        return Rejected(
            "unknown_gateway", f"gateway {t.gateway!r} is not registered in {t.site}/{t.unit}"
        )
    if batch.generation != ward.generation:
        return Rejected(
            "wrong_generation",
            f"{batch.generation.value} data on a {ward.generation.value} ward is not stored",
        )
    lines: list[str] = []
    unknown: dict[str, int] = {}
    n = 0
    times: list[int] = []
    gen = batch.generation.value
    series = index.series
    seq_field = f"gw_seq={batch.seq}i"
    last_dt = None
    ts = 0
    for o in batch.observations:
        key = (t.gateway, o.device_id, o.code, o.source, gen)
        prefix = series.get(key)
        if prefix is None:
            bed = index.devices.get((t.gateway, o.device_id))
            if bed is None:
                unknown[o.device_id] = unknown.get(o.device_id, 0) + 1
                continue
            tags = {
                "unit": ward.unit,
                "bed": bed.id,
                "device": o.device_id,
                "param": o.code,
                "source": o.source.value,
                "generation": gen,
            }
            prefix = series_prefix("obs", tags)
            if len(series) < MAX_SERIES_CACHE:
                series[key] = prefix
        if o.measured_at is not last_dt:  # a batch's readings share few distinct times
            last_dt = o.measured_at
            ts = _ns(last_dt.timestamp())
        times.append(ts)
        # Same bytes as encode_point() (property-tested): series key, fields, timestamp.
        extra = "" if o.quality_reason is None and o.time_source is _DEVICE else _extra_fields(o)
        lines.append(
            f"{prefix} value={o.value!r},quality={QUALITY_FIELD[o.quality]},{seq_field}{extra} {ts}"
        )
        n += 1
    for w in batch.waveforms:
        bed = index.devices.get((t.gateway, w.device_id))
        if bed is None:
            unknown[w.device_id] = unknown.get(w.device_id, 0) + len(w.samples)
            continue
        tags = {
            "unit": ward.unit,
            "bed": bed.id,
            "device": w.device_id,
            "param": w.code,
            "generation": gen,
        }
        t0 = w.start.timestamp()
        step = 1.0 / w.sample_rate_hz
        for i, s in enumerate(w.samples):
            lines.append(encode_point("wave", tags, {"value": float(s)}, _ns(t0 + i * step)))
    return Accepted(
        batch.gateway_id,
        batch.seq,
        lines,
        n,
        unknown,
        min(times, default=0),
        max(times, default=0),
        batch.sent_at,
        batch.epoch,
    )


_DEVICE = TimeSource.DEVICE


def _extra_fields(o: Observation) -> str:
    """The provenance fields only some points carry (an invalid value's reason, a re-timed
    value's source and original device time); always strings, so field types never conflict."""
    out = ""
    if o.quality_reason is not None:
        out += f",quality_reason={escape_field_string(o.quality_reason)}"
    if o.time_source is not TimeSource.DEVICE:
        out += f",time_source={escape_field_string(o.time_source.value)}"
        if o.device_time is not None:
            out += f",device_time={escape_field_string(o.device_time.isoformat())}"
    return out


@dataclass
class ClockWatch:
    """Is a gateway's clock off? Judged from ``sent_at`` against our receive time, pure.

    A batch is stamped when the gateway seals it, so a backlog drained after an outage
    arrives with old ``sent_at`` and proves nothing; but a gateway's *newest* batches arrive
    within seconds. So: a ``sent_at`` ahead of us by more than ``tolerance_s`` is a clock
    ahead at once (a batch cannot come from the future); a clock *behind* is reported when
    even the smallest lag seen over ``window_s`` exceeds ``tolerance_s``. ``observe`` returns
    a finding when a gateway's clock turns bad or good again, else None.
    """

    tolerance_s: float = 300.0
    window_s: float = 300.0
    offset_s: dict[str, float] = field(default_factory=dict)
    bad: dict[str, bool] = field(default_factory=dict)
    _window: dict[str, tuple[datetime, float]] = field(default_factory=dict)

    def observe(self, gateway: str, sent_at: datetime | None, now: datetime) -> str | None:
        if sent_at is None:
            return None
        offset = (sent_at - now).total_seconds()  # > 0: the gateway's clock is ahead
        self.offset_s[gateway] = round(offset, 3)
        started, min_lag = self._window.get(gateway, (now, float("inf")))
        min_lag = min(min_lag, -offset)
        if (now - started).total_seconds() >= self.window_s:
            verdict: bool | None = min_lag > self.tolerance_s
            self._window[gateway] = (now, float("inf"))
        else:
            verdict = None
            self._window[gateway] = (started, min_lag)
        if offset > self.tolerance_s:
            verdict = True
        was = self.bad.get(gateway, False)
        if verdict is None or verdict == was:
            return None
        self.bad[gateway] = verdict
        if verdict:
            side = "ahead of" if offset > 0 else "behind"
            return (
                f"gateway clock {abs(offset):.0f} s {side} ingest's (tolerance "
                f"{self.tolerance_s:.0f} s): check the gateway's time synchronisation"
            )
        return f"gateway clock back within {self.tolerance_s:.0f} s of ingest's"

    def offsets(self) -> dict[str, float]:
        return dict(self.offset_s)


@dataclass(frozen=True, slots=True)
class SeqResult:
    duplicate: bool
    new_gap: int  # seqs skipped by this message (0 if contiguous)
    filled: bool  # this message filled an earlier gap
    #: the gateway's outbox epoch changed: (previous epoch, seqs of it never received)
    reset: tuple[str | None, int] | None = None
    #: a jump far beyond the window: the size of the jump (not counted as missing)
    jump: int = 0
    late_old_epoch: bool = False  # a late message of an epoch the gateway has left


@dataclass
class SeqTracker:
    """Per-gateway, per-epoch sequence tracking: gaps are counted, duplicates are harmless.

    Tracks low- and high-water marks and a bounded set of missing seqs, so a late (reordered)
    message fills its gap instead of counting twice. ``gaps_total`` is the number of seqs
    currently missing (it goes down when a late message arrives); ``late_total`` counts those
    late arrivals.

    Seqs are numbered per outbox *epoch* (``ObservationBatch.epoch``): a new epoch (the
    gateway's outbox was replaced, e.g. with ``--new-outbox``) starts the gateway's tracking
    afresh and is reported as a reset, never as duplicates; what was still missing of the old
    epoch is reported with it and no longer counted. A jump further than ``jump_window``
    batches is reported as a forged or reset sequence, not as that many missing batches.
    """

    max_missing: int = 100_000
    jump_window: int = 1000
    high: dict[str, int] = field(default_factory=dict)
    low: dict[str, int] = field(default_factory=dict)
    missing: dict[str, set[int]] = field(default_factory=dict)
    epoch: dict[str, str | None] = field(default_factory=dict)
    past_epochs: dict[str, set[str | None]] = field(default_factory=dict)
    gaps_total: int = 0
    duplicates_total: int = 0
    late_total: int = 0
    resets_total: int = 0
    jumps_total: int = 0

    def observe(self, gateway: str, seq: int, epoch: str | None = None) -> SeqResult:
        reset: tuple[str | None, int] | None = None
        if gateway in self.epoch and self.epoch[gateway] != epoch:
            past = self.past_epochs.setdefault(gateway, set())
            if epoch in past:
                return SeqResult(False, 0, False, late_old_epoch=True)
            old = self.epoch[gateway]
            past.add(old)
            lost = len(self.missing.get(gateway, ()))
            self.gaps_total -= lost
            self.resets_total += 1
            for table in (self.high, self.low, self.missing):
                table.pop(gateway, None)
            reset = (old, lost)
        self.epoch[gateway] = epoch
        hw = self.high.get(gateway)
        miss = self.missing.setdefault(gateway, set())
        if hw is None:
            self.high[gateway] = self.low[gateway] = seq
            return SeqResult(False, 0, False, reset=reset)
        lw = self.low[gateway]
        if seq < lw:
            # Older than anything seen (reordering right after start): a gap below, not a dup.
            gap = lw - seq - 1
            self.low[gateway] = seq
            if gap > self.jump_window:
                self.jumps_total += 1
                return SeqResult(False, 0, False, jump=gap)
            if gap and len(miss) + gap <= self.max_missing:
                miss.update(range(seq + 1, lw))
            self.gaps_total += gap
            return SeqResult(False, gap, False)
        if seq <= hw:
            if seq in miss:
                miss.discard(seq)
                self.gaps_total -= 1
                self.late_total += 1
                return SeqResult(False, 0, True)
            self.duplicates_total += 1
            return SeqResult(True, 0, False)
        gap = seq - hw - 1
        self.high[gateway] = seq
        if gap > self.jump_window:
            self.jumps_total += 1
            return SeqResult(False, 0, False, jump=gap)
        if gap:
            if len(miss) + gap <= self.max_missing:
                miss.update(range(hw + 1, seq))
            self.gaps_total += gap
        return SeqResult(False, gap, False)

    def open_gaps(self, gateway: str) -> int:
        return len(self.missing.get(gateway, ()))
