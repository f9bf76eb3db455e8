"""Plain functions behind ``wardwatch edge drivers|scan``.

The CLI module mounts these; they take plain arguments, return JSON-able data or block until
interrupted, and import BLE code only when BLE is asked for.
"""

from __future__ import annotations

import asyncio
from typing import Any

from edge_agent.drivers import DRIVERS, SERIAL_DEFAULT_BAUDRATE, load_attribute


def drivers_info() -> list[dict[str, Any]]:
    """Every registered driver: ``name``, ``transport``, ``module``, and ``baudrate`` (serial)
    or ``services`` (BLE: 16-bit service UUIDs it decodes, e.g. ``["180D", "180F"]``)."""
    rows: list[dict[str, Any]] = []
    for name, (module, _, transport) in sorted(DRIVERS.items()):
        row: dict[str, Any] = {"name": name, "transport": transport, "module": module}
        if transport == "ble":
            row["services"] = list(load_attribute(name).services)
        else:
            row["baudrate"] = SERIAL_DEFAULT_BAUDRATE.get(name)
        rows.append(row)
    return rows


def scan(timeout_s: float = 5.0, ble_transport: str | None = None) -> dict[str, Any]:
    """Serial ports, and BLE devices advertising within ``timeout_s``.

    Args:
        timeout_s: How long to listen for advertisements.
        ble_transport: The BLE backend spec (``bumble:tcp-client:127.0.0.1:P``, ``bleak``,
            ``bleak:hci1``); None means the OS stack via bleak.

    Returns:
        ``{"serial": [...], "ble": [...], "ble_error": str | None}``: a BLE failure (no
        adapter, no bleak) is reported beside the serial ports rather than hiding them.
    """
    from edge_agent.links import DriverError
    from edge_agent.scan import ble_devices, serial_ports

    result: dict[str, Any] = {"serial": serial_ports(), "ble": [], "ble_error": None}
    try:
        result["ble"] = asyncio.run(ble_devices(timeout_s, ble_transport))
    except DriverError as exc:
        result["ble_error"] = str(exc)
    return result
