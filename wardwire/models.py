"""wardwire v1 payload models: the one wire contract every service speaks.

Rules that every model follows (and the tests check):

* frozen, ``extra="forbid"``: an unknown key is an error, never silently dropped;
* ``schema_version`` is a literal, so a consumer rejects a payload from a future major version
  instead of misreading it;
* datetimes must be timezone-aware ISO strings (no epoch numbers), are normalised to UTC and
  must lie in [2000-01-01, 2100-01-01) UTC (``WIRE_TIME_MIN`` / ``WIRE_TIME_MAX``): a time the
  services downstream cannot represent (InfluxDB's int64 nanoseconds, Python's year 1..9999
  after a UTC offset) is a validation error here, never an exception further on;
* numbers are strict: ``true`` is not 1, ``"100"`` is not 100, ``7.0`` is not a sequence number;
* validation raises ``pydantic.ValidationError`` and nothing else, for any byte string (fuzzed
  in tests/unit/core/test_wardwire_fuzz.py);
* no patient identifiers anywhere: devices, gateways and beds are opaque ids, and the registry
  resolves bed -> patient centrally.

Serialise with ``model_dump_json()`` and parse with ``model_validate_json()`` at the edges only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from wardwire.params import BY_CODE, ParamKind

SCHEMA_VERSION = 1

#: Maximum observations in one batch (keeps a message well below broker and DB limits).
MAX_BATCH_OBSERVATIONS = 5000
#: Maximum waveform blocks in one batch.
MAX_BATCH_WAVEFORMS = 100
#: Maximum samples in one waveform block (e.g. 10 s of a 500 Hz ECG).
MAX_WAVEFORM_SAMPLES = 10000
#: Maximum samples in one batch (all blocks): keeps the largest legitimate batch (~5 MB of
#: JSON) inside the broker's 8 MiB message_size_limit.
MAX_BATCH_SAMPLES = 100_000


#: Every wire time lies in [WIRE_TIME_MIN, WIRE_TIME_MAX).
WIRE_TIME_MIN = datetime(2000, 1, 1, tzinfo=UTC)
WIRE_TIME_MAX = datetime(2100, 1, 1, tzinfo=UTC)
#: A device's own (untrusted) clock reading, kept beside a re-timed value, lies in this wider
#: range: a clock reset to 1970 is exactly what must be kept for the biomedical engineer.
DEVICE_TIME_MIN = datetime(1900, 1, 1, tzinfo=UTC)
DEVICE_TIME_MAX = datetime(2200, 1, 1, tzinfo=UTC)


def _in_utc(value: datetime, lo: datetime, hi: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:  # e.g. 0001-01-01T00:00:00+14:00
        raise ValueError(f"time {value.isoformat()} cannot be represented in UTC") from exc
    if not lo <= utc < hi:
        raise ValueError(
            f"time {utc.isoformat()} is outside [{lo.date().isoformat()}, "
            f"{hi.date().isoformat()}) UTC"
        )
    return utc


def _to_utc(value: datetime) -> datetime:
    # Hot path (two per observation ingested): the common case inline, errors in _in_utc.
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return _in_utc(value, WIRE_TIME_MIN, WIRE_TIME_MAX)
    if WIRE_TIME_MIN <= utc < WIRE_TIME_MAX:
        return utc
    return _in_utc(value, WIRE_TIME_MIN, WIRE_TIME_MAX)


def _device_to_utc(value: datetime) -> datetime:
    return _in_utc(value, DEVICE_TIME_MIN, DEVICE_TIME_MAX)


# strict: in JSON only an ISO 8601 string is a time (no epoch numbers); in Python a datetime.
UtcDatetime = Annotated[AwareDatetime, Field(strict=True), AfterValidator(_to_utc)]
"""An aware datetime in [2000, 2100) UTC, normalised to UTC. Naive datetimes are rejected."""

DeviceDatetime = Annotated[AwareDatetime, Field(strict=True), AfterValidator(_device_to_utc)]
"""A device clock's reading as it was, in [1900, 2200) UTC (kept beside a re-timed value)."""

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
"""An opaque id that is safe as one MQTT topic level (no ``/ + # $``, no spaces)."""

#: Printable text only: a reason travels into InfluxDB, whose error responses echo a refused
#: line in an HTTP header, where a control character makes the response unreadable.
QualityReason = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


