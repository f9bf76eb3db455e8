"""``BleCentral`` over bleak: the operating system's BLE stack (BlueZ, CoreBluetooth, WinRT).

bleak is imported when a ``BleakCentral`` first touches the radio, never at module import,
so this module can be imported (and its translation logic tested) where bleak or the OS stack
is absent. On the CI machine there is no D-Bus and no kernel Bluetooth: the BLE tests use
``BumbleCentral``; this backend is for the ward.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edge_agent.ble.central import Advertisement, GattTree
from edge_agent.links import DriverUnavailable, LinkLost
from edge_agent.protocols.gatt import short_uuid


def _bleak() -> Any:
    try:
        import bleak
    except ImportError as exc:
        raise DriverUnavailable("bleak is not installed (pip install bleak)") from exc
    return bleak


def _short(uuid: str) -> str:
    return short_uuid(uuid) or uuid.lower()


def _full(uuid: str) -> str:
    short = short_uuid(uuid)
    return f"0000{short.lower()}-0000-1000-8000-00805f9b34fb" if short else uuid


class BleakCentral:
    """One ``BleakClient`` at a time (bleak's own model: a client per peripheral)."""

    def __init__(self, adapter: str | None = None) -> None:
        self._adapter = adapter
        self._client: Any = None
        self._on_disconnect: Callable[[str], None] | None = None
        self._closing = False

    def _kwargs(self) -> dict[str, Any]:
        return {"adapter": self._adapter} if self._adapter else {}

    async def scan(self, timeout_s: float, service_uuid: str | None = None) -> list[Advertisement]:
        bleak = _bleak()
        uuids = [_full(service_uuid)] if service_uuid else None
        try:
            found = await bleak.BleakScanner.discover(
                timeout=timeout_s, return_adv=True, service_uuids=uuids, **self._kwargs()
            )
        except (OSError, bleak.exc.BleakError) as exc:
            raise DriverUnavailable(f"bleak scan: {exc!r}") from exc
        return [
            Advertisement(
                dev.address.upper(),
                adv.local_name or dev.name,
                tuple(_short(u) for u in adv.service_uuids),
                adv.rssi,
            )
            for dev, adv in found.values()
        ]

    async def connect(self, address: str, timeout_s: float) -> None:
        bleak = _bleak()

        def dropped(_client: Any) -> None:
            if not self._closing and self._on_disconnect is not None:
                self._on_disconnect("disconnected")

        client = bleak.BleakClient(
            address, disconnected_callback=dropped, timeout=timeout_s, **self._kwargs()
        )
        try:
            await client.connect()
        except (OSError, TimeoutError, bleak.exc.BleakError) as exc:
            raise DriverUnavailable(f"connect to {address}: {exc!r}") from exc
        self._client = client

    def _require(self) -> Any:
        if self._client is None:
            raise LinkLost("not connected")
        return self._client

    async def discover(self) -> GattTree:
        tree: GattTree = {}
        for service in self._require().services:
            chars = tree.setdefault(_short(service.uuid), {})
            for ch in service.characteristics:
                chars[_short(ch.uuid)] = frozenset(ch.properties)
        return tree

    async def subscribe(self, char_uuid: str, callback: Callable[[bytes], None]) -> None:
        bleak = _bleak()
        try:
            await self._require().start_notify(
                _full(char_uuid), lambda _ch, data: callback(bytes(data))
            )
        except (OSError, bleak.exc.BleakError) as exc:
            raise LinkLost(f"subscribe {char_uuid}: {exc!r}") from exc

    async def read(self, char_uuid: str) -> bytes:
        bleak = _bleak()
        try:
            return bytes(await self._require().read_gatt_char(_full(char_uuid)))
        except (OSError, bleak.exc.BleakError) as exc:
            raise LinkLost(f"read {char_uuid}: {exc!r}") from exc

    def on_disconnect(self, callback: Callable[[str], None]) -> None:
        self._on_disconnect = callback

    async def disconnect(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        bleak = _bleak()
        self._closing = True
        try:
            await client.disconnect()
        except (OSError, bleak.exc.BleakError):
            pass  # already gone: the link is down either way, which is what we wanted
        finally:
            self._closing = False

    async def aclose(self) -> None:
        await self.disconnect()
