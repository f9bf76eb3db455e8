"""Simulated BLE health devices: bumble GATT servers for HR, PLX, thermometer, cuff (+ Battery).

Each peripheral advertises its name and 16-bit service UUIDs and sends the values of a seeded
``Scenario`` encoded by the ``edge_agent.protocols.gatt_*`` encoders (the decoders' inverses):

=================  =======  ======================================  ===========
kind               service  characteristic                          delivery
=================  =======  ======================================  ===========
heart_rate         180D     2A37 Heart Rate Measurement             notify
pulse_oximeter     1822     2A5F PLX Continuous (+ 2A60 features)   notify
thermometer        1809     2A1C Temperature Measurement            indicate
blood_pressure     1810     2A35 Blood Pressure Measurement (+2A49) indicate
(all)              180F     2A19 Battery Level                      read+notify
=================  =======  ======================================  ===========

It runs on an in-process ``LocalLink`` (tests) or any bumble HCI transport, e.g. the first port
of ``python -m bumble.apps.controllers tcp-server:127.0.0.1:P1 tcp-server:127.0.0.1:P2``:
``python -m device_sims.ble_peripherals heart_rate --transport tcp-client:127.0.0.1:P1``.

``vanish()`` drops every connection and stops advertising (walked out of range); ``reappear()``
advertises again. The scenarios carry no blood pressure: the cuff sends a plainly simulated
pressure that falls with the scenario's deterioration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bumble import data_types
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData, BaseBumbleError
from bumble.device import Device
from bumble.gatt import Characteristic, Service
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink

from device_sims.scenarios import Scenario
from edge_agent.protocols.gatt import BATTERY_LEVEL, BATTERY_SERVICE, encode_battery_level
from edge_agent.protocols.gatt_bps import (
    BLOOD_PRESSURE_MEASUREMENT,
    BLOOD_PRESSURE_SERVICE,
    BloodPressureMeasurement,
    encode_blood_pressure_measurement,
)
from edge_agent.protocols.gatt_hrs import (
    HEART_RATE_MEASUREMENT,
    HEART_RATE_SERVICE,
    HeartRateMeasurement,
    encode_heart_rate_measurement,
)
from edge_agent.protocols.gatt_hts import (
    HEALTH_THERMOMETER_SERVICE,
    TEMPERATURE_MEASUREMENT,
    TemperatureMeasurement,
    TemperatureType,
    encode_temperature_measurement,
)
from edge_agent.protocols.gatt_plx import (
    PLX_CONTINUOUS_MEASUREMENT,
    PULSE_OXIMETER_SERVICE,
    PlxMeasurement,
    encode_plx_continuous,
)

log = logging.getLogger(__name__)

PLX_FEATURES = "2A60"
BLOOD_PRESSURE_FEATURE = "2A49"
#: Simulated cuff: (systolic, diastolic) mmHg when stable and when fully deteriorated.
SIM_BP_STABLE = (95.0, 60.0)
SIM_BP_DETERIORATED = (70.0, 40.0)
SIM_PI = 2.5

_N = Characteristic.Properties.NOTIFY
_I = Characteristic.Properties.INDICATE
_R = Characteristic.Properties.READ
_READABLE = Characteristic.Permissions.READABLE


def _heart_rate(v: dict[str, float], p: float) -> bytes:
    del p
    return encode_heart_rate_measurement(
        HeartRateMeasurement(round(v["HR"]), contact_detected=True)
    )


def _plx(v: dict[str, float], p: float) -> bytes:
    del p
    return encode_plx_continuous(
        PlxMeasurement(v["SPO2"], float(round(v["HR"])), pulse_amplitude_index=SIM_PI)
    )


def _temperature(v: dict[str, float], p: float) -> bytes:
    del p
    return encode_temperature_measurement(
        TemperatureMeasurement(v["TEMP"], temperature_type=TemperatureType.TYMPANUM)
    )


def _blood_pressure(v: dict[str, float], p: float) -> bytes:
    sys_ = SIM_BP_STABLE[0] + (SIM_BP_DETERIORATED[0] - SIM_BP_STABLE[0]) * p
    dia = SIM_BP_STABLE[1] + (SIM_BP_DETERIORATED[1] - SIM_BP_STABLE[1]) * p
    mean = round(dia + (sys_ - dia) / 3)
    return encode_blood_pressure_measurement(
        BloodPressureMeasurement(
            float(round(sys_)), float(round(dia)), float(mean), pulse_rate=float(round(v["HR"]))
        )
    )


@dataclass(frozen=True)
class PeripheralKind:
    """One simulated device type: its service, measurement characteristic and encoder."""

    service: str
    measurement: str
    delivery: Characteristic.Properties
    encode: Callable[[dict[str, float], float], bytes]
    features: str | None = None  # a mandatory read-only "features" characteristic (uint16)


KINDS: dict[str, PeripheralKind] = {
    "heart_rate": PeripheralKind(HEART_RATE_SERVICE, HEART_RATE_MEASUREMENT, _N, _heart_rate),
    "pulse_oximeter": PeripheralKind(
        PULSE_OXIMETER_SERVICE, PLX_CONTINUOUS_MEASUREMENT, _N, _plx, PLX_FEATURES
    ),
    "thermometer": PeripheralKind(
        HEALTH_THERMOMETER_SERVICE, TEMPERATURE_MEASUREMENT, _I, _temperature
    ),
    "blood_pressure": PeripheralKind(
        BLOOD_PRESSURE_SERVICE,
        BLOOD_PRESSURE_MEASUREMENT,
        _I,
        _blood_pressure,
        BLOOD_PRESSURE_FEATURE,
    ),
}
"""Simulator kind -> what it serves. The matching drivers are ``ble_<kind>``."""


class BlePeripheralSim:
    """A bumble ``Device`` serving one kind's GATT service plus Battery."""

    def __init__(
        self,
        kind: str,
        device: Device,
        scenario: Scenario,
        *,
        period_s: float = 1.0,
        battery_pct: int = 87,
        closer: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.kind = KINDS[kind]
        self.device = device
        self.scenario = scenario
        self.period_s = period_s
        self.sent = 0
        self.send_errors = 0
        self._closer = closer
        self._task: asyncio.Task[None] | None = None
        self.measurement = Characteristic(self.kind.measurement, self.kind.delivery, _READABLE, b"")
        chars = [self.measurement]
        if self.kind.features is not None:
            chars.append(Characteristic(self.kind.features, _R, _READABLE, b"\x00\x00"))
        self.battery = Characteristic(
            BATTERY_LEVEL, _R | _N, _READABLE, encode_battery_level(battery_pct)
        )
        device.add_services(
            [Service(self.kind.service, chars), Service(BATTERY_SERVICE, [self.battery])]
        )
        device.advertising_data = bytes(
            AdvertisingData(
                [
                    data_types.Flags(
                        AdvertisingData.Flags.LE_GENERAL_DISCOVERABLE_MODE
                        | AdvertisingData.Flags.BR_EDR_NOT_SUPPORTED
                    ),
                    data_types.CompleteLocalName(device.name),
                    data_types.IncompleteListOf16BitServiceUUIDs(
                        [UUID(self.kind.service), UUID(BATTERY_SERVICE)]
                    ),
                ]
            )
        )

    @property
    def address(self) -> str:
        return self.device.random_address.to_string(with_type_qualifier=False).upper()

    @classmethod
    def on_local_link(
        cls, kind: str, link: LocalLink, address: str, scenario: Scenario, **kw: object
    ) -> BlePeripheralSim:
        """A peripheral with its own virtual controller on an in-process ``LocalLink``."""
        controller = Controller(f"sim-{address}", link=link, public_address=address)
        device = Device(
            name=f"WW-{kind}",
            address=Address(address),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        return cls(kind, device, scenario, **kw)  # type: ignore[arg-type]

    @classmethod
    async def over_transport(
        cls, kind: str, transport_spec: str, address: str, scenario: Scenario, **kw: object
    ) -> BlePeripheralSim:
        """A peripheral on a bumble HCI transport (``tcp-client:127.0.0.1:P1``...)."""
        transport = await open_transport(transport_spec)
        device = Device.with_hci(f"WW-{kind}", Address(address), transport.source, transport.sink)
        return cls(kind, device, scenario, closer=transport.close, **kw)  # type: ignore[arg-type]

    async def start(self) -> None:
        """Power on, advertise, and send a value every ``period_s``."""
        await self.device.power_on()
        await self.reappear()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        t0 = time.monotonic()
        while True:
            t = time.monotonic() - t0
            value = self.kind.encode(self.scenario.values(t), self.scenario.progress(t))
            try:
                if self.kind.delivery & _I:
                    await self.device.indicate_subscribers(self.measurement, value)
                else:
                    await self.device.notify_subscribers(self.measurement, value)
                self.sent += 1
            except (BaseBumbleError, OSError, TimeoutError):
                self.send_errors += 1  # a subscriber left mid-indication; keep serving
            await asyncio.sleep(self.period_s)  # the device's own measurement period

    async def set_battery(self, percent: int) -> None:
        """Change the battery level and notify subscribers."""
        value = encode_battery_level(percent)
        self.battery.value = value
        await self.device.notify_subscribers(self.battery, value)

    async def vanish(self) -> None:
        """Drop every connection and stop advertising (out of range, switched off)."""
        with contextlib.suppress(BaseBumbleError):
            await self.device.stop_advertising()
        for conn in list(self.device.connections.values()):
            with contextlib.suppress(BaseBumbleError):
                await conn.disconnect()

    async def reappear(self) -> None:
        await self.device.start_advertising(auto_restart=True, advertising_interval_min=20.0)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.vanish()
        with contextlib.suppress(BaseBumbleError):
            await self.device.power_off()
        if self._closer is not None:
            await self._closer()


async def serve(
    kind: str,
    transport_spec: str,
    address: str,
    scenario: Scenario,
    *,
    period_s: float = 1.0,
    ready: Callable[[BlePeripheralSim], None] | None = None,
) -> None:
    """Run one peripheral on ``transport_spec`` until cancelled (or SIGINT/SIGTERM)."""
    sim = await BlePeripheralSim.over_transport(
        kind, transport_spec, address, scenario, period_s=period_s
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await sim.start()
        if ready is not None:
            ready(sim)
        await stop.wait()
    finally:
        await sim.aclose()


def main(argv: list[str] | None = None) -> None:
    """``python -m device_sims.ble_peripherals KIND --transport SPEC [--address A]``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(KINDS))
    ap.add_argument("--transport", required=True, help="bumble HCI transport spec")
    ap.add_argument("--address", default="F0:F0:F0:F0:F0:01")
    ap.add_argument("--scenario", default="stable")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--period", type=float, default=1.0, help="seconds between measurements")
    args = ap.parse_args(argv)

    def ready(sim: BlePeripheralSim) -> None:
        print(f"ready {args.kind} {sim.address} on {args.transport}", flush=True)

    asyncio.run(
        serve(
            args.kind,
            args.transport,
            args.address,
            Scenario(args.scenario, seed=args.seed),
            period_s=args.period,
            ready=ready,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