# Checked in pydantic-core (not a Python validator): this runs for every observation ingested.
# strict: a JSON number only (an int is a number; true and "100" are not).
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: A count or sequence number: a JSON integer only (not 7.0, "7" or true).
#: Bounded by int64, as InfluxDB's integer fields are (a seq of 2**64 was refused by it).
Count = Annotated[int, Field(strict=True, ge=0, le=2**63 - 1)]


class Generation(StrEnum):
    """Whether data comes from a real patient, a test, or a demo. Simulators never emit real."""

    REAL = "real"
    TEST = "test"
    DEMO = "demo"


class Source(StrEnum):
    """Provenance: measured by a device, or entered (charted) by a person."""

    MEASURED = "measured"
    ENTERED = "entered"


class Quality(StrEnum):
    """Validity of a value as the device or nurse reported it."""

    VALID = "valid"
    QUESTIONABLE = "questionable"  # e.g. low perfusion, motion
    INVALID = "invalid"  # device flagged it (probe off, searching); kept, never scored


class TimeSource(StrEnum):
    """Whose clock stamped ``measured_at``.

    ``device``: the device's own clock (or the gateway's, for a device without a clock), judged
    plausible by the gateway. ``gateway``: the device's clock was implausible (too far ahead of
    the gateway, or older than the gateway's bound), so the gateway's receive time was used and
    the device's reading is kept in ``device_time``. A re-timed value is stored, never scored as
    current.
    """

    DEVICE = "device"
    GATEWAY = "gateway"


