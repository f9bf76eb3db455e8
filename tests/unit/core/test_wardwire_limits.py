"""The contract rejects what it cannot represent (issue 8): times, strict numbers, implausible
values without ``quality=invalid``. Each case here once passed validation and broke a service
behind it (an ``OverflowError`` in a paho thread, a 400 from InfluxDB, ``true`` stored as 1.0).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from wardwire.models import (
    WIRE_TIME_MAX,
    WIRE_TIME_MIN,
    DeviceStatus,
    Observation,
    ObservationBatch,
    Quality,
    TimeSource,
)

T = "2024-03-01T12:00:00Z"


def obs(**kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "device_id": "ox1",
        "code": "SPO2",
        "value": 97,
        "unit": "%",
        "measured_at": T,
        "received_at": T,
    }
    d.update(kw)
    return d


def batch(**kw: Any) -> bytes:
    d: dict[str, Any] = {
        "gateway_id": "gw1",
        "seq": 7,
        "sent_at": T,
        "generation": "test",
        "observations": [obs()],
    }
    d.update(kw)
    return json.dumps(d).encode()


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00+14:00",  # OverflowError in astimezone(UTC) before the fix
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00Z",
        "1500-01-01T00:00:00Z",  # InfluxDB 400 "unable to parse"
        "1970-01-01T00:00:00Z",  # a device clock reset: beyond any retention policy
        "1999-12-31T23:59:59.999999Z",
        "2100-01-01T00:00:00Z",
        "2200-01-01T00:00:00Z",
    ],
)
@pytest.mark.parametrize("field", ["measured_at", "received_at"])
def test_unrepresentable_times_are_validation_errors(when: str, field: str) -> None:
    with pytest.raises(ValidationError):
        ObservationBatch.model_validate_json(batch(observations=[obs(**{field: when})]))
    with pytest.raises(ValidationError):
        ObservationBatch.model_validate_json(batch(sent_at=when))


@pytest.mark.parametrize("when", ["2000-01-01T00:00:00Z", "2099-12-31T23:59:59.999999Z"])
def test_range_edges_are_accepted(when: str) -> None:
    b = ObservationBatch.model_validate_json(batch(observations=[obs(measured_at=when)]))
    assert WIRE_TIME_MIN <= b.observations[0].measured_at < WIRE_TIME_MAX


@pytest.mark.parametrize(
    "value", [True, False, "100", "97", None, [97], {"v": 97}], ids=repr
)
def test_value_must_be_a_json_number(value: object) -> None:
    with pytest.raises(ValidationError):
        ObservationBatch.model_validate_json(batch(observations=[obs(value=value)]))


def test_integer_value_is_a_number() -> None:
    b = ObservationBatch.model_validate_json(batch(observations=[obs(value=97)]))
    assert b.observations[0].value == 97.0


@pytest.mark.parametrize("seq", ["7", 7.0, True, -1, 1.5, None], ids=repr)
def test_seq_must_be_a_json_integer(seq: object) -> None:
    with pytest.raises(ValidationError):
        ObservationBatch.model_validate_json(batch(seq=seq))


@pytest.mark.parametrize("when", [1709294400, 1709294400.5, True])
def test_epoch_numbers_are_not_times(when: object) -> None:
    with pytest.raises(ValidationError):
        ObservationBatch.model_validate_json(batch(sent_at=when))


@pytest.mark.parametrize(("code", "value"), [("SPO2", 101), ("TEMP", 14), ("HR", 351)])
def test_implausible_value_needs_invalid_quality_and_reason(code: str, value: float) -> None:
    unit = {"SPO2": "%", "TEMP": "Cel", "HR": "/min"}[code]
    for kw in ({}, {"quality": "valid"}, {"quality": "questionable", "quality_reason": "x"},
               {"quality": "invalid"}):
        with pytest.raises(ValidationError, match="outside the physical range"):
            Observation.model_validate_json(
                json.dumps(obs(code=code, unit=unit, value=value, **kw))
            )
    o = Observation.model_validate_json(
        json.dumps(
            obs(code=code, unit=unit, value=value, quality="invalid", quality_reason="implausible")
        )
    )
    assert o.quality is Quality.INVALID and o.value == value


def test_empty_quality_reason_rejected() -> None:
    with pytest.raises(ValidationError):
        Observation.model_validate_json(
            json.dumps(obs(value=101, quality="invalid", quality_reason=""))
        )


def test_retimed_value_keeps_the_device_clock_reading() -> None:
    o = Observation.model_validate_json(
        json.dumps(obs(time_source="gateway", device_time="1970-01-01T00:00:07Z"))
    )
    assert o.time_source is TimeSource.GATEWAY
    assert o.device_time == datetime(1970, 1, 1, 0, 0, 7, tzinfo=UTC)
    with pytest.raises(ValidationError, match="re-timed"):
        Observation.model_validate_json(json.dumps(obs(device_time="1970-01-01T00:00:07Z")))
    with pytest.raises(ValidationError):
        Observation.model_validate_json(
            json.dumps(obs(time_source="gateway", device_time="0001-01-01T00:00:00+14:00"))
        )


@pytest.mark.parametrize("field", ["readings", "frames_rejected", "values_invalid"])
@pytest.mark.parametrize("bad", [-1, 1.0, "1", True], ids=repr)
def test_device_counters_are_strict_counts(field: str, bad: object) -> None:
    d = {"gateway_id": "gw1", "device_id": "d1", "state": "connected", "at": T, field: bad}
    with pytest.raises(ValidationError):
        DeviceStatus.model_validate_json(json.dumps(d))


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    )
)
@settings(max_examples=200, deadline=None)
def test_any_aware_time_is_accepted_exactly_in_range(dt: datetime) -> None:
    payload = batch(observations=[obs(measured_at=dt.isoformat())])
    try:
        utc = dt.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is not None and WIRE_TIME_MIN <= utc < WIRE_TIME_MAX:
        assert ObservationBatch.model_validate_json(payload).observations[0].measured_at == utc
    else:
        with pytest.raises(ValidationError):
            ObservationBatch.model_validate_json(payload)


def test_samples_per_batch_are_capped() -> None:
    from wardwire.models import MAX_BATCH_SAMPLES

    block = {"device_id": "d1", "code": "PLETH", "unit": "{unitless}", "start": T,
             "received_at": T, "sample_rate_hz": 500.0, "samples": [1.0] * 10_000}
    n_ok = MAX_BATCH_SAMPLES // 10_000
    ok = batch(observations=[], waveforms=[block] * n_ok)
    assert len(ObservationBatch.model_validate_json(ok).waveforms) == n_ok
    with pytest.raises(ValidationError, match="waveform samples"):
        ObservationBatch.model_validate_json(batch(observations=[], waveforms=[block] * (n_ok + 1)))


@pytest.mark.parametrize("reason", ["a\x00b", "line\nbreak", "\x7f", "tab\there"])
def test_quality_reason_is_printable(reason: str) -> None:
    with pytest.raises(ValidationError):
        Observation.model_validate_json(
            json.dumps(obs(value=101, quality="invalid", quality_reason=reason))
        )
