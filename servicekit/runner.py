"""How a service process runs: logging set up once, SIGTERM/SIGINT turned into an orderly stop.

Every service CLI (``<service>/cli.py``) ends in :func:`run_until_signal`; a service that dies
inside (a thread it depends on is gone) raises :class:`servicekit.faults.ServiceFailed` and the
process exits with status 3, so a supervisor (systemd) restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol

from servicekit.faults import ServiceFailed

__all__ = ["EXIT_FAILED", "STOP_SIGNALS", "RunnableService", "StopFlag", "block_stop_signals",
           "run_until_signal", "setup_logging", "wait_for_stop_signal"]

#: Exit status of a service that failed while running (2 is a usage/configuration error).
EXIT_FAILED = 3


class RunnableService(Protocol):
    """A service whose ``run()`` blocks until ``stop()`` (keyword arguments pass through)."""

    @property
    def run(self) -> Callable[..., object]: ...

    def stop(self) -> None: ...


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_until_signal(service: RunnableService, **run_kwargs: Any) -> int:
    """Run a service in this thread; SIGTERM/SIGINT ask it to stop (it drains first).

    Returns the process exit status: 0 after an orderly stop, :data:`EXIT_FAILED` if the
    service failed while running.
    """

    def handler(signum: int, frame: object) -> None:
        service.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        service.run(**run_kwargs)
    except ServiceFailed as exc:
        logging.getLogger("wardwatch").critical("%s", exc)
        return EXIT_FAILED
    return 0


STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def block_stop_signals() -> None:
    """Hold SIGINT/SIGTERM/SIGHUP pending from now on (call it before announcing readiness:
    a stop requested right after the announcement then waits for :func:`wait_for_stop_signal`
    instead of killing the process before its cleanup is in place)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def wait_for_stop_signal() -> int:
    """Block until SIGINT, SIGTERM or SIGHUP, so the caller's cleanup runs (an unblocked
    SIGTERM would kill the process and orphan what it started)."""
    block_stop_signals()
    try:
        return signal.sigwait(STOP_SIGNALS)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class StopFlag(threading.Event):
    """A stop request that threads and asyncio tasks can both wait on, without polling.

    ``set()`` may be called from any thread or a signal handler; :meth:`wait_async` wakes every
    task awaiting it on whichever event loop it runs (through ``call_soon_threadsafe``), and
    ``wait()``/``is_set()`` behave as a ``threading.Event``'s.
    """

    def __init__(self) -> None:
        super().__init__()
        # Re-entrant: set() runs in a signal handler on the main thread, which may be inside
        # wait_async() holding this lock at that instant (a plain Lock would deadlock).
        self._waiters_lock = threading.RLock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()

    def set(self) -> None:
        super().set()
        with self._waiters_lock:
            waiters = list(self._waiters)
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is already closed
                loop.call_soon_threadsafe(_resolve, fut)

    async def wait_async(self) -> None:
        """Return once the flag is set (at once if it already is)."""
        if self.is_set():
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        entry = (loop, fut)
        with self._waiters_lock:
            self._waiters.add(entry)
        try:
            if not self.is_set():  # set between the check and the registration
                await fut
        finally:
            with self._waiters_lock:
                self._waiters.discard(entry)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
