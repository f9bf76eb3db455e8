"""Telling a refused write from a failed one, and writing every good line of a refused body.

Theory of operation
-------------------
A body sent to InfluxDB's ``/write`` holds the lines of many MQTT messages. What comes back is
one of three kinds (:func:`classify`):

* ``ok`` (2xx): every line is stored;
* ``refused`` (400, and 413 for a body too large): InfluxDB will never take *this* body. A 400
  names a line it cannot parse (e.g. a time outside int64 nanoseconds) or points it dropped
  (``partial write: points beyond retention policy dropped=N``, a field type conflict); in a
  partial write the other points *were* stored. Retrying the same body never succeeds, so
  retrying it would stop storage for the whole unit;
* ``transient`` (5xx, no connection, a timeout, and also 401/403/404: credentials or a missing
  database are configuration, fixed by a person, never by dropping data): retry with backoff,
  acknowledge nothing meanwhile.

:func:`write_bisecting` writes a batch of messages (each a group of lines). On ``refused`` it
splits the batch in halves and writes each, down to single messages and then single lines, so
every line InfluxDB accepts is written and exactly the lines it refuses are returned, each
with InfluxDB's message. Writes are idempotent (same series and time overwrite), so lines that
a partial write already stored are harmlessly written again. The cost for ``k`` bad lines in
``n`` is about ``2 k log2(n)`` requests, only when something is refused.

Pure: the caller passes ``post`` (one HTTP request); tests pass a fake one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PostResult",
    "TransientWriteError",
    "classify",
    "write_bisecting",
]

Outcome = Literal["ok", "refused", "transient"]


@dataclass(frozen=True, slots=True)
class PostResult:
    outcome: Outcome
    message: str = ""


class TransientWriteError(RuntimeError):
    """InfluxDB is down, unreachable or misconfigured: retry later, acknowledge nothing."""


def classify(status: int, text: str) -> PostResult:
    """What a ``/write`` response means (see the module docstring)."""
    if 200 <= status < 300:
        return PostResult("ok")
    message = " ".join(text.split())[:500] or f"HTTP {status}"
    if status in (400, 413):
        return PostResult("refused", f"HTTP {status}: {message}")
    return PostResult("transient", f"HTTP {status}: {message}")


Post = Callable[[Sequence[str]], PostResult]


def write_bisecting(groups: Sequence[Sequence[str]], post: Post) -> list[list[tuple[str, str]]]:
    """Write every line of ``groups`` that InfluxDB accepts.

    Returns, per group (message), the refused lines with InfluxDB's reason (empty lists when
    everything was stored). Raises :class:`TransientWriteError` as soon as a request fails
    transiently; the caller retries the whole batch later (writes are idempotent).
    """
    refused: list[list[tuple[str, str]]] = [[] for _ in groups]

    def send(lines: Sequence[str]) -> PostResult:
        result = post(lines)
        if result.outcome == "transient":
            raise TransientWriteError(result.message)
        return result

    def lines_of(idx: Sequence[int]) -> list[str]:
        return [line for i in idx for line in groups[i]]

    def split_lines(i: int, lines: Sequence[str], reason: str) -> None:
        if len(lines) == 1:
            refused[i].append((lines[0], reason))
            return
        mid = len(lines) // 2
        for half in (lines[:mid], lines[mid:]):
            result = send(half)
            if result.outcome == "refused":
                split_lines(i, half, result.message)

    def split_groups(idx: Sequence[int], reason: str) -> None:
        if len(idx) == 1:
            split_lines(idx[0], groups[idx[0]], reason)
            return
        mid = len(idx) // 2
        for half in (idx[:mid], idx[mid:]):
            lines = lines_of(half)
            if not lines:
                continue
            result = send(lines)
            if result.outcome == "refused":
                split_groups(half, result.message)

    everything = lines_of(range(len(groups)))
    if not everything:
        return refused
    result = send(everything)
    if result.outcome == "refused":
        split_groups([i for i in range(len(groups)) if groups[i]], result.message)
    return refused
