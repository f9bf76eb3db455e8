"""Plain functions behind ``wardwatch edge drivers|scan`` and ``wardwatch sim serial|ble``.

The CLI module mounts these; they take plain arguments, return JSON-able data or block until
interrupted, and import BLE code only when BLE is asked for.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
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


def run_serial_sim(
    driver: str,
    link: Path,
    *,
    scenario: str = "stable",
    seed: int = 0,
    period_s: float | None = None,
    device_id: str = "sim-serial-1",
) -> None:
    """A simulated serial device speaking ``driver``'s protocol on a pty, until SIGINT/SIGTERM.

    Prints the path to open, then serves (see ``device_sims.serial_devices``).
    """
    from device_sims.scenarios import Scenario
    from device_sims.serial_devices import SERIAL_SIMS
    from wardwatch.devstack import wait_for_stop_signal

    sim = SERIAL_SIMS[driver](device_id, Scenario(scenario, seed=seed), link, period_s=period_s)
    print(f"{device_id}: {driver} on {sim.open()} (Ctrl-C to stop)", flush=True)
    sim.start()
    try:
        wait_for_stop_signal()
    finally:
        sim.close()


def run_ble_sim(
    kind: str,
    transport: str,
    *,
    address: str = "F0:F0:F0:F0:F0:01",
    scenario: str = "stable",
    seed: int = 0,
    period_s: float = 1.0,
) -> None:
    """A simulated BLE device (``heart_rate``, ``pulse_oximeter``, ``thermometer``,
    ``blood_pressure``) on a bumble HCI transport, until SIGINT/SIGTERM."""
    from device_sims.ble_peripherals import main

    main(
        [
            kind,
            "--transport",
            transport,
            "--address",
            address,
            "--scenario",
            scenario,
            "--seed",
            str(seed),
            "--period",
            str(period_s),
        ]
    )
