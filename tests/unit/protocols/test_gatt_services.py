"""The GATT service table, UUID handling, Battery Level, and properties of every decoder:
random values never raise, and every structured measurement survives encode -> parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.protocols.base import (
    DeviceCondition,
    FrameRejected,
    ParserEvent,
    Reading,
    WaveformChunk,
)
from edge_agent.protocols.gatt import (
    SERVICES,
    characteristic,
    decode_battery_level,
    encode_battery_level,
    service_uuids,
    short_uuid,
)
from edge_agent.protocols.gatt_bps import (
    BloodPressureMeasurement,
    encode_blood_pressure_measurement,
    parse_blood_pressure_measurement,
)
from edge_agent.protocols.gatt_fields import DateTime
from edge_agent.protocols.gatt_hrs import (
    HeartRateMeasurement,
    encode_heart_rate_measurement,
    parse_heart_rate_measurement,
)
from edge_agent.protocols.gatt_hts import (
    TemperatureMeasurement,
    encode_temperature_measurement,
    parse_temperature_measurement,
)
from edge_agent.protocols.gatt_plx import (
    PlxMeasurement,
    encode_plx_continuous,
    encode_plx_spot_check,
    parse_plx_continuous,
    parse_plx_spot_check,
)
from edge_agent.protocols.ieee11073 import decode_float, decode_sfloat
from wardwire.models import DeviceState

ALL = [c for chars in SERVICES.values() for c in chars]


def test_service_table_lists_the_five_services() -> None:
    assert service_uuids() == ("180D", "1822", "1809", "1810", "180F")
    assert {s: [c.uuid for c in chars] for s, chars in SERVICES.items()} == {
        "180D": ["2A37"],
        "1822": ["2A5F", "2A5E"],
        "1809": ["2A1C"],
        "1810": ["2A35"],
        "180F": ["2A19"],
    }
    assert {c.uuid: c.delivery for c in ALL} == {
        "2A37": "notify",
        "2A5F": "notify",
        "2A5E": "indicate",
        "2A1C": "indicate",
        "2A35": "indicate",
        "2A19": "read",
    }


@pytest.mark.parametrize(
    ("uuid", "short"),
    [
        ("2a37", "2A37"),
        ("0x2A37", "2A37"),
        (0x2A37, "2A37"),
        ("00002a37-0000-1000-8000-00805f9b34fb", "2A37"),
        ("00002A37-0000-1000-8000-00805F9B34FB", "2A37"),
        ("12345678-0000-1000-8000-00805f9b34fb", None),
        ("6e400001-b5a3-f393-e0a9-e50e24dcca9e", None),
        ("zz37", None),
        (0x12345, None),
    ],
)
def test_short_uuid(uuid: str | int, short: str | None) -> None:
    assert short_uuid(uuid) == short


def test_characteristic_lookup_by_any_uuid_form() -> None:
    hrm = characteristic("00002a37-0000-1000-8000-00805f9b34fb")
    assert hrm is not None
    assert hrm.decode(bytes.fromhex("072c01")) == [Reading("HR", 300.0, "/min")]
    assert characteristic("2A38") is None
    assert characteristic("not a uuid") is None


@pytest.mark.parametrize("level", [0, 15, 100])
def test_battery_level(level: int) -> None:
    assert decode_battery_level(encode_battery_level(level)) == [
        DeviceCondition(DeviceState.CONNECTED, "battery level", battery_pct=level)
    ]


@pytest.mark.parametrize("value", [b"", b"\x65", b"\xff", b"\x10\x00"])
def test_battery_level_malformed(value: bytes) -> None:
    events = decode_battery_level(value)
    assert len(events) == 1
    assert isinstance(events[0], FrameRejected)


def test_battery_encoder_validates() -> None:
    with pytest.raises(ValueError, match="0-100"):
        encode_battery_level(101)


@pytest.mark.parametrize("char", ALL, ids=[c.uuid for c in ALL])
@given(value=st.binary(max_size=40))
def test_random_values_never_raise(char: Any, value: bytes) -> None:
    events = char.decode(value)
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, Reading | DeviceCondition | FrameRejected)
        assert not isinstance(event, WaveformChunk)
        if isinstance(event, Reading):
            assert event.value == event.value  # never NaN
            assert abs(event.value) != float("inf")


sfloats = st.integers(0, 0xFFFF).map(decode_sfloat)
floats32 = st.integers(0, 0xFFFFFFFF).map(decode_float)
stamps = st.one_of(
    st.builds(
        lambda d, h, m, s: DateTime(d.year, d.month, d.day, h, m, s),
        st.dates(),
        st.integers(0, 23),
        st.integers(0, 59),
        st.integers(0, 59),
    ).filter(lambda t: t.year >= 1582),
    st.just(DateTime(0, 0, 0, 0, 0, 0)),
)
uint16 = st.integers(0, 0xFFFF)


def hrm() -> st.SearchStrategy[HeartRateMeasurement]:
    def make(hr: int, wide: bool, contact: bool | None, ee: int | None, rr: Any) -> Any:
        return HeartRateMeasurement(hr if wide else hr & 0xFF, contact, ee, rr, wide)

    return st.builds(
        make,
        uint16,
        st.booleans(),
        st.none() | st.booleans(),
        st.none() | uint16,
        st.none() | st.lists(uint16, min_size=1, max_size=8).map(tuple),
    )


def plx(spot: bool) -> st.SearchStrategy[PlxMeasurement]:
    optional = st.none() | sfloats
    if spot:
        return st.builds(
            PlxMeasurement,
            sfloats,
            sfloats,
            timestamp=st.none() | stamps,
            measurement_status=st.none() | uint16,
            device_sensor_status=st.none() | st.integers(0, 0xFFFFFF),
            pulse_amplitude_index=optional,
            clock_not_set=st.booleans(),
        )
    pair = st.none() | st.tuples(sfloats, sfloats)
    return st.builds(
        lambda s, p, fast, slow, ms, ds, pai: PlxMeasurement(
            s,
            p,
            spo2_fast=(fast or (None, None))[0],
            pulse_rate_fast=(fast or (None, None))[1],
            spo2_slow=(slow or (None, None))[0],
            pulse_rate_slow=(slow or (None, None))[1],
            measurement_status=ms,
            device_sensor_status=ds,
            pulse_amplitude_index=pai,
        ),
        sfloats,
        sfloats,
        pair,
        pair,
        st.none() | uint16,
        st.none() | st.integers(0, 0xFFFFFF),
        optional,
    )


RoundTrip = tuple[str, st.SearchStrategy[Any], Callable[[Any], bytes], Callable[[bytes], Any]]
ROUND_TRIPS: list[RoundTrip] = [
    ("2A37", hrm(), encode_heart_rate_measurement, parse_heart_rate_measurement),
    ("2A5F", plx(spot=False), encode_plx_continuous, parse_plx_continuous),
    ("2A5E", plx(spot=True), encode_plx_spot_check, parse_plx_spot_check),
    (
        "2A1C",
        st.builds(
            TemperatureMeasurement,
            floats32,
            st.booleans(),
            st.none() | stamps,
            st.none() | st.integers(0, 255),
        ),
        encode_temperature_measurement,
        parse_temperature_measurement,
    ),
    (
        "2A35",
        st.builds(
            BloodPressureMeasurement,
            sfloats,
            sfloats,
            sfloats,
            st.booleans(),
            st.none() | stamps,
            st.none() | sfloats,
            st.none() | st.integers(0, 255),
            st.none() | uint16,
        ),
        encode_blood_pressure_measurement,
        parse_blood_pressure_measurement,
    ),
]


@pytest.mark.parametrize(
    ("uuid", "strategy", "encode", "parse"), ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS]
)
@given(data=st.data())
def test_encode_then_parse_is_identity(
    uuid: str, strategy: Any, encode: Any, parse: Any, data: st.DataObject
) -> None:
    measurement = data.draw(strategy)
    value = encode(measurement)
    assert parse(value) == measurement
    events: list[ParserEvent] = characteristic(uuid).decode(value)  # type: ignore[union-attr]
    assert not any(isinstance(e, FrameRejected) for e in events)
