"""The BLE driver: a central subscribed to one GATT service (+ Battery), supervised.

A session connects to ``DeviceSection.ble_address``, checks the profile's service is there,
reads the ``read`` characteristics once, subscribes to the notified/indicated ones, and queues
every value with its characteristic. ``next_events`` decodes queued values with the pure
``edge_agent.protocols.gatt`` decoders and raises ``LinkLost`` once the central reports the
connection dropped, after the values that arrived before it. The supervisor
(``edge_agent.drivers.DeviceDriver``) does the rest: status, backoff, reconnect.

The backend comes from the device's ``port``: ``bumble:<transport>`` or ``bleak[:adapter]``
(see ``edge_agent.ble.central``); a ``central_factory`` can be injected instead (tests use an
in-process bumble ``LocalLink``). The central outlives sessions and is replaced only when it
says it is broken.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import tzinfo

from edge_agent.ble.central import BleCentral, GattTree, open_central
from edge_agent.ble.profiles import BATTERY, GattProfile
from edge_agent.drivers import DeviceDriver, Session, load_attribute
from edge_agent.links import DriverMisconfigured, DriverUnavailable, LinkLost
from edge_agent.protocols.base import ParserEvent
from edge_agent.protocols.gatt import BATTERY_SERVICE, Characteristic

log = logging.getLogger(__name__)

#: Values queued between the BLE stack's callbacks and the supervisor; beyond it values are
#: dropped and counted (DeviceHealth.dropped). Notifications come at ~1-4 Hz per service.
QUEUE_MAX = 1024


class GattSession:
    """One connection's worth of characteristic values, decoded on demand."""

    def __init__(
        self,
        central: BleCentral,
        address: str,
        *,
        tz: tzinfo | None,
        on_drop: Callable[[], None],
    ) -> None:
        self._central = central
        self._address = address
        self._tz = tz
        self._on_drop = on_drop
        self._queue: asyncio.Queue[tuple[Characteristic, bytes] | str] = asyncio.Queue()
        self._pending: list[ParserEvent] = []

    def _offer(self, ch: Characteristic, value: bytes) -> None:
        if self._queue.qsize() >= QUEUE_MAX:
            self._on_drop()
            return
        self._queue.put_nowait((ch, value))

    def _lost(self, reason: str) -> None:
        self._queue.put_nowait(reason)  # never dropped: the end of the session must be seen

    @classmethod
    async def open(
        cls,
        central: BleCentral,
        address: str,
        profile: GattProfile,
        *,
        connect_timeout_s: float,
        tz: tzinfo | None = None,
        on_drop: Callable[[], None] = lambda: None,
    ) -> GattSession:
        session = cls(central, address, tz=tz, on_drop=on_drop)
        central.on_disconnect(session._lost)
        await central.connect(address, connect_timeout_s)
        try:
            await session._subscribe(await central.discover(), profile)
        except BaseException:
            await central.disconnect()
            raise
        return session

    async def _subscribe(self, tree: GattTree, profile: GattProfile) -> None:
        if profile.service not in tree:
            raise DriverUnavailable(
                f"{self._address} has no service {profile.service} (has {', '.join(sorted(tree))})"
            )
        wanted = [(profile.service, ch) for ch in profile.characteristics]
        if BATTERY_SERVICE in tree:
            wanted.append((BATTERY_SERVICE, BATTERY))
        streams = 0
        for service, ch in wanted:
            props = tree[service].get(ch.uuid)
            if props is None:
                continue  # optional characteristic (e.g. PLX spot-check) not implemented
            if "read" in props and (ch.delivery == "read" or ch is BATTERY):
                self._pending += ch.decode(await self._central.read(ch.uuid), tz=self._tz)
            if props & {"notify", "indicate"}:
                await self._central.subscribe(ch.uuid, functools.partial(self._offer, ch))
                streams += service == profile.service
        if streams == 0 and not self._pending:
            raise DriverUnavailable(f"{self._address}: nothing to decode in {profile.service}")

    async def next_events(self) -> list[ParserEvent]:
        if self._pending:
            events, self._pending = self._pending, []
            return events
        item = await self._queue.get()
        if isinstance(item, str):
            raise LinkLost(f"BLE {self._address}: {item}")
        ch, value = item
        return ch.decode(value, tz=self._tz)

    async def aclose(self) -> None:
        await self._central.disconnect()


CentralFactory = Callable[[], Awaitable[BleCentral]]


@dataclass
class BleDriver(DeviceDriver):
    """A BLE health device (see the module docstring)."""

    central_factory: CentralFactory | None = None
    connect_timeout_s: float = 10.0
    device_tz: tzinfo | None = None
    _central: BleCentral | None = field(default=None, init=False)

    def profile(self) -> GattProfile:
        profile = load_attribute(self.device.driver)
        assert isinstance(profile, GattProfile)
        return profile

    def silence_limit(self) -> float | None:
        return self.profile().silence_s

    async def open_session(self) -> Session:
        profile = self.profile()
        address = self.device.ble_address
        if address is None:
            raise DriverMisconfigured(f"device {self.device.id} has no ble_address")
        if self._central is None:
            factory = self.central_factory or (lambda: open_central(self.device.port))
            self._central = await factory()
        central = self._central
        try:
            return await GattSession.open(
                central,
                address,
                profile,
                connect_timeout_s=self.connect_timeout_s,
                tz=self.device_tz,
                on_drop=self._dropped,
            )
        except DriverUnavailable:
            if getattr(central, "broken", False):
                self._central = None
                await central.aclose()
            raise

    def _dropped(self) -> None:
        with self.lock:
            self.health.dropped += 1

    async def release(self) -> None:
        central, self._central = self._central, None
        if central is not None:
            await central.aclose()