class WireModel(BaseModel):
    """Base for every wire payload."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class Observation(WireModel):
    """One value of one parameter from one device (or one nurse entry)."""

    device_id: Ident
    code: str
    value: FiniteFloat
    unit: str
    measured_at: UtcDatetime = Field(description="Device (or charting) time of the value.")
    received_at: UtcDatetime = Field(description="Gateway time when the bytes arrived.")
    quality: Quality = Quality.VALID
    quality_reason: QualityReason | None = Field(
        default=None, description="Why the value is not valid (required for an implausible one)."
    )
    source: Source = Source.MEASURED
    time_source: TimeSource = TimeSource.DEVICE
    device_time: DeviceDatetime | None = Field(
        default=None, description="The device clock's reading when the value was re-timed."
    )

    @model_validator(mode="after")
    def _check_parameter(self) -> Observation:
        param = BY_CODE.get(self.code)
        if param is None or param.kind is ParamKind.WAVEFORM:
            raise ValueError(f"unknown numeric parameter code {self.code!r}")
        if self.unit != param.ucum:
            raise ValueError(f"unit {self.unit!r} is not {param.ucum!r} for {self.code}")
        if not param.plausible(self.value) and (
            self.quality is not Quality.INVALID or not self.quality_reason
        ):
            raise ValueError(
                f"{self.code}={self.value} is outside the physical range "
                f"[{param.low}, {param.high}] (allowed only with quality=invalid and a "
                "quality_reason)"
            )
        if self.device_time is not None:  # rare: checked only when present (hot path)
            _check_timing(self.time_source, self.device_time)
        return self


def _check_timing(source: TimeSource, device_time: datetime | None) -> None:
    if device_time is not None and source is not TimeSource.GATEWAY:
        raise ValueError("device_time is kept only for a re-timed value (time_source=gateway)")


class WaveformBlock(WireModel):
    """A contiguous block of samples of one waveform (start time + rate + samples)."""

    device_id: Ident
    code: str
    unit: str
    start: UtcDatetime
    received_at: UtcDatetime
    sample_rate_hz: Annotated[float, Field(strict=True, gt=0, le=10000)]
    samples: Annotated[list[FiniteFloat], Field(min_length=1, max_length=MAX_WAVEFORM_SAMPLES)]
    quality: Quality = Quality.VALID
    time_source: TimeSource = TimeSource.DEVICE
    device_time: DeviceDatetime | None = None

    @model_validator(mode="after")
    def _check_parameter(self) -> WaveformBlock:
        param = BY_CODE.get(self.code)
        if param is None or param.kind is not ParamKind.WAVEFORM:
            raise ValueError(f"unknown waveform code {self.code!r}")
        if self.unit != param.ucum:
            raise ValueError(f"unit {self.unit!r} is not {param.ucum!r} for {self.code}")
        if self.device_time is not None:  # rare: checked only when present (hot path)
            _check_timing(self.time_source, self.device_time)
        return self


class ObservationBatch(WireModel):
    """What a gateway publishes: its observations (and waveform blocks) for a short window.

    ``seq`` increases by one per batch per gateway and survives gateway restarts (it is assigned
    durably in the outbox), so consumers can detect gaps and ignore duplicates.
    """

    schema_version: Literal[1] = 1
    kind: Literal["obs_batch"] = "obs_batch"
    gateway_id: Ident
    seq: Count
    #: the outbox's history id, created with the outbox: seqs are per epoch, so a consumer
    #: tells a new outbox (seqs from 0 again: ``outbox_reset``) from duplicates
    epoch: Ident | None = None
    sent_at: UtcDatetime
    generation: Generation
    observations: Annotated[list[Observation], Field(max_length=MAX_BATCH_OBSERVATIONS)] = []
    waveforms: Annotated[list[WaveformBlock], Field(max_length=MAX_BATCH_WAVEFORMS)] = []

    @model_validator(mode="after")
    def _not_empty(self) -> ObservationBatch:
        if not self.observations and not self.waveforms:
            raise ValueError("a batch carries at least one observation or waveform block")
        if self.waveforms and sum(len(w.samples) for w in self.waveforms) > MAX_BATCH_SAMPLES:
            raise ValueError(f"a batch carries at most {MAX_BATCH_SAMPLES} waveform samples")
        return self


class DeviceState(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    NO_SIGNAL = "no_signal"  # probe off, no finger, leads off
    LOW_BATTERY = "low_battery"
    ERROR = "error"


class DeviceStatus(WireModel):
    """Health of one device as its gateway sees it (retained, per device)."""

    schema_version: Literal[1] = 1
    kind: Literal["device_status"] = "device_status"
    gateway_id: Ident
    device_id: Ident
    state: DeviceState
    at: UtcDatetime
    detail: str = ""
    battery_pct: Annotated[float, Field(strict=True, ge=0, le=100)] | None = None
    last_reading_at: UtcDatetime | None = None
    #: the driver's counters since the agent started (observability for the biomed)
    readings: Count = 0
    frames_rejected: Count = 0
    values_invalid: Count = 0  # implausible values kept as quality=invalid
    values_retimed: Count = 0  # device clock implausible: stamped with the gateway's time
    values_refused: Count = 0  # a driver produced a value the contract cannot carry (a bug)
    values_dropped: Count = 0  # notifications dropped by a full driver queue (BLE)
    reconnects: Count = 0


class GatewayState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class GatewayStatus(WireModel):
    """Birth, heartbeat and last will of a gateway (retained).

    ``reason`` tells a crash (``lwt``, published by the broker) from an orderly ``shutdown``:
    only the former is a technical alert.
    """

    schema_version: Literal[1] = 1
    kind: Literal["gateway_status"] = "gateway_status"
    gateway_id: Ident
    state: GatewayState
    reason: Literal["birth", "heartbeat", "shutdown", "lwt"]
    at: UtcDatetime | None = None  # None only in the LWT, which is composed at connect time
    generation: Generation
    agent_version: str = ""
    outbox_depth: Count = 0
    outbox_dropped: Count = 0
    outbox_epoch: Ident | None = None
    #: why the outbox's epoch began this run ("first start", "--new-outbox: …"); None if it
    #: continues the epoch the gateway ran with before
    outbox_epoch_reason: Annotated[str, Field(max_length=500)] | None = None
    outbox_quarantined: Count = 0  # stored readings that no longer validate (kept aside)
    clock_skew_ms: dict[str, FiniteFloat] = {}
    devices: list[DeviceStatus] = []

    @model_validator(mode="after")
    def _timed(self) -> GatewayStatus:
        if self.at is None and self.reason != "lwt":
            raise ValueError("at is required (only the last will, composed at connect, has none)")
        return self


class AlertKind(StrEnum):
    CLINICAL = "clinical"
    TECHNICAL = "technical"


class Priority(StrEnum):
    """IEC 60601-1-8 priorities (plus info, as in FHIR devicealert-priority)."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        """Order of urgency (info 0 < low 1 < medium 2 < high 3): the one ranking every
        component compares priorities by."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.INFO: 0, Priority.LOW: 1, Priority.MEDIUM: 2, Priority.HIGH: 3}


