"""wardwire models: round trips, strictness (extra keys, naive datetimes, literals) and the
parameter table that the observation validators lean on."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from wardwire.models import (
    MAX_BATCH_OBSERVATIONS,
    WIRE_MODELS,
    AckCommand,
    Alert,
    AlertCommand,
    AlertEvent,
    ChartedSet,
    ContextChanged,
    DeadLetter,
    DeviceStatus,
    EngineStatus,
    GatewayStatus,
    Observation,
    ObservationBatch,
    ScoreInput,
    ScoreUpdate,
    TechnicalEvent,
    WaveformBlock,
    WireModel,
)
from wardwire.params import BY_CODE, PARAMETERS, ParamKind, parameter

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
PLUS_0530 = timezone(timedelta(hours=5, minutes=30))
MINUS_08 = timezone(timedelta(hours=-8))

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _iso(o: object) -> str:
    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(type(o))


def _v(model: Any, data: Any) -> Any:
    """Validate as a consumer does: from JSON bytes (the wire is strict JSON, not Python)."""
    return model.model_validate_json(json.dumps(data, default=_iso))

# ---------------------------------------------------------------------------------------------
# strategies

idents = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z", fullmatch=True)
aware = st.datetimes(
    min_value=datetime(2000, 1, 2),
    max_value=datetime(2099, 12, 30),
    timezones=st.sampled_from([UTC, PLUS_0530, MINUS_08, timezone(timedelta(hours=14))]),
)
texts = st.text(max_size=40)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
generations = st.sampled_from(["real", "test", "demo"])
qualities = st.sampled_from(["valid", "questionable", "invalid"])
sources = st.sampled_from(["measured", "entered"])
priorities = st.sampled_from(["high", "medium", "low", "info"])

SCALAR_PARAMS = [p for p in PARAMETERS if p.kind is not ParamKind.WAVEFORM]
WAVE_PARAMS = [p for p in PARAMETERS if p.kind is ParamKind.WAVEFORM]


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    p = draw(st.sampled_from(SCALAR_PARAMS))
    if p.kind is ParamKind.CATEGORICAL:
        value = float(draw(st.integers(0, len(p.categories) - 1)))
    else:
        value = draw(st.floats(p.low, p.high, allow_nan=False))
    return Observation(
        device_id=draw(idents),
        code=p.code,
        value=value,
        unit=p.ucum,
        measured_at=draw(aware),
        received_at=draw(aware),
        quality=draw(qualities),
        source=draw(sources),
    )


@st.composite
def waveforms(draw: st.DrawFn) -> WaveformBlock:
    p = draw(st.sampled_from(WAVE_PARAMS))
    samples = draw(st.lists(st.floats(p.low, p.high, allow_nan=False), min_size=1, max_size=20))
    return WaveformBlock(
        device_id=draw(idents),
        code=p.code,
        unit=p.ucum,
        start=draw(aware),
        received_at=draw(aware),
        sample_rate_hz=draw(st.floats(0.001, 10000, allow_nan=False)),
        samples=samples,
        quality=draw(qualities),
    )


@st.composite
def batches(draw: st.DrawFn) -> ObservationBatch:
    obs = draw(st.lists(observations(), max_size=4))
    waves = draw(st.lists(waveforms(), min_size=0 if obs else 1, max_size=2))
    return ObservationBatch(
        gateway_id=draw(idents),
        seq=draw(st.integers(0, 2**62)),
        sent_at=draw(aware),
        generation=draw(generations),
        observations=obs,
        waveforms=waves,
    )


def device_statuses() -> st.SearchStrategy[DeviceStatus]:
    return st.builds(
        DeviceStatus,
        gateway_id=idents,
        device_id=idents,
        state=st.sampled_from(["connected", "disconnected", "no_signal", "low_battery", "error"]),
        at=aware,
        detail=texts,
        battery_pct=st.none() | st.floats(0, 100),
        last_reading_at=st.none() | aware,
    )


def engine_statuses() -> st.SearchStrategy[EngineStatus]:
    return st.builds(
        EngineStatus,
        instance=idents,
        unit=idents,
        state=st.sampled_from(["online", "offline"]),
        reason=st.sampled_from(["birth", "heartbeat", "shutdown", "lwt"]),
        at=aware,
        heartbeat_s=st.floats(0.5, 3600),
        started_at=st.none() | aware,
        recovered_alerts=st.integers(0, 10**6),
    )


def gateway_statuses() -> st.SearchStrategy[GatewayStatus]:
    return st.builds(
        GatewayStatus,
        gateway_id=idents,
        state=st.sampled_from(["online", "offline"]),
        reason=st.sampled_from(["birth", "heartbeat", "shutdown", "lwt"]),
        at=aware,
        generation=generations,
        agent_version=texts,
        outbox_depth=st.integers(0, 10**9),
        outbox_dropped=st.integers(0, 10**9),
        clock_skew_ms=st.dictionaries(idents, finite, max_size=3),
        devices=st.lists(device_statuses(), max_size=2),
    )


def score_updates() -> st.SearchStrategy[ScoreUpdate]:
    score_inputs = st.builds(
        ScoreInput,
        code=st.sampled_from(sorted(BY_CODE)),
        value=finite,
        source=sources,
        device_id=st.none() | idents,
        measured_at=aware,
    )
    return st.builds(
        ScoreUpdate,
        unit=idents,
        bed_id=idents,
        at=aware,
        system=texts,
        table_version=texts,
        band=st.none() | texts,
        total=st.integers(0, 100),
        complete=st.booleans(),
        missing=st.lists(texts, max_size=3),
        items=st.dictionaries(texts, st.none() | st.integers(-5, 10), max_size=4),
        mode=st.sampled_from(["provisional", "charted"]),
        generation=generations,
        inputs=st.lists(score_inputs, max_size=3),
        escalation=st.dictionaries(
            texts, st.none() | st.booleans() | st.integers() | texts, max_size=4
        ),
    )


def alerts() -> st.SearchStrategy[Alert]:
    return st.builds(
        Alert,
        alert_id=idents,
        unit=idents,
        bed_id=idents,
        alert_kind=st.sampled_from(["clinical", "technical"]),
        condition=texts,
        priority=priorities,
        state=st.sampled_from(["active", "acknowledged", "resolved"]),
        raised_at=aware,
        updated_at=aware,
        escalation_step=st.integers(0, 1000),
        acknowledged_by=st.none() | texts,
        message=texts,
        generation=generations,
        score_total=st.none() | st.integers(0, 100),
    )


STRATEGIES: dict[type[WireModel], st.SearchStrategy[Any]] = {
    ObservationBatch: batches(),
    GatewayStatus: gateway_statuses(),
    EngineStatus: engine_statuses(),
    AlertCommand: st.builds(
        AlertCommand,
        command_id=idents,
        action=st.just("ack"),
        alert_id=idents,
        by=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=64),
        at=aware,
    ),
    ChartedSet: st.builds(
        ChartedSet,
        set_id=idents,
        unit=idents,
        bed_id=idents,
        by=st.just("nurse-1"),
        observed_at=st.just(datetime(2024, 3, 1, tzinfo=UTC)),
        charted_at=st.just(datetime(2024, 3, 1, 0, 5, tzinfo=UTC)),
        generation=generations,
        items=st.dictionaries(st.sampled_from(["avpu", "crt_s", "on_oxygen"]),
                              st.one_of(st.just("V"), st.floats(0, 10), st.booleans()),
                              min_size=1),
    ),
    ContextChanged: st.builds(
        ContextChanged,
        site=idents,
        unit=idents,
        at=aware,
        reason=st.sampled_from(["changed", "started"]),
        beds=st.lists(idents, max_size=5),
        gateways=st.lists(idents, max_size=3),
        devices=st.lists(idents, max_size=5),
    ),
    DeviceStatus: device_statuses(),
    ScoreUpdate: score_updates(),
    Alert: alerts(),
    AlertEvent: st.builds(
        AlertEvent,
        event=st.sampled_from(["raised", "escalated", "acknowledged", "resolved"]),
        at=aware,
        by=st.none() | texts,
        alert=alerts(),
    ),
    AckCommand: st.builds(
        AckCommand,
        command_id=idents,
        alert_id=idents,
        by=st.text(min_size=1, max_size=64),
        at=aware,
    ),
    DeadLetter: st.builds(
        DeadLetter,
        service=texts,
        reason=texts,
        topic=texts,
        received_at=aware,
        payload_b64=st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()),
        payload_bytes=st.integers(0, 10**6),
    ),
    TechnicalEvent: st.builds(
        TechnicalEvent,
        service=texts,
        event=st.sampled_from(["seq_gap", "unknown_device", "unknown_gateway", "clock_skew"]),
        gateway_id=idents,
        at=aware,
        detail=texts,
        count=st.integers(0, 10**6),
    ),
}


def _datetimes_in(value: Any) -> list[datetime]:
    if isinstance(value, datetime):
        return [value]
    if isinstance(value, BaseModel):
        return [d for f in type(value).model_fields for d in _datetimes_in(getattr(value, f))]
    if isinstance(value, list | tuple):
        return [d for v in value for d in _datetimes_in(v)]
    if isinstance(value, dict):
        return [d for v in value.values() for d in _datetimes_in(v)]
    return []


# ---------------------------------------------------------------------------------------------
# round trips


def test_every_wire_model_has_a_strategy() -> None:
    """A new wire model must come with a generator here (and so a round-trip test)."""
    assert set(WIRE_MODELS) == set(STRATEGIES)


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.__name__)
def test_round_trip(model: type[WireModel]) -> None:
    @SETTINGS
    @given(STRATEGIES[model])
    def check(instance: WireModel) -> None:
        text = instance.model_dump_json()
        back = model.model_validate_json(text)
        assert back == instance
        assert back.model_dump_json() == text  # byte-identical re-serialisation
        for dt in _datetimes_in(back):
            assert dt.utcoffset() == timedelta(0)
        for dt in _datetimes_in(instance):
            assert dt.utcoffset() == timedelta(0)

    check()


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.__name__)
def test_models_are_frozen(model: type[WireModel]) -> None:
    @settings(max_examples=3, deadline=None)
    @given(STRATEGIES[model])
    def check(instance: WireModel) -> None:
        with pytest.raises(ValidationError):
            instance.schema_version = 2  # type: ignore[attr-defined,misc]

    check()


# ---------------------------------------------------------------------------------------------
# strictness


def _obs_dict(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "device_id": "mon-01",
        "code": "HR",
        "value": 120.0,
        "unit": "/min",
        "measured_at": "2024-03-01T12:00:00Z",
        "received_at": "2024-03-01T12:00:01Z",
    }
    d.update(over)
    return d


EXAMPLES: dict[type[WireModel], dict[str, Any]] = {
    ObservationBatch: {
        "gateway_id": "gw-1",
        "seq": 0,
        "sent_at": "2024-03-01T12:00:00Z",
        "generation": "test",
        "observations": [_obs_dict()],
    },
    GatewayStatus: {
        "gateway_id": "gw-1",
        "state": "online",
        "reason": "birth",
        "at": "2024-03-01T12:00:00Z",
        "generation": "test",
    },
    AlertCommand: {
        "command_id": "c1",
        "action": "ack",
        "alert_id": "a-1",
        "by": "nurse-7",
        "at": "2024-03-01T12:00:00Z",
    },
    ChartedSet: {
        "set_id": "set-1",
        "unit": "picu",
        "bed_id": "bed01",
        "by": "nurse-7",
        "observed_at": "2024-03-01T11:55:00Z",
        "charted_at": "2024-03-01T12:00:00Z",
        "generation": "test",
        "items": {"avpu": "A", "crt_s": 2},
    },
    ContextChanged: {
        "site": "s1",
        "unit": "picu",
        "at": "2024-03-01T12:00:00Z",
        "beds": ["bed01"],
        "devices": ["mon-01"],
    },
    EngineStatus: {
        "instance": "alerting-s1-picu",
        "unit": "picu",
        "state": "online",
        "reason": "heartbeat",
        "at": "2024-03-01T12:00:00Z",
        "heartbeat_s": 5.0,
    },
    DeviceStatus: {
        "gateway_id": "gw-1",
        "device_id": "mon-01",
        "state": "connected",
        "at": "2024-03-01T12:00:00Z",
    },
    ScoreUpdate: {
        "unit": "picu",
        "bed_id": "bed01",
        "at": "2024-03-01T12:00:00Z",
        "system": "bedside_pews",
        "table_version": "1",
        "band": None,
        "total": 3,
        "complete": False,
        "missing": ["crt_s"],
        "items": {"hr": 1, "crt": None},
        "mode": "provisional",
        "generation": "test",
    },
    Alert: {
        "alert_id": "a1",
        "unit": "picu",
        "bed_id": "bed01",
        "alert_kind": "clinical",
        "condition": "score",
        "priority": "high",
        "state": "active",
        "raised_at": "2024-03-01T12:00:00Z",
        "updated_at": "2024-03-01T12:00:00Z",
        "message": "PEWS 9",
        "generation": "test",
    },
    AckCommand: {
        "command_id": "c1",
        "alert_id": "a1",
        "by": "nurse-7",
        "at": "2024-03-01T12:00:00Z",
    },
    DeadLetter: {
        "service": "ingest",
        "reason": "malformed",
        "topic": "wm/v1/gw/s/u/g/obs",
        "received_at": "2024-03-01T12:00:00Z",
        "payload_b64": "",
        "payload_bytes": 0,
    },
    TechnicalEvent: {
        "service": "ingest",
        "event": "seq_gap",
        "gateway_id": "gw-1",
        "at": "2024-03-01T12:00:00Z",
        "detail": "gap of 3",
    },
}
EXAMPLES[AlertEvent] = {
    "event": "raised",
    "at": "2024-03-01T12:00:00Z",
    "alert": EXAMPLES[Alert],
}

DATETIME_FIELD = {
    ObservationBatch: "sent_at",
    GatewayStatus: "at",
    EngineStatus: "at",
    AlertCommand: "at",
    ChartedSet: "charted_at",
    ContextChanged: "at",
    DeviceStatus: "at",
    ScoreUpdate: "at",
    Alert: "raised_at",
    AlertEvent: "at",
    AckCommand: "at",
    DeadLetter: "received_at",
    TechnicalEvent: "at",
}


def test_every_wire_model_has_a_hand_built_example() -> None:
    assert set(EXAMPLES) == set(WIRE_MODELS) == set(DATETIME_FIELD)


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.__name__)
def test_hand_built_example_is_valid(model: type[WireModel]) -> None:
    inst = _v(model, EXAMPLES[model])
    assert model.model_validate_json(inst.model_dump_json()) == inst
    assert inst.schema_version == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.__name__)
def test_extra_key_rejected(model: type[WireModel]) -> None:
    data = {**EXAMPLES[model], "patient_name": "x"}
    with pytest.raises(ValidationError) as ei:
        _v(model, data)
    assert any(e["type"] == "extra_forbidden" for e in ei.value.errors())
    with pytest.raises(ValidationError):
        model.model_validate_json(json.dumps(data))


def test_extra_key_rejected_in_nested_models() -> None:
    data = {**EXAMPLES[ObservationBatch], "observations": [_obs_dict(patient="P-1234")]}
    with pytest.raises(ValidationError, match="extra"):
        _v(ObservationBatch, data)
    ev = {**EXAMPLES[AlertEvent], "alert": {**EXAMPLES[Alert], "mrn": "123"}}
    with pytest.raises(ValidationError, match="extra"):
        _v(AlertEvent, ev)


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_schema_version_literal_enforced(model: type[WireModel], version: object) -> None:
    with pytest.raises(ValidationError):
        _v(model, {**EXAMPLES[model], "schema_version": version})
    # and from JSON (a future major version is refused, not misread)
    with pytest.raises(ValidationError):
        model.model_validate_json(json.dumps({**EXAMPLES[model], "schema_version": version}))


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.__name__)
def test_kind_literal_enforced(model: type[WireModel]) -> None:
    with pytest.raises(ValidationError):
        _v(model, {**EXAMPLES[model], "kind": "something_else"})


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.__name__)
def test_naive_datetime_rejected(model: type[WireModel]) -> None:
    field = DATETIME_FIELD[model]
    with pytest.raises(ValidationError):
        _v(model, {**EXAMPLES[model], field: "2024-03-01T12:00:00"})
    with pytest.raises(ValidationError):
        _v(model, {**EXAMPLES[model], field: datetime(2024, 3, 1, 12)})


def test_naive_datetime_rejected_in_observation_fields() -> None:
    for field in ("measured_at", "received_at"):
        with pytest.raises(ValidationError):
            _v(Observation, _obs_dict(**{field: datetime(2024, 3, 1, 12)}))


@pytest.mark.parametrize("model", WIRE_MODELS, ids=lambda m: m.__name__)
def test_non_utc_datetime_normalised_to_utc(model: type[WireModel]) -> None:
    field = DATETIME_FIELD[model]
    local = datetime(2024, 3, 1, 17, 30, tzinfo=PLUS_0530)
    inst = _v(model, {**EXAMPLES[model], field: local})
    got = getattr(inst, field)
    assert got == local
    assert got.utcoffset() == timedelta(0)
    assert got.replace(tzinfo=None) == datetime(2024, 3, 1, 12, 0)
    assert json.loads(inst.model_dump_json())[field] == "2024-03-01T12:00:00Z"
    # a JSON string with an offset is normalised too
    inst2 = model.model_validate_json(
        json.dumps({**EXAMPLES[model], field: "2024-03-01T04:00:00-08:00"})
    )
    assert getattr(inst2, field) == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert getattr(inst2, field).utcoffset() == timedelta(0)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30), timezones=st.timezones()
    )
)
@settings(max_examples=40, deadline=None)
def test_any_aware_datetime_normalised(dt: datetime) -> None:
    obs = _v(Observation, _obs_dict(measured_at=dt))
    # (PEP 495: inter-zone == is always False for times in a DST gap/fold; compare instants)
    assert obs.measured_at == dt.astimezone(UTC)
    assert obs.measured_at.tzinfo is not None
    assert obs.measured_at.utcoffset() == timedelta(0)


# ---------------------------------------------------------------------------------------------
# Observation / WaveformBlock validators


@pytest.mark.parametrize(
    ("code", "unit"),
    [("HR", "bpm"), ("HR", "/s"), ("SPO2", "/min"), ("TEMP", "degC"), ("TEMP", "Cel ")],
)
def test_wrong_unit_rejected(code: str, unit: str) -> None:
    with pytest.raises(ValidationError, match="unit"):
        _v(Observation, _obs_dict(code=code, unit=unit, value=37.0))


@pytest.mark.parametrize("code", ["XX", "hr", "", "PLETH", "ECG_II"])
def test_unknown_or_waveform_code_rejected_in_observation(code: str) -> None:
    unit = BY_CODE[code].ucum if code in BY_CODE else "/min"
    with pytest.raises(ValidationError, match="unknown numeric parameter code"):
        _v(Observation, _obs_dict(code=code, unit=unit, value=1.0))


@pytest.mark.parametrize(
    ("code", "value"),
    [
        ("HR", -0.1),
        ("HR", 350.01),
        ("SPO2", 100.5),
        ("TEMP", 14.99),
        ("TEMP", 47.01),
        ("FIO2", 20.9),
        ("AVPU", 5.0),
        ("AVPU", 1.5),
        ("AVPU", -1.0),
        ("O2_DEVICE", 8.0),
    ],
)
def test_implausible_value_rejected(code: str, value: float) -> None:
    with pytest.raises(ValidationError, match="outside the physical range"):
        _v(Observation, _obs_dict(code=code, unit=BY_CODE[code].ucum, value=value))


@pytest.mark.parametrize("p", SCALAR_PARAMS, ids=lambda p: p.code)
def test_plausible_bounds_are_inclusive(p: Any) -> None:
    hi = float(len(p.categories) - 1) if p.kind is ParamKind.CATEGORICAL else p.high
    for value in (p.low, hi):
        obs = _v(Observation, _obs_dict(code=p.code, unit=p.ucum, value=value))
        assert obs.value == value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_value_rejected(value: float) -> None:
    with pytest.raises(ValidationError, match="finite"):
        _v(Observation, _obs_dict(value=value))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_value_rejected_from_json(literal: str) -> None:
    text = json.dumps(_obs_dict()).replace("120.0", literal)
    with pytest.raises(ValidationError):
        Observation.model_validate_json(text)


@pytest.mark.parametrize(
    "device_id", ["", "a/b", "a+b", "a#b", "$SYS", "a b", "-lead", "a\n", "x" * 65, "é"]
)
def test_device_id_must_be_a_safe_topic_level(device_id: str) -> None:
    with pytest.raises(ValidationError):
        _v(Observation, _obs_dict(device_id=device_id))


def _wave_dict(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "device_id": "mon-01",
        "code": "ECG_II",
        "unit": "mV",
        "start": "2024-03-01T12:00:00Z",
        "received_at": "2024-03-01T12:00:01Z",
        "sample_rate_hz": 250.0,
        "samples": [0.1, 0.2, -0.3],
    }
    d.update(over)
    return d


@pytest.mark.parametrize(
    "over",
    [
        {"code": "HR", "unit": "/min"},
        {"code": "NOPE"},
        {"unit": "uV"},
        {"sample_rate_hz": 0.0},
        {"sample_rate_hz": -1.0},
        {"sample_rate_hz": 10000.1},
        {"samples": []},
        {"samples": [0.0, math.nan]},
        {"samples": [math.inf]},
        {"samples": [0.0] * 10001},
    ],
    ids=str,
)
def test_invalid_waveform_block_rejected(over: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _v(WaveformBlock, _wave_dict(**over))


def test_waveform_block_valid() -> None:
    w = _v(WaveformBlock, _wave_dict(samples=[0.0] * 10000))
    assert len(w.samples) == 10000


def test_batch_must_not_be_empty() -> None:
    data = {**EXAMPLES[ObservationBatch], "observations": []}
    with pytest.raises(ValidationError, match="at least one"):
        _v(ObservationBatch, data)
    data.pop("observations")
    with pytest.raises(ValidationError, match="at least one"):
        _v(ObservationBatch, data)


def test_batch_with_only_waveforms_is_valid() -> None:
    data = {**EXAMPLES[ObservationBatch], "observations": [], "waveforms": [_wave_dict()]}
    assert len(_v(ObservationBatch, data).waveforms) == 1


def test_batch_size_limits() -> None:
    obs = _obs_dict()
    ok = {**EXAMPLES[ObservationBatch], "observations": [obs] * MAX_BATCH_OBSERVATIONS}
    assert len(_v(ObservationBatch, ok).observations) == MAX_BATCH_OBSERVATIONS
    with pytest.raises(ValidationError):
        _v(ObservationBatch,
            {**ok, "observations": [obs] * (MAX_BATCH_OBSERVATIONS + 1)}
        )
    with pytest.raises(ValidationError):
        _v(ObservationBatch, {**ok, "waveforms": [_wave_dict()] * 101})


@pytest.mark.parametrize("seq", [-1, 1.5, "x"])
def test_batch_seq_must_be_a_non_negative_int(seq: object) -> None:
    with pytest.raises(ValidationError):
        _v(ObservationBatch, {**EXAMPLES[ObservationBatch], "seq": seq})


def test_batch_rejects_unknown_generation() -> None:
    with pytest.raises(ValidationError):
        _v(ObservationBatch, {**EXAMPLES[ObservationBatch], "generation": "prod"})


def test_one_bad_observation_rejects_the_batch() -> None:
    data = {
        **EXAMPLES[ObservationBatch],
        "observations": [_obs_dict(), _obs_dict(value=999.0)],
    }
    with pytest.raises(ValidationError) as ei:
        _v(ObservationBatch, data)
    assert ei.value.errors()[0]["loc"][:2] == ("observations", 1)


@pytest.mark.parametrize("pct", [-0.1, 100.1, math.nan])
def test_device_status_battery_range(pct: float) -> None:
    with pytest.raises(ValidationError):
        _v(DeviceStatus, {**EXAMPLES[DeviceStatus], "battery_pct": pct})


@pytest.mark.parametrize("by", ["", "x" * 65])
def test_ack_by_length(by: str) -> None:
    with pytest.raises(ValidationError):
        _v(AckCommand, {**EXAMPLES[AckCommand], "by": by})


def test_gateway_status_lwt_may_omit_at() -> None:
    lwt = _v(GatewayStatus, {**EXAMPLES[GatewayStatus], "reason": "lwt", "at": None})
    assert lwt.at is None
    assert GatewayStatus.model_validate_json(lwt.model_dump_json()) == lwt


@pytest.mark.parametrize("reason", ["birth", "heartbeat", "shutdown"])
def test_gateway_status_non_lwt_requires_at(reason: str) -> None:
    with pytest.raises(ValidationError):
        _v(GatewayStatus, {**EXAMPLES[GatewayStatus], "reason": reason, "at": None})


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_gateway_status_clock_skew_rejects_non_finite(value: float) -> None:
    with pytest.raises(ValidationError):
        _v(GatewayStatus, {**EXAMPLES[GatewayStatus], "clock_skew_ms": {"d": value}})


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_score_input_rejects_non_finite(value: float) -> None:
    with pytest.raises(ValidationError):
        ScoreInput(code="HR", value=value, source="measured", measured_at=T0)  # type: ignore[arg-type]


def test_no_patient_identifier_fields_anywhere() -> None:
    """The wire never carries patient identifiers (the registry resolves bed -> patient)."""
    banned = ("patient", "mrn", "name", "dob", "birth", "nhs")

    def fields_of(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
        out = set(model.model_fields)
        seen.add(model)
        for f in model.model_fields.values():
            for arg in (*getattr(f.annotation, "__args__", ()), f.annotation):
                inner = getattr(arg, "__args__", (arg,))
                for t in inner:
                    if isinstance(t, type) and issubclass(t, BaseModel) and t not in seen:
                        out |= fields_of(t, seen)
        return out

    for model in WIRE_MODELS:
        for name in fields_of(model, set()):
            assert not any(b in name.lower() for b in banned), (model.__name__, name)


# ---------------------------------------------------------------------------------------------
# parameter table


def test_parameter_codes_unique_and_indexed() -> None:
    codes = [p.code for p in PARAMETERS]
    assert len(codes) == len(set(codes))
    assert set(BY_CODE) == set(codes)
    for p in PARAMETERS:
        assert parameter(p.code) is p


def test_parameter_lookup_names_the_code() -> None:
    with pytest.raises(KeyError, match="NOPE"):
        parameter("NOPE")


@pytest.mark.parametrize("p", PARAMETERS, ids=lambda p: p.code)
def test_parameter_rows_are_consistent(p: Any) -> None:
    assert p.low <= p.high
    assert p.ucum
    if p.kind is ParamKind.CATEGORICAL:
        assert p.categories
        assert p.low == 0
        assert p.high == len(p.categories) - 1
        assert p.charted
    else:
        assert p.categories == ()


@pytest.mark.parametrize("p", [p for p in PARAMETERS if p.kind is ParamKind.CATEGORICAL])
def test_category_lookup(p: Any) -> None:
    for i, name in enumerate(p.categories):
        assert p.plausible(float(i))
        assert p.category(float(i)) == name
    for bad in (-1.0, 0.5, float(len(p.categories))):
        assert not p.plausible(bad)
        with pytest.raises(ValueError, match=p.code):
            p.category(bad)


def test_category_of_numeric_parameter_raises() -> None:
    with pytest.raises(ValueError):
        parameter("HR").category(80.0)


@given(st.sampled_from(SCALAR_PARAMS), st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=60, deadline=None)
def test_observation_accepts_exactly_the_plausible_values(p: Any, value: float) -> None:
    d = _obs_dict(code=p.code, unit=p.ucum, value=value)
    if p.plausible(value):
        assert _v(Observation, d).value == value
    else:
        with pytest.raises(ValidationError):
            _v(Observation, d)
