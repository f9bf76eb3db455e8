"""``BleCentral`` over bumble: a software BLE host on any bumble HCI transport.

Used for the demo and CI (``tcp-client:`` to ``python -m bumble.apps.controllers``, or an
in-process ``LocalLink``) and usable on the ward with a USB dongle (``usb:0``).

Connecting scans first and issues the connection only once the peer is seen advertising. That
is what a central does anyway, and with bumble's virtual controller it is required: a connect
to an address that is not advertising stays pending forever, and cancelling it leaves the
controller refusing every later connect (seen with bumble 0.0.236). If a connect still times
out, the central marks itself ``broken`` and the driver replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData, BaseBumbleError
from bumble.device import Advertisement as BumbleAdvertisement
from bumble.device import Connection, Device, Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink

from edge_agent.ble.central import Advertisement, GattTree
from edge_agent.links import DriverUnavailable, LinkLost
from edge_agent.protocols.gatt import short_uuid

log = logging.getLogger(__name__)

_BUMBLE_ERRORS = (BaseBumbleError, OSError, EOFError, ValueError)
_PROPS = {
    Characteristic.Properties.READ: "read",
    Characteristic.Properties.WRITE: "write",
    Characteristic.Properties.NOTIFY: "notify",
    Characteristic.Properties.INDICATE: "indicate",
}


def _random_static_address() -> str:
    octets = [random.randrange(256) for _ in range(6)]
    octets[0] |= 0xC0  # random static: the two most significant bits are 1
    return ":".join(f"{o:02X}" for o in octets)


def _addr(address: Address) -> str:
    return address.to_string(with_type_qualifier=False).upper()


def _uuid_str(uuid: UUID) -> str:
    text = uuid.to_hex_str()
    return short_uuid(text) or text.lower()


def advertisement_of(adv: BumbleAdvertisement) -> Advertisement:
    """The backend-neutral form of a bumble advertising report."""
    uuids: list[str] = []
    for kind in (
        AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
        AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    ):
        for uuid in adv.data.get(kind) or []:
            text = _uuid_str(uuid)
            if text not in uuids:
                uuids.append(text)
    name = adv.data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or adv.data.get(
        AdvertisingData.SHORTENED_LOCAL_NAME
    )
    return Advertisement(_addr(adv.address), str(name) if name else None, tuple(uuids), adv.rssi)


class BumbleCentral:
    """A bumble ``Device`` used as a central; one connection at a time."""

    def __init__(self, device: Device, closer: Callable[[], Awaitable[None]] | None = None):
        self._device = device
        self._closer = closer
        self._conn: Connection | None = None
        self._peer: Peer | None = None
        self._on_disconnect: Callable[[str], None] | None = None
        self._closing = False
        self.broken = False

    @classmethod
    async def open(cls, transport_spec: str, own_address: str | None = None) -> BumbleCentral:
        """Open a bumble HCI transport (``tcp-client:127.0.0.1:P``, ``usb:0``...).

        Raises:
            DriverUnavailable: The transport cannot be opened or the controller does not answer.
        """
        try:
            transport = await open_transport(transport_spec)
        except _BUMBLE_ERRORS as exc:
            raise DriverUnavailable(f"bumble transport {transport_spec}: {exc}") from exc
        device = Device.with_hci(
            "wardwatch-gw",
            Address(own_address or _random_static_address()),
            transport.source,
            transport.sink,
        )
        central = cls(device, transport.close)
        try:
            async with asyncio.timeout(10):
                await device.power_on()
        except (*_BUMBLE_ERRORS, TimeoutError) as exc:
            await transport.close()
            raise DriverUnavailable(f"bumble controller on {transport_spec}: {exc!r}") from exc
        return central

    @classmethod
    async def on_local_link(cls, link: LocalLink, own_address: str) -> BumbleCentral:
        """A central with its own virtual controller on an in-process ``LocalLink`` (tests)."""
        controller = Controller(f"central-{own_address}", link=link, public_address=own_address)
        device = Device(
            name="wardwatch-gw",
            address=Address(own_address),
            host=Host(controller, AsyncPipeSink(controller)),
        )

        async def detach() -> None:
            with contextlib.suppress(KeyError):
                link.remove_controller(controller)

        central = cls(device, detach)
        await device.power_on()
        return central

    # -- scanning ----------------------------------------------------------------------------
    async def _watch(
        self, until: Callable[[Advertisement], bool] | None, timeout_s: float
    ) -> dict[str, Advertisement]:
        seen: dict[str, Advertisement] = {}
        found = asyncio.Event()

        def on_adv(raw: BumbleAdvertisement) -> None:
            adv = advertisement_of(raw)
            prev = seen.get(adv.address)
            if (
                prev is None
                or (adv.name and not prev.name)
                or len(adv.service_uuids) > len(prev.service_uuids)
            ):
                seen[adv.address] = adv
            if until is not None and until(adv):
                found.set()

        self._device.on("advertisement", on_adv)
        try:
            await self._device.start_scanning(filter_duplicates=False)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await found.wait()
        except _BUMBLE_ERRORS as exc:
            raise DriverUnavailable(f"scan failed: {exc!r}") from exc
        finally:
            self._device.remove_listener("advertisement", on_adv)
            with contextlib.suppress(*_BUMBLE_ERRORS):
                await self._device.stop_scanning()
        return seen

    async def scan(self, timeout_s: float, service_uuid: str | None = None) -> list[Advertisement]:
        seen = await self._watch(None, timeout_s)
        want = short_uuid(service_uuid) if service_uuid else None
        return [a for a in seen.values() if want is None or want in a.service_uuids]

    # -- connection --------------------------------------------------------------------------
    async def connect(self, address: str, timeout_s: float) -> None:
        target = address.upper()
        seen = await self._watch(lambda a: a.address == target, timeout_s)
        if target not in seen:
            raise DriverUnavailable(f"{address} not advertising (scanned {timeout_s:g} s)")
        try:
            async with asyncio.timeout(timeout_s):
                conn = await self._device.connect(Address(target), timeout=None)
        except TimeoutError as exc:
            self.broken = True
            raise DriverUnavailable(f"connect to {address} timed out") from exc
        except _BUMBLE_ERRORS as exc:
            raise DriverUnavailable(f"connect to {address}: {exc!r}") from exc
        self._conn = conn
        conn.on("disconnection", self._disconnected)
        self._peer = Peer(conn)
        try:
            await self._peer.discover_services()
            await self._peer.discover_characteristics()
        except _BUMBLE_ERRORS as exc:
            raise LinkLost(f"GATT discovery on {address}: {exc!r}") from exc

    def _disconnected(self, reason: Any) -> None:
        self._conn = self._peer = None
        if not self._closing and self._on_disconnect is not None:
            self._on_disconnect(f"disconnected (reason {reason})")

    def on_disconnect(self, callback: Callable[[str], None]) -> None:
        self._on_disconnect = callback

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise LinkLost("not connected")
        return self._peer

    async def discover(self) -> GattTree:
        peer = self._require_peer()
        tree: GattTree = {}
        for service in peer.services:
            chars = tree.setdefault(_uuid_str(service.uuid), {})
            for ch in service.characteristics:
                props = frozenset(n for flag, n in _PROPS.items() if ch.properties & flag)
                chars[_uuid_str(ch.uuid)] = props
        return tree

    def _characteristic(self, char_uuid: str) -> CharacteristicProxy[bytes]:
        found = self._require_peer().get_characteristics_by_uuid(UUID(char_uuid))
        if not found:
            raise LinkLost(f"characteristic {char_uuid} not found")
        return found[0]

    async def subscribe(self, char_uuid: str, callback: Callable[[bytes], None]) -> None:
        ch = self._characteristic(char_uuid)
        notify = bool(ch.properties & Characteristic.Properties.NOTIFY)
        try:
            await self._require_peer().subscribe(
                ch, lambda value: callback(bytes(value)), prefer_notify=notify
            )
        except _BUMBLE_ERRORS as exc:
            raise LinkLost(f"subscribe {char_uuid}: {exc!r}") from exc

    async def read(self, char_uuid: str) -> bytes:
        ch = self._characteristic(char_uuid)
        try:
            return bytes(await self._require_peer().read_value(ch))
        except _BUMBLE_ERRORS as exc:
            raise LinkLost(f"read {char_uuid}: {exc!r}") from exc

    async def disconnect(self) -> None:
        conn, self._conn, self._peer = self._conn, None, None
        if conn is not None:
            self._closing = True
            try:
                with contextlib.suppress(*_BUMBLE_ERRORS, TimeoutError):
                    async with asyncio.timeout(2):
                        await conn.disconnect()
            finally:
                self._closing = False

    async def aclose(self) -> None:
        await self.disconnect()
        with contextlib.suppress(*_BUMBLE_ERRORS):
            await self._device.power_off()
        if self._closer is not None:
            await self._closer()