class ScoreInput(WireModel):
    """Provenance of one value that went into a score."""

    code: str
    value: FiniteFloat
    source: Source
    device_id: Ident | None = None
    measured_at: UtcDatetime


class ScoreUpdate(WireModel):
    """The current early-warning score of one bed (retained: it is state, not an event)."""

    schema_version: Literal[1] = 1
    kind: Literal["score_update"] = "score_update"
    unit: Ident
    bed_id: Ident
    at: UtcDatetime
    system: str
    table_version: str
    band: str | None
    total: Count
    complete: bool
    missing: list[str]
    items: dict[str, int | None]
    mode: Literal["provisional", "charted"]
    generation: Generation
    inputs: list[ScoreInput] = []
    #: the system's level word (score-only systems: the level of their priority map)
    level: str | None = None
    #: items missing now whose last sub-score is held for an open alert
    held: list[str] = []
    escalation: dict[str, bool | str | int | None] = {}


class AlertState(StrEnum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"  # silenced by a nurse until ``snoozed_until`` (never a HIGH alert)
    RESOLVED = "resolved"


class Alert(WireModel):
    """An alert signal as nurses see it (retained per alert while not resolved)."""

    schema_version: Literal[1] = 1
    kind: Literal["alert"] = "alert"
    alert_id: Ident
    unit: Ident
    bed_id: Ident
    alert_kind: AlertKind
    condition: str
    priority: Priority
    state: AlertState
    raised_at: UtcDatetime
    updated_at: UtcDatetime
    escalation_step: Count = 0
    acknowledged_by: str | None = None
    message: str
    generation: Generation
    score_total: int | None = None
    #: what raised it: the scoring system of a clinical alert, the technical rule otherwise
    rule: str | None = None
    #: the device a per-device technical alert is about
    device_id: Ident | None = None
    #: the system's level word now (clinical: never empty; ``none`` once the condition went)
    level: str | None = None
    #: the score now: every item obtained, which are missing, which hold their last sub-score
    complete: bool | None = None
    missing: list[str] = []
    held: list[str] = []
    #: when an acknowledged alert reminds (its level's reassessment time)
    reassess_by: UtcDatetime | None = None
    snoozed_until: UtcDatetime | None = None
    condition_present: bool = True
    resolved_reason: Annotated[str, Field(max_length=300)] | None = None
    #: who is notified now, the escalation chain's role (``bedside_nurse``, ``nurse_in_charge``)
    recipient_role: Ident | None = None


class AlertEventType(StrEnum):
    RAISED = "raised"
    UPDATED = "updated"  # its level, total, completeness or held items changed
    WORSENED = "worsened"  # its level rose: re-notified (active again, even if acknowledged)
    ESCALATED = "escalated"  # nobody acknowledged it in time (or a nurse asked): next role
    RECEIPT = "receipt"  # a phone or pager says it was received or viewed
    REMINDER = "reminder"  # acknowledged, and its level's reassessment time ran out
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class AlertEvent(WireModel):
    """A change in an alert's lifecycle (never retained: events are not state)."""

    schema_version: Literal[1] = 1
    kind: Literal["alert_event"] = "alert_event"
    event: AlertEventType
    at: UtcDatetime
    by: str | None = None
    alert: Alert
    #: ``<alert_id>-<n>``, unique per event: the same id again is a redelivery (after an engine
    #: restart its outbox is published again), never a new event
    event_id: Annotated[str, Field(max_length=100)] | None = None


class EngineState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class EngineStatus(WireModel):
    """An alert engine instance's liveness for one unit it owns (retained; birth, heartbeat,
    orderly shutdown, and the broker's last will after a crash). A console marks the unit
    "not monitored" when this says offline or its heartbeat is older than two intervals."""

    schema_version: Literal[1] = 1
    kind: Literal["engine_status"] = "engine_status"
    instance: Ident
    unit: Ident
    state: EngineState
    reason: Literal["birth", "heartbeat", "shutdown", "lwt"]
    at: UtcDatetime | None = None  # None only in the last will, composed at connect time
    heartbeat_s: Annotated[float, Field(strict=True, gt=0, le=3600)]
    started_at: UtcDatetime | None = None
    #: the engine resumed durable state at start (open alerts restored)
    recovered_alerts: Count = 0
    #: the alert journal's last record when this was sent (sequence number and hash): an
    #: anchor outside the state file, so a journal cut short or rewritten from the end can be
    #: told (``wardwatch alerting audit verify --expect-head SEQ:HASH``)
    journal_seq: Count | None = None
    journal_head: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None

    @model_validator(mode="after")
    def _timed(self) -> EngineStatus:
        if self.at is None and self.reason != "lwt":
            raise ValueError("at is required (only the last will, composed at connect, has none)")
        return self


class AckCommand(WireModel):
    """A nurse acknowledges an alert (from the console or a phone)."""

    schema_version: Literal[1] = 1
    kind: Literal["ack"] = "ack"
    command_id: Ident
    alert_id: Ident
    by: Annotated[str, Field(min_length=1, max_length=64)]
    at: UtcDatetime


class CommandAction(StrEnum):
    ACK = "ack"
    SNOOZE = "snooze"  # silence for ``minutes`` (bounded per priority; never a HIGH alert)
    ESCALATE = "escalate"  # move the alert one step along its escalation chain now
    RESOLVE = "resolve"  # a nurse closes it, with a reason
    RECEIPT = "receipt"  # a delivery receipt from a phone or pager: received/viewed/accepted


class AlertCommand(WireModel):
    """What a nurse (or a device delivering to a nurse) does to one alert. Idempotent by
    ``command_id``: the same command delivered twice acts once. Only the console's broker
    identity may publish commands (``{root}/cmd/{site}/{unit}/alert``)."""

    schema_version: Literal[1] = 1
    kind: Literal["alert_command"] = "alert_command"
    command_id: Ident
    action: CommandAction
    alert_id: Ident
    #: the user id of who acted (a staff id, never a patient's)
    by: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
    #: when the person acted (the command's own time; the engine also records when it came)
    at: UtcDatetime
    minutes: Annotated[float, Field(strict=True, gt=0, le=24 * 60)] | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200,
                                 pattern=r"^[^\x00-\x1f\x7f]+$")] | None = None
    receipt: Literal["received", "viewed", "accepted"] | None = None
    #: the escalation role the receipt comes from (``nurse_in_charge``...)
    role: Ident | None = None

    @model_validator(mode="after")
    def _fields_of_the_action(self) -> AlertCommand:
        a = self.action
        if (a is CommandAction.SNOOZE) != (self.minutes is not None):
            raise ValueError("minutes is given with a snooze, and only then")
        if a is CommandAction.RESOLVE and self.reason is None:
            raise ValueError("a nurse's resolve needs a reason")
        if (a is CommandAction.RECEIPT) != (self.receipt is not None):
            raise ValueError("receipt is given with a receipt command, and only then")
        return self


