"""What is plugged in and what is in range: serial ports and advertising BLE devices.

Backs ``wardwatch edge scan``: an installer runs it on a gateway to find the port or address
to put in the device section. BLE results list the advertised 16-bit service UUIDs and the
drivers that decode them.
"""

from __future__ import annotations

from typing import Any

from serial.tools import list_ports

from edge_agent.ble.central import Advertisement, open_central
from edge_agent.drivers import DRIVERS, load_attribute


def serial_ports() -> list[dict[str, Any]]:
    """The serial ports the OS knows (USB adapters show vendor/product ids)."""
    return [
        {
            "device": p.device,
            "description": p.description,
            "hwid": p.hwid,
            "vid": p.vid,
            "pid": p.pid,
            "serial_number": p.serial_number,
        }
        for p in sorted(list_ports.comports(), key=lambda p: p.device)
    ]


def drivers_for_services(uuids: tuple[str, ...]) -> list[str]:
    """The BLE drivers whose primary service is among ``uuids``."""
    out = []
    for name, (_, _, transport) in sorted(DRIVERS.items()):
        if transport == "ble" and load_attribute(name).service in uuids:
            out.append(name)
    return out


def advertisement_row(adv: Advertisement) -> dict[str, Any]:
    return {
        "address": adv.address,
        "name": adv.name,
        "services": list(adv.service_uuids),
        "rssi": adv.rssi,
        "drivers": drivers_for_services(adv.service_uuids),
    }


async def ble_devices(timeout_s: float, backend: str | None) -> list[dict[str, Any]]:
    """Scan for ``timeout_s`` with the backend spec (``bumble:<transport>`` or ``bleak``)."""
    central = await open_central(backend)
    try:
        found = await central.scan(timeout_s)
    finally:
        await central.aclose()
    return [advertisement_row(a) for a in sorted(found, key=lambda a: a.address)]
