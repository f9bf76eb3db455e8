"""What ``edge run`` would refuse, found before it runs (``edge check-config`` and start-up).

Pure apart from reading the password file: a list of problems, each naming the config key path
(``devices[2].driver: …``), so a biomedical engineer fixes the file rather than reading a
device status on the ward. The config model (``edge_agent.config``) checks shapes and ranges; this
checks what only the edge knows: which drivers exist and what each transport needs.
"""

from __future__ import annotations

from edge_agent.config import EdgeConfig
from edge_agent.drivers import DRIVERS, UnknownDriver, transport_of


def preflight(cfg: EdgeConfig) -> list[str]:
    """Problems that would make the agent refuse a device or the broker at start."""
    problems: list[str] = []
    for i, dev in enumerate(cfg.devices):
        where = f"devices[{i}]"
        try:
            transport = transport_of(dev.driver)
        except UnknownDriver:
            known = ", ".join(sorted(DRIVERS))
            problems.append(f"{where}.driver: unknown driver {dev.driver!r} (known: {known})")
            continue
        if transport == "ble" and not dev.ble_address:
            problems.append(f"{where}.ble_address: driver {dev.driver!r} is BLE and needs one")
        if transport == "serial" and not dev.port:
            problems.append(f"{where}.port: driver {dev.driver!r} is serial and needs one")
    pw = cfg.broker.password_file
    if pw is not None:
        try:
            if not pw.read_text(encoding="utf-8").strip():
                problems.append(f"broker.password_file: {pw} is empty")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"broker.password_file: cannot read {pw}: {exc}")
    return problems