#: the Appendix A input keys a nurse charts (docs/clinical/vocabulary.md#input-keys); the
#: scorer checks each value, the contract only the key, the shape and the size
CHART_KEYS = frozenset({
    "hr_bpm", "rr_bpm", "spo2_pct", "sbp_mmhg", "crt_s", "temp_c", "oxygen", "resp_effort",
    "resp_distress", "avpu", "bp_skip_code", "carer_question", "clinical_intuition",
    "specific_concern", "behaviour", "skin_colour", "hr_above_upper_normal_bpm",
    "rr_above_upper_normal_bpm", "bradycardia_for_age", "resp_signs", "quarter_hourly_nebs",
    "persistent_postop_vomiting", "on_oxygen", "consciousness",
})
ChartScalar = Annotated[str, Field(max_length=64)] | FiniteFloat | bool
ChartValue = (
    ChartScalar
    | Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=16)]
    | Annotated[dict[Annotated[str, Field(max_length=32)], ChartScalar | None],
                Field(max_length=8)]
    | None
)


class ChartedSet(WireModel):
    """One set of observations a nurse charted for one bed (``{root}/chart/{site}/{unit}``).

    ``observed_at`` is when the nurse observed, ``charted_at`` when it was entered: a set may
    be entered later (back-entry). A set that corrects an earlier one ("entered in error")
    names it in ``supersedes``; both are kept. Every value is ``source = entered``."""

    schema_version: Literal[1] = 1
    kind: Literal["charted_set"] = "charted_set"
    set_id: Ident
    unit: Ident
    bed_id: Ident
    by: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
    observed_at: UtcDatetime
    charted_at: UtcDatetime
    generation: Generation
    items: Annotated[dict[str, ChartValue], Field(min_length=1, max_length=32)]
    supersedes: Ident | None = None
    #: back-entry of a set already acted on (NPEWS C3.9): scored, but no new notification
    already_escalated: bool = False

    @model_validator(mode="after")
    def _known_items(self) -> ChartedSet:
        unknown = sorted(set(self.items) - CHART_KEYS)
        if unknown:
            raise ValueError(f"items: not charting keys: {unknown}")
        if self.observed_at > self.charted_at:
            raise ValueError("observed_at is after charted_at (a set cannot be charted before "
                             "it was observed)")
        return self


