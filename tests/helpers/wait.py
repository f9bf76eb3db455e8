"""Deadline-bounded waiting on a condition that has no event to wait on (a DB count, a port
opening, a driver's health). The only polling in the test suite lives here; everything that has
an event (MQTT deliveries, sink calls) waits on a condition variable instead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(pred: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll ``pred`` until it returns something truthy; raise ``TimeoutError`` at the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)  # poll interval of a bounded wait, not a synchronisation sleep


async def until(pred: Callable[[], object], within: float = 10.0, interval: float = 0.01) -> None:
    """``wait_until`` for code running on the test's own event loop (the predicate's state is
    changed by tasks on that loop, so the wait must yield to them)."""
    end = time.monotonic() + within
    while not pred():
        assert time.monotonic() < end, "condition not met before the deadline"
        await asyncio.sleep(interval)  # yield to the loop: the bounded poll's interval


async def next_tick() -> None:
    """Let every other ready task of this loop run once (a scheduling yield, not a timed wait):
    the one place tests hand the loop over, e.g. so a task just created registers its waiter or
    a fake device lets the others read between its frames."""
    await asyncio.sleep(0)
