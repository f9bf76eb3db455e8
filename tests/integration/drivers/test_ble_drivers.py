"""Every BLE driver against a bumble GATT peripheral on an in-process virtual link.

The peripheral simulator, the driver's supervisor and bumble share the test's event loop
(``LocalLink`` is not thread-safe), so the driver runs with ``run_async()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from bumble.link import LocalLink

from device_sims.ble_peripherals import KINDS, BlePeripheralSim
from device_sims.scenarios import Scenario
from edge_agent.ble.bumble_backend import BumbleCentral
from edge_agent.ble.central import BleCentral
from edge_agent.ble.driver import BleDriver
from edge_agent.config import DeviceSection
from servicekit.backoff import Backoff
from servicekit.runner import StopFlag
from tests.helpers.wait import until
from tests.integration.drivers.conftest import Capture, utcnow
from wardwire.models import DeviceState

pytestmark = pytest.mark.anyio

PERIPHERAL = "F0:F0:F0:F0:F0:01"
CENTRAL = "F0:F0:F0:F0:F0:02"
EXPECTED = {
    "heart_rate": {"HR"},
    "pulse_oximeter": {"SPO2", "PR", "PI"},
    "thermometer": {"TEMP"},
    "blood_pressure": {"NIBP_SYS", "NIBP_DIA", "NIBP_MEAN", "PR"},
}


def local_central(link: LocalLink) -> Callable[[], Awaitable[BleCentral]]:
    async def factory() -> BleCentral:
        return await BumbleCentral.on_local_link(link, CENTRAL)

    return factory


@asynccontextmanager
async def ble_pair(
    kind: str, capture: Capture, **sim_kw: object
) -> AsyncIterator[tuple[BlePeripheralSim, BleDriver]]:
    link = LocalLink()
    sim = BlePeripheralSim.on_local_link(
        kind, link, PERIPHERAL, Scenario("stable", seed=7), period_s=0.02, **sim_kw
    )
    await sim.start()
    dev = DeviceSection(id=f"ble-{kind}", driver=f"ble_{kind}", ble_address=PERIPHERAL)
    drv = BleDriver(
        dev,
        capture,
        utcnow,
        StopFlag(),
        backoff=Backoff(initial_s=0.02, cap_s=0.2),
        central_factory=local_central(link),
        connect_timeout_s=2.0,
    )
    task = asyncio.create_task(drv.run_async())
    try:
        yield sim, drv
    finally:
        drv.stop.set()
        await asyncio.wait_for(task, 5)
        await sim.aclose()


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_ble_driver_decodes_its_peripheral(kind: str, capture: Capture) -> None:
    async with ble_pair(kind, capture) as (_sim, drv):
        await until(lambda: {r.code for r in capture.readings()} >= EXPECTED[kind])
        await until(lambda: drv.health.battery_pct == 87)
        assert drv.health.state is DeviceState.CONNECTED
    assert drv.health.frames_rejected == 0
    if kind == "thermometer":
        assert all(36 < r.value < 38 for r in capture.readings("TEMP"))


async def test_ble_peripheral_disappears_and_comes_back(capture: Capture) -> None:
    async with ble_pair("heart_rate", capture) as (sim, drv):
        await until(lambda: len(capture.readings("HR")) >= 2)
        await sim.vanish()
        await until(lambda: drv.health.state is DeviceState.DISCONNECTED)
        await until(lambda: "not advertising" in drv.health.detail)
        seen = len(capture.readings("HR"))
        await sim.reappear()
        await until(lambda: len(capture.readings("HR")) >= seen + 2)
        await until(lambda: drv.health.state is DeviceState.CONNECTED)
        assert drv.health.reconnects >= 1


async def test_low_battery_is_reported(capture: Capture) -> None:
    async with ble_pair("pulse_oximeter", capture, battery_pct=12) as (sim, drv):
        await until(lambda: len(capture.readings("SPO2")) >= 1)
        await until(lambda: drv.health.state is DeviceState.LOW_BATTERY)
        await sim.set_battery(90)
        await until(lambda: drv.health.state is DeviceState.CONNECTED)


async def test_scan_lists_address_name_and_services() -> None:
    link = LocalLink()
    sim = BlePeripheralSim.on_local_link("thermometer", link, PERIPHERAL, Scenario("stable"))
    await sim.start()
    central = await BumbleCentral.on_local_link(link, CENTRAL)
    try:
        found = await central.scan(0.3)
        filtered = await central.scan(0.3, service_uuid="180D")
    finally:
        await central.aclose()
        await sim.aclose()
    assert [(a.address, a.name, a.service_uuids) for a in found] == [
        (PERIPHERAL, "WW-thermometer", ("1809", "180F"))
    ]
    assert filtered == []
