"""How a service process runs: logging set up once, SIGTERM/SIGINT turned into an orderly stop.

Every service CLI (``<service>/cli.py``) ends in :func:`run_until_signal`; a service that dies
inside (a thread it depends on is gone) raises :class:`servicekit.faults.ServiceFailed` and the
process exits with status 3, so a supervisor (systemd) restarts it.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, Protocol

from servicekit.faults import ServiceFailed

__all__ = ["EXIT_FAILED", "STOP_SIGNALS", "RunnableService", "block_stop_signals",
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
