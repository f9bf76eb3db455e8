"""Deadline-bounded waiting on a condition that has no event to wait on (e.g. a DB count)."""

from __future__ import annotations

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
