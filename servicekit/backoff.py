"""The one retry schedule: capped exponential backoff with jitter.

Used for broker reconnects (``servicekit.mqtt``) and device reconnects (the edge's driver
supervisor). Jitter matters: every gateway of a ward that lost the broker at the same instant
would otherwise knock again at the same instants (1, 2, 4, ... s), a thundering herd on the
restarted broker; every device on a rebooted serial server likewise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter (a pure schedule; the caller waits).

    Attempt ``n`` (0-based, counted since the last success) waits a uniformly drawn
    fraction ``[1 - jitter, 1]`` of ``min(cap_s, initial_s * 2**n)``. With ``jitter=0.5`` the
    delays still grow monotonically in expectation, never exceed ``cap_s``, and gateways that
    lost the broker together spread their attempts over half of each window instead of
    arriving at the same instants.
    """

    initial_s: float = 0.5
    # The cap bounds how long a gateway may sit idle after its broker is back: a backlog
    # drains in seconds, so the reconnect wait is what a long outage's recovery time is made
    # of. 10 s keeps that lag small against the >= 30x drain goal while still spreading a
    # ward's reconnects over a 5-10 s window.
    cap_s: float = 10.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.cap_s):
            raise ValueError("need 0 < initial_s <= cap_s")
        if not (0.0 <= self.jitter <= 1.0):
            raise ValueError("jitter is a fraction in [0, 1]")

    def window(self, attempt: int) -> float:
        """The un-jittered upper bound of attempt ``attempt``."""
        return min(self.cap_s, self.initial_s * 2.0 ** min(max(attempt, 0), 62))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before reconnect attempt ``attempt``."""
        hi = self.window(attempt)
        return hi * rng.uniform(1.0 - self.jitter, 1.0)

    def schedule(self, attempts: int, rng: random.Random) -> list[float]:
        """The first ``attempts`` delays (for tests and documentation)."""
        return [self.delay(n, rng) for n in range(attempts)]
