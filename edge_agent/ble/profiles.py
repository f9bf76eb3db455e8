"""What each BLE driver subscribes to: one GATT service, plus Battery when the device has it.

Pure data over ``edge_agent.protocols.gatt`` (no BLE stack imported), so the registry, the CLI
and the docs can list drivers and services on a gateway without bumble or bleak.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.protocols.gatt import (
    BATTERY_LEVEL,
    BATTERY_SERVICE,
    SERVICES,
    Characteristic,
)
from edge_agent.protocols.gatt_bps import BLOOD_PRESSURE_SERVICE
from edge_agent.protocols.gatt_hrs import HEART_RATE_SERVICE
from edge_agent.protocols.gatt_hts import HEALTH_THERMOMETER_SERVICE
from edge_agent.protocols.gatt_plx import PULSE_OXIMETER_SERVICE


@dataclass(frozen=True, slots=True)
class GattProfile:
    """One BLE driver's GATT contract.

    Attributes:
        service: The 16-bit service UUID the device must have (and the scan filter).
        silence_s: Seconds without a value before the link counts as silent, for services
            that stream (HR, PLX continuous); None for services that send a value only when
            a measurement is taken (a thermometer, a cuff), where silence is normal.
    """

    service: str
    silence_s: float | None

    @property
    def characteristics(self) -> tuple[Characteristic, ...]:
        """The characteristics of :attr:`service` the driver decodes."""
        return SERVICES[self.service]

    @property
    def services(self) -> tuple[str, ...]:
        """Every 16-bit service UUID the driver decodes: its own, then Battery."""
        return (self.service, BATTERY_SERVICE)


HEART_RATE = GattProfile(HEART_RATE_SERVICE, silence_s=10.0)
PULSE_OXIMETER = GattProfile(PULSE_OXIMETER_SERVICE, silence_s=10.0)
THERMOMETER = GattProfile(HEALTH_THERMOMETER_SERVICE, silence_s=None)
BLOOD_PRESSURE = GattProfile(BLOOD_PRESSURE_SERVICE, silence_s=None)

BATTERY = SERVICES[BATTERY_SERVICE][0]
assert BATTERY.uuid == BATTERY_LEVEL
