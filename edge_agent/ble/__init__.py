"""BLE health devices: a small central interface, lazy backends, GATT profiles, the driver.

Importing this package imports no BLE stack; ``open_central`` and ``edge_agent.ble.driver``
import bumble or bleak only when a BLE device is actually configured.
"""

from edge_agent.ble.central import Advertisement, BleCentral, GattTree, open_central, parse_backend
from edge_agent.ble.profiles import (
    BLOOD_PRESSURE,
    HEART_RATE,
    PULSE_OXIMETER,
    THERMOMETER,
    GattProfile,
)

__all__ = [
    "BLOOD_PRESSURE",
    "HEART_RATE",
    "PULSE_OXIMETER",
    "THERMOMETER",
    "Advertisement",
    "BleCentral",
    "GattProfile",
    "GattTree",
    "open_central",
    "parse_backend",
]
