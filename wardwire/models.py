"""wardwire v1 payload models: the one wire contract every service speaks.

Rules that every model follows (and the tests check):

* frozen, ``extra="forbid"``: an unknown key is an error, never silently dropped;
* ``schema_version`` is a literal, so a consumer rejects a payload from a future major version
  instead of misreading it;
* datetimes must be timezone-aware and are normalised to UTC;
* no patient identifiers anywhere: devices, gateways and beds are opaque ids, and the registry
  resolves bed -> patient centrally.

Serialise with ``model_dump_json()`` and parse with ``model_validate_json()`` at the edges only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from wardwire.params import BY_CODE, ParamKind

SCHEMA_VERSION = 1

#: Maximum observations in one batch (keeps a message well below broker and DB limits).
MAX_BATCH_OBSERVATIONS = 5000
#: Maximum waveform blocks in one batch.
MAX_BATCH_WAVEFORMS = 100
#: Maximum samples in one waveform block (e.g. 10 s of a 500 Hz ECG).
MAX_WAVEFORM_SAMPLES = 10000


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An aware datetime, normalised to UTC. Naive datetimes are rejected."""

Ident = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
"""An opaque id that is safe as one MQTT topic level (no ``/ + # $``, no spaces)."""


# Checked in pydantic-core (not a Python validator): this runs for every observation ingested.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


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
    source: Source = Source.MEASURED

    @model_validator(mode="after")
    def _check_parameter(self) -> Observation:
        param = BY_CODE.get(self.code)
        if param is None or param.kind is ParamKind.WAVEFORM:
            raise ValueError(f"unknown numeric parameter code {self.code!r}")
        if self.unit != param.ucum:
            raise ValueError(f"unit {self.unit!r} is not {param.ucum!r} for {self.code}")
        if not param.plausible(self.value):
            raise ValueError(
                f"{self.code}={self.value} is outside the physical range "
                f"[{param.low}, {param.high}]"
            )
        return self


class WaveformBlock(WireModel):
    """A contiguous block of samples of one waveform (start time + rate + samples)."""

    device_id: Ident
    code: str
    unit: str
    start: UtcDatetime
    received_at: UtcDatetime
    sample_rate_hz: Annotated[float, Field(gt=0, le=10000)]
    samples: Annotated[list[FiniteFloat], Field(min_length=1, max_length=MAX_WAVEFORM_SAMPLES)]
    quality: Quality = Quality.VALID

    @model_validator(mode="after")
    def _check_parameter(self) -> WaveformBlock:
        param = BY_CODE.get(self.code)
        if param is None or param.kind is not ParamKind.WAVEFORM:
            raise ValueError(f"unknown waveform code {self.code!r}")
        if self.unit != param.ucum:
            raise ValueError(f"unit {self.unit!r} is not {param.ucum!r} for {self.code}")
        return self


class ObservationBatch(WireModel):
    """What a gateway publishes: its observations (and waveform blocks) for a short window.

    ``seq`` increases by one per batch per gateway and survives gateway restarts (it is assigned
    durably in the outbox), so consumers can detect gaps and ignore duplicates.
    """

    schema_version: Literal[1] = 1
    kind: Literal["obs_batch"] = "obs_batch"
    gateway_id: Ident
    seq: Annotated[int, Field(ge=0)]
    sent_at: UtcDatetime
    generation: Generation
    observations: Annotated[list[Observation], Field(max_length=MAX_BATCH_OBSERVATIONS)] = []
    waveforms: Annotated[list[WaveformBlock], Field(max_length=MAX_BATCH_WAVEFORMS)] = []

    @model_validator(mode="after")
    def _not_empty(self) -> ObservationBatch:
        if not self.observations and not self.waveforms:
            raise ValueError("a batch carries at least one observation or waveform block")
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
    battery_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    last_reading_at: UtcDatetime | None = None


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
    outbox_depth: Annotated[int, Field(ge=0)] = 0
    outbox_dropped: Annotated[int, Field(ge=0)] = 0
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
    total: Annotated[int, Field(ge=0)]
    complete: bool
    missing: list[str]
    items: dict[str, int | None]
    mode: Literal["provisional", "charted"]
    generation: Generation
    inputs: list[ScoreInput] = []
    escalation: dict[str, bool | str | int | None] = {}


class AlertState(StrEnum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
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
    escalation_step: Annotated[int, Field(ge=0)] = 0
    acknowledged_by: str | None = None
    message: str
    generation: Generation
    score_total: int | None = None


class AlertEventType(StrEnum):
    RAISED = "raised"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertEvent(WireModel):
    """A change in an alert's lifecycle (never retained: events are not state)."""

    schema_version: Literal[1] = 1
    kind: Literal["alert_event"] = "alert_event"
    event: AlertEventType
    at: UtcDatetime
    by: str | None = None
    alert: Alert


class AckCommand(WireModel):
    """A nurse acknowledges an alert (from the console or a phone)."""

    schema_version: Literal[1] = 1
    kind: Literal["ack"] = "ack"
    command_id: Ident
    alert_id: Ident
    by: Annotated[str, Field(min_length=1, max_length=64)]
    at: UtcDatetime


class DeadLetter(WireModel):
    """A payload a service refused, with the reason (published to the dead-letter topic)."""

    schema_version: Literal[1] = 1
    kind: Literal["dead_letter"] = "dead_letter"
    service: str
    reason: str
    topic: str
    received_at: UtcDatetime
    payload_b64: str = Field(description="The refused payload, base64, cut to 64 KiB.")
    payload_bytes: int


class TechnicalEvent(WireModel):
    """A technical finding about the data path (e.g. a sequence gap), for operators."""

    schema_version: Literal[1] = 1
    kind: Literal["technical_event"] = "technical_event"
    service: str
    event: Literal["seq_gap", "unknown_device", "unknown_gateway", "clock_skew"]
    gateway_id: Ident
    at: UtcDatetime
    detail: str
    count: int = 1


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
)


def utcnow() -> datetime:
    """Aware UTC now, for shells (pure code takes ``now`` as an argument)."""
    return datetime.now(UTC)