class DeadLetter(WireModel):
    """A payload a service refused, with the reason (published to the dead-letter topic)."""

    schema_version: Literal[1] = 1
    kind: Literal["dead_letter"] = "dead_letter"
    service: str
    reason: str
    topic: str
    received_at: UtcDatetime
    payload_b64: str = Field(description="The refused payload, base64, cut to 64 KiB.")
    payload_bytes: Count


class TechnicalEvent(WireModel):
    """A technical finding about the data path (e.g. a sequence gap), for operators."""

    schema_version: Literal[1] = 1
    kind: Literal["technical_event"] = "technical_event"
    service: str
    event: Literal[
        "seq_gap",
        "unknown_device",
        "unknown_gateway",
        "clock_skew",
        "identity_mismatch",  # a payload disagreed with its topic (the publisher's identity)
        "outbox_reset",  # a gateway's outbox epoch changed: its seqs start again
        "seq_jump",  # a seq far beyond the window: a forged or reset sequence, not a gap
        # the service runs on its cached unit context (the registry does not answer well), and
        # the registry answers again: about the service itself, so no gateway_id
        "context_stale",
        "context_fresh",
    ]
    #: the gateway the finding is about (every event but the context ones names one)
    gateway_id: Ident | None = None
    at: UtcDatetime
    detail: str
    count: Count = 1

    @model_validator(mode="after")
    def _about(self) -> TechnicalEvent:
        if (self.gateway_id is None) != (self.event in _SERVICE_EVENTS):
            raise ValueError(
                "gateway_id is required for a finding about a gateway, and absent for "
                "context_stale / context_fresh (findings about the service itself)"
            )
        return self


_SERVICE_EVENTS = frozenset({"context_stale", "context_fresh"})


class ContextChanged(WireModel):
    """The registry changed what a unit's context holds (a bed, device, gateway or admission was
    added, moved, retired or ended). Ids only: no patient pseudonym, no date of birth; a service
    reading the unit context re-reads it from the registry at once instead of at its next
    periodic refresh. ``beds`` lists the beds whose occupant or devices changed."""

    schema_version: Literal[1] = 1
    kind: Literal["context_changed"] = "context_changed"
    site: Ident
    unit: Ident
    at: UtcDatetime
    #: ``changed``: the registry saw a change; ``started``: the registry (re)started and may
    #: have changed while nobody listened (every unit it serves is announced once)
    reason: Literal["changed", "started"] = "changed"
    beds: Annotated[list[Ident], Field(max_length=10_000)] = []
    gateways: Annotated[list[Ident], Field(max_length=10_000)] = []
    devices: Annotated[list[Ident], Field(max_length=10_000)] = []


WIRE_MODELS: tuple[type[WireModel], ...] = (
    ObservationBatch,
    GatewayStatus,
    DeviceStatus,
    ScoreUpdate,
    Alert,
    AlertEvent,
    AckCommand,
    DeadLetter,
    TechnicalEvent,
    EngineStatus,
    AlertCommand,
    ChartedSet,
    ContextChanged,
)


def validation_summary(exc: ValidationError) -> str:
    """``field.path: why`` of a validation error's first problem (for dead letters and logs)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(payload)"
    return f"{where}: {first['msg']}"
