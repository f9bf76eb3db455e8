"""The small BLE central interface the drivers use, and how a backend is chosen.

Two backends implement :class:`BleCentral`: ``BumbleCentral`` (a software host over any bumble
HCI transport: a USB dongle, ``tcp-client:host:port`` to ``bumble.apps.controllers``, or an
in-process ``LocalLink`` in tests) and ``BleakCentral`` (the OS stack: BlueZ, CoreBluetooth,
WinRT). Both are imported lazily: a gateway without BLE never imports either, and one without
bleak can still use bumble.

Backend spec (the ``port`` of a BLE device section, and ``--ble-transport`` of ``scan``)::

    bumble:<bumble transport>      e.g. bumble:tcp-client:127.0.0.1:1234, bumble:usb:0
    bleak                          the OS default adapter
    bleak:<adapter>                e.g. bleak:hci1 (BlueZ)

Errors are translated at the boundary: failure to open the adapter or to connect raises
``DriverUnavailable``, a failed GATT operation on a live link ``LinkLost``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge_agent.links import DriverMisconfigured

#: service UUID (4 hex digits, upper case) -> characteristic UUID -> properties
#: ("read", "notify", "indicate", ...). UUIDs not on the Bluetooth base are kept in 128-bit form.
GattTree = dict[str, dict[str, frozenset[str]]]


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One device seen while scanning."""

    address: str
    name: str | None
    service_uuids: tuple[str, ...]
    rssi: int | None = None


class BleCentral(Protocol):
    """One connection at a time to a peripheral (as in bleak: a client per device)."""

    async def scan(
        self, timeout_s: float, service_uuid: str | None = None
    ) -> list[Advertisement]: ...

    async def connect(self, address: str, timeout_s: float) -> None:
        """Connect and discover services. Raises ``DriverUnavailable``."""
        ...

    async def discover(self) -> GattTree:
        """The connected peer's services and characteristics."""
        ...

    async def subscribe(self, char_uuid: str, callback: Callable[[bytes], None]) -> None:
        """Enable notifications (or indications, if that is all it has) for a characteristic."""
        ...

    async def read(self, char_uuid: str) -> bytes: ...

    async def disconnect(self) -> None: ...

    def on_disconnect(self, callback: Callable[[str], None]) -> None:
        """Set the callback for the connection dropping (not on our own ``disconnect``).

        One callback at a time: each session installs its own before connecting.
        """
        ...

    async def aclose(self) -> None:
        """Disconnect and release the adapter/transport."""
        ...


def parse_backend(spec: str | None) -> tuple[str, str | None]:
    """Split a backend spec into ``("bumble"|"bleak", argument)``."""
    if spec is None or spec == "bleak":
        return "bleak", None
    kind, sep, arg = spec.partition(":")
    if kind in ("bumble", "bleak") and sep and arg:
        return kind, arg
    raise DriverMisconfigured(
        f"BLE backend {spec!r}: expected 'bumble:<transport>', 'bleak' or 'bleak:<adapter>'"
    )


async def open_central(spec: str | None) -> BleCentral:
    """Open the central for a backend spec (see the module docstring), importing it lazily."""
    kind, arg = parse_backend(spec)
    if kind == "bumble":
        assert arg is not None
        from edge_agent.ble.bumble_backend import BumbleCentral

        return await BumbleCentral.open(arg)
    from edge_agent.ble.bleak_backend import BleakCentral

    return BleakCentral(adapter=arg)
