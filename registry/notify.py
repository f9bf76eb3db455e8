"""The serve process's change notifier: polls the :class:`~registry.events.ContextWatcher` after
every successful write request and every ``interval_s`` seconds, and hands each
:class:`~wardwire.models.ContextChanged` to ``publish`` (the registry's broker connection).

The periodic poll catches what no request of this process did: the CLI writing the database
directly, an import, a restore. A poll that fails (the database busy or
gone) is logged and counted, and the next one compares against the last context it did read, so
a change is announced late, never lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from registry.errors import RegistryError
from registry.events import ContextWatcher, Publish

__all__ = ["ChangeNotifier", "PokeOnWrite"]

log = logging.getLogger("registry.notify")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class ChangeNotifier:
    def __init__(self, watcher: ContextWatcher, publish: Publish, *, interval_s: float = 2.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.watcher = watcher
        self.publish = publish
        self.interval_s = interval_s
        self.clock = clock or (lambda: datetime.now(UTC))
        self.polls = 0
        self.events = 0
        self.failures = 0
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poke(self) -> None:
        """Look now (a write request just committed)."""
        self._poke.set()

    def poll_once(self) -> int:
        """One look; returns how many events were published. Never raises for a database
        problem (logged, counted: the next look catches up)."""
        try:
            events = self.watcher.poll(self.clock())
        except (SQLAlchemyError, RegistryError) as exc:
            self.failures += 1
            log.error("change poll failed (will retry): %s", exc)
            return 0
        self.polls += 1
        for event in events:
            self.publish(event)
            self.events += 1
            log.info("context of %s/%s changed: beds %s, gateways %s, devices %s (%s)",
                     event.site, event.unit, event.beds, event.gateways, event.devices,
                     event.reason)
        return len(events)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._poke.wait(self.interval_s)
            self._poke.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="registry-changes", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class PokeOnWrite:
    """ASGI middleware: after a write request (not GET/HEAD/OPTIONS) answered below 400, poke
    the notifier so the change is announced at once rather than at the next periodic look."""

    def __init__(self, app: App, notifier: ChangeNotifier) -> None:
        self.app = app
        self.notifier = notifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method", "GET") in _READS:
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            if status and status[0] < 400:
                self.notifier.poke()
