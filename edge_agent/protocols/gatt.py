"""The Bluetooth GATT services wardwatch decodes, and the Battery Level characteristic.

The BLE driver layer scans for devices advertising one of :func:`service_uuids`, subscribes
to each characteristic listed for that service in :data:`SERVICES`, and hands every value it
receives to that characteristic's decoder. Decoders are pure functions of the value bytes
(conventions.md section 1): they return events and never raise, so the same code runs behind
bleak on the ward and behind a bumble virtual peripheral in CI (platform_notes.md section 6).

Every decoder has the signature ``decode(value: bytes, *, tz: tzinfo | None = None)``. ``tz``
is the zone the device's own clock is set to, known only to the deployment; characteristics
with a timestamp use it to fill ``device_time``, the others ignore it.

Battery Level (0x2A19, Battery Service 1.0 section 3.1 and the GSS entry "Battery Level") is a
uint8 percentage, 0-100. It becomes ``DeviceCondition(CONNECTED, battery_pct=...)``: the device
is talking and this is its charge. Deciding what counts as *low* is policy for the shell (no
threshold literals in a decoder, conventions.md section 5).

References:
    * Bluetooth SIG Assigned Numbers, "GATT Services" and "GATT Characteristics" 16-bit UUID
      tables: 0x180D Heart Rate, 0x1822 Pulse Oximeter, 0x1809 Health Thermometer, 0x1810
      Blood Pressure, 0x180F Battery.
    * The service specifications cited in ``gatt_hrs``, ``gatt_plx``, ``gatt_hts``, ``gatt_bps``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Literal, Protocol

from edge_agent.protocols.base import DeviceCondition, FrameRejected, ParserEvent
from edge_agent.protocols.gatt_bps import BLOOD_PRESSURE_SERVICE, decode_blood_pressure_measurement
from edge_agent.protocols.gatt_hrs import HEART_RATE_SERVICE, decode_heart_rate_measurement
from edge_agent.protocols.gatt_hts import (
    HEALTH_THERMOMETER_SERVICE,
    decode_temperature_measurement,
)
from edge_agent.protocols.gatt_plx import (
    PULSE_OXIMETER_SERVICE,
    decode_plx_continuous,
    decode_plx_spot_check,
)
from wardwire.models import DeviceState

BATTERY_SERVICE = "180F"
BATTERY_LEVEL = "2A19"

# The Bluetooth Base UUID: a 16-bit UUID xxxx is 0000xxxx-0000-1000-8000-00805F9B34FB.
_BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"


class CharacteristicDecoder(Protocol):
    """A pure decoder of one characteristic's value."""

    def __call__(self, value: bytes, /, *, tz: tzinfo | None = None) -> list[ParserEvent]: ...


@dataclass(frozen=True, slots=True)
class Characteristic:
    """One characteristic the driver subscribes to (or reads).

    ``delivery`` is how the service specification says the server sends values: the driver
    enables notifications or indications accordingly, or reads ``read`` characteristics.
    """

    uuid: str
    name: str
    delivery: Literal["notify", "indicate", "read"]
    decode: CharacteristicDecoder


def decode_battery_level(value: bytes, *, tz: tzinfo | None = None) -> list[ParserEvent]:
    """Decode a Battery Level (0x2A19) value; never raises (``[FrameRejected]`` if malformed)."""
    del tz
    if len(value) != 1 or value[0] > 100:
        return [FrameRejected(f"{BATTERY_LEVEL}: not a uint8 percentage 0-100", bytes(value))]
    return [DeviceCondition(DeviceState.CONNECTED, detail="battery level", battery_pct=value[0])]


def encode_battery_level(percent: int) -> bytes:
    """Encode a Battery Level value; the inverse of :func:`decode_battery_level`."""
    if not 0 <= percent <= 100:
        raise ValueError(f"battery level {percent} is not 0-100")
    return bytes([percent])


SERVICES: Mapping[str, tuple[Characteristic, ...]] = {
    HEART_RATE_SERVICE: (
        Characteristic("2A37", "Heart Rate Measurement", "notify", decode_heart_rate_measurement),
    ),
    PULSE_OXIMETER_SERVICE: (
        Characteristic("2A5F", "PLX Continuous Measurement", "notify", decode_plx_continuous),
        Characteristic("2A5E", "PLX Spot-check Measurement", "indicate", decode_plx_spot_check),
    ),
    HEALTH_THERMOMETER_SERVICE: (
        Characteristic(
            "2A1C", "Temperature Measurement", "indicate", decode_temperature_measurement
        ),
    ),
    BLOOD_PRESSURE_SERVICE: (
        Characteristic(
            "2A35", "Blood Pressure Measurement", "indicate", decode_blood_pressure_measurement
        ),
    ),
    BATTERY_SERVICE: (
        Characteristic(BATTERY_LEVEL, "Battery Level", "read", decode_battery_level),
    ),
}
"""16-bit service UUID (upper-case hex) -> the characteristics of it that wardwatch decodes."""

_BY_CHARACTERISTIC: dict[str, Characteristic] = {
    c.uuid: c for chars in SERVICES.values() for c in chars
}


def service_uuids() -> tuple[str, ...]:
    """The 16-bit service UUIDs this module decodes, e.g. for a scan filter."""
    return tuple(SERVICES)


def short_uuid(uuid: str | int) -> str | None:
    """Normalise a UUID to 4 upper-case hex digits, or None if it is not a SIG 16-bit UUID.

    Accepts ``0x2A37``, ``"2a37"``, ``"0x2A37"`` and the 128-bit form on the Bluetooth Base UUID
    (``"00002a37-0000-1000-8000-00805f9b34fb"``), which is what bleak and bumble report.
    """
    if isinstance(uuid, int):
        return f"{uuid:04X}" if 0 <= uuid <= 0xFFFF else None
    text = uuid.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if len(text) == 36 and text.startswith("0000") and text.endswith(_BASE_UUID_SUFFIX):
        text = text[4:8]
    if len(text) == 4 and all(ch in "0123456789abcdef" for ch in text):
        return text.upper()
    return None


def characteristic(uuid: str | int) -> Characteristic | None:
    """The decodable characteristic with this UUID (any form :func:`short_uuid` accepts)."""
    short = short_uuid(uuid)
    return None if short is None else _BY_CHARACTERISTIC.get(short)
