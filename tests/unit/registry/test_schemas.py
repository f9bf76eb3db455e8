"""What a request may carry: each malformed value is refused with a sentence saying the form."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from registry.schemas import DeviceRequest, DeviceUpdate, PatientRequest, TimeRequest, UnitRequest

DEVICE = {"id": "mon-1", "manufacturer": "Acme", "model": "M", "serial_number": "SN-1",
          "driver": "wwmon"}


def refused(model: type, data: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    assert words in str(info.value), str(info.value)


@pytest.mark.parametrize("udi", [
    "(01)00884838000018",
    "(01)00884838000018(17)261231(10)LOT-7(21)SN-1",
    "+H123PROD1234561",
    "=/A9999XYZ100T0944",
])
def test_good_udis(udi: str) -> None:
    assert DeviceRequest.model_validate({**DEVICE, "udi": udi}).udi == udi


@pytest.mark.parametrize(("udi", "words"), [
    ("(01)00884838000019", "wrong check digit"),
    ("(01)0088483800001", "bad UDI format"),
    ("(01)00884838000018(17)2612", "bad UDI format"),
    ("00884838000018", "bad UDI format"),
    ("(01)00884838000018(21)a b(c)", "bad UDI format"),
    ("", "bad UDI format"),
])
def test_bad_udis(udi: str, words: str) -> None:
    refused(DeviceRequest, {**DEVICE, "udi": udi}, words)


@pytest.mark.parametrize("serial", ["", " SN1", "SN 1", "SN\n1", "-SN", "x" * 65, "SN;DROP"])
def test_bad_serial_numbers(serial: str) -> None:
    refused(DeviceRequest, {**DEVICE, "serial_number": serial}, "serial")


def test_a_device_has_a_port_or_a_ble_address() -> None:
    ok = DeviceRequest.model_validate({**DEVICE, "ble_address": "aa:bb:cc:dd:ee:0f"})
    assert ok.ble_address == "AA:BB:CC:DD:EE:0F"
    refused(DeviceRequest, {**DEVICE, "ble_address": "AA:BB:CC:DD:EE"}, "bad BLE address")
    refused(DeviceRequest, {**DEVICE, "port": "/dev/ttyUSB0", "ble_address": "AA:BB:CC:DD:EE:FF"},
            "not both")
    refused(DeviceUpdate, {"port": "/dev/tty USB0"}, "port")
    refused(DeviceRequest, {**DEVICE, "manufacturer": "Ac\x00me"}, "manufacturer")
    refused(DeviceRequest, {**DEVICE, "driver": "WWMON"}, "driver")
    refused(DeviceRequest, {**DEVICE, "colour": "red"}, "Extra inputs are not permitted")


@pytest.mark.parametrize(("zone", "words"), [
    ("Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ("../etc/passwd", "time_zone"),
    ("Europe", "unknown time zone"),
])
def test_unknown_time_zones(zone: str, words: str) -> None:
    refused(UnitRequest, {"site": "s", "id": "u", "time_zone": zone}, words)


def test_scoring_systems_and_generations() -> None:
    unit = UnitRequest.model_validate({"site": "s", "id": "u", "time_zone": "Europe/London",
                                       "scoring_system": "news2", "generation": "demo"})
    assert unit.scoring_system == "news2"
    refused(UnitRequest, {"site": "s", "id": "u", "time_zone": "UTC", "scoring_system": "pews"},
            "scoring_system")
    refused(UnitRequest, {"site": "s/x", "id": "u", "time_zone": "UTC"}, "site")


def test_patients_are_a_pseudonym_and_a_date_of_birth_only() -> None:
    refused(PatientRequest, {"id": "Alice Smith", "dob": "2020-01-01"}, "id")
    refused(PatientRequest, {"id": "P-1234", "dob": "2020-01-01", "name": "Alice"},
            "Extra inputs")
    refused(PatientRequest, {"id": "P-1234", "dob": "1850-01-01"}, "dob")


@pytest.mark.parametrize(("when", "words"), [
    ("2025-06-01T14:02:00", "timezone"),
    ("0001-01-01T00:00:00+14:00", "between 1970 and 3000"),
    ("9999-12-31T23:59:59-12:00", "between 1970 and 3000"),
    ("yesterday", "datetime"),
])
def test_times_carry_an_offset_and_are_plausible(when: str, words: str) -> None:
    refused(TimeRequest, {"time": when}, words)
    assert TimeRequest.model_validate({"time": "2025-06-01T14:02:00+08:00"}).time is not None
