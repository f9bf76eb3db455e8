"""Driver registry, lazy imports, the CLI's driver table, backend specs, the bleak backend."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from edge_agent.ble.bleak_backend import BleakCentral
from edge_agent.ble.central import parse_backend
from edge_agent.config import DeviceSection
from edge_agent.drivers import DRIVERS, SerialDriver, load_parser, make_driver
from edge_agent.links import DriverMisconfigured, DriverUnavailable, UnknownDriver
from edge_agent.protocols.masimo_ascii import MasimoAscii1Parser
from edge_agent.protocols.nonin_oem import NoninFormat2Parser
from edge_agent.tools import drivers_info
from servicekit.runner import StopFlag


def test_serial_parsers_load_by_name() -> None:
    assert isinstance(load_parser("masimo_ascii1"), MasimoAscii1Parser)
    assert isinstance(load_parser("nonin_format2"), NoninFormat2Parser)
    with pytest.raises(UnknownDriver, match="known: "):
        load_parser("nope")
    with pytest.raises(UnknownDriver, match="not a byte-stream"):
        load_parser("ble_heart_rate")


def test_drivers_info_lists_transport_and_ble_services() -> None:
    rows = {r["name"]: r for r in drivers_info()}
    assert set(rows) == set(DRIVERS)
    assert rows["masimo_ascii1"]["transport"] == "serial"
    assert rows["masimo_ascii1"]["baudrate"] == 9600
    assert rows["ble_heart_rate"] == {
        "name": "ble_heart_rate",
        "transport": "ble",
        "module": "edge_agent.ble.profiles",
        "services": ["180D", "180F"],
    }
    assert rows["ble_pulse_oximeter"]["services"][0] == "1822"
    assert rows["ble_thermometer"]["services"][0] == "1809"
    assert rows["ble_blood_pressure"]["services"][0] == "1810"


def test_nothing_heavy_is_imported_until_used() -> None:
    code = (
        "import sys\n"
        "from servicekit.runner import StopFlag\n"
        "from datetime import UTC, datetime\n"
        "import edge_agent.drivers as d\n"
        "from edge_agent.tools import drivers_info\n"
        "from edge_agent.config import DeviceSection\n"
        "assert 'edge_agent.protocols.masimo_ascii' not in sys.modules\n"
        "drivers_info()\n"
        "dev = DeviceSection(id='x', driver='ble_heart_rate', ble_address='AA:BB:CC:DD:EE:FF')\n"
        "drv = d.make_driver(dev, print, lambda: datetime.now(UTC), StopFlag())\n"
        "bad = [m for m in ('bumble', 'bleak') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print(type(drv).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "BleDriver"


def test_make_driver_keeps_an_unknown_driver_visible() -> None:
    dev = DeviceSection(id="x", driver="nope", port="/dev/null")
    drv = make_driver(dev, lambda *a: None, lambda: datetime.now(UTC), StopFlag())
    assert isinstance(drv, SerialDriver)  # it will report the error as its status


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, ("bleak", None)),
        ("bleak", ("bleak", None)),
        ("bleak:hci1", ("bleak", "hci1")),
        ("bumble:tcp-client:127.0.0.1:1234", ("bumble", "tcp-client:127.0.0.1:1234")),
    ],
)
def test_backend_specs(spec: str | None, expected: tuple[str, str | None]) -> None:
    assert parse_backend(spec) == expected


@pytest.mark.parametrize("spec", ["/dev/ttyUSB0", "bumble", "bumble:", "usb:0"])
def test_bad_backend_specs_are_configuration_errors(spec: str) -> None:
    with pytest.raises(DriverMisconfigured):
        parse_backend(spec)


def test_bleak_backend_fails_as_unavailable_without_an_os_stack() -> None:
    """Smoke test: bleak is absent here, or present without D-Bus/kernel Bluetooth."""

    async def go() -> None:
        central = BleakCentral()
        with pytest.raises(DriverUnavailable):
            await central.scan(0.1)
        with pytest.raises(DriverUnavailable):
            await central.connect("AA:BB:CC:DD:EE:FF", 0.1)
        await central.aclose()

    asyncio.run(go())
