"""Helpers for driver tests: a sink that records, and bounded waits on it and on health."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from edge_agent.drivers import DeviceDriver
from edge_agent.protocols.base import Reading, WaveformChunk
from tests.helpers.wait import wait_until


class Capture:
    """An ``EventSink`` that keeps everything; waits are event-driven with a deadline."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.values: list[Reading | WaveformChunk] = []
        self.calls = 0

    def __call__(
        self, device_id: str, values: list[Reading | WaveformChunk], now: datetime
    ) -> None:
        with self.cond:
            self.values.extend(values)
            self.calls += 1
            self.cond.notify_all()

    def readings(self, code: str | None = None) -> list[Reading]:
        with self.cond:
            return [
                v
                for v in self.values
                if isinstance(v, Reading) and (code is None or v.code == code)
            ]

    def chunks(self) -> list[WaveformChunk]:
        with self.cond:
            return [v for v in self.values if isinstance(v, WaveformChunk)]

    def wait(self, pred: Callable[[], object], timeout: float = 10.0) -> None:
        """Block until ``pred()`` holds after some sink call (for drivers in threads)."""
        with self.cond:
            assert self.cond.wait_for(pred, timeout), "condition not met before the deadline"


def wait_health(driver: DeviceDriver, pred: Callable[[], object], timeout: float = 10.0) -> None:
    def holds() -> bool:
        with driver.lock:
            return bool(pred())

    try:
        wait_until(holds, timeout=timeout, interval=0.01)
    except TimeoutError:
        raise AssertionError(f"health never matched: {driver.health}") from None


@contextmanager
def running(driver: DeviceDriver) -> Iterator[DeviceDriver]:
    """Run a driver the way the agent does: ``run()`` in its own thread."""
    t = threading.Thread(target=driver.run, daemon=True)
    t.start()
    try:
        yield driver
    finally:
        driver.stop.set()
        t.join(10)
        assert not t.is_alive(), "driver did not stop"


def utcnow() -> datetime:
    return datetime.now(UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def capture() -> Capture:
    return Capture()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # bumble runs on asyncio
