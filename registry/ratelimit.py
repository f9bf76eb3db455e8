"""Login rate limiting, pure: a sliding window of failed attempts per key, taking ``now``.

Two kinds of key limit a login: the user name tried (``user:NAME``, a few failures lock that
account's logins for the window: guessing one password is slow) and the client address
(``addr:IP``, more failures allowed: a ward's shared workstation has several users; guessing
many accounts from one place is slow). A blocked attempt is refused before any password is
checked (no oracle) and does not extend the block. The API counts an attempt as failed before
checking its password and refunds it on success (many attempts at once cannot all slip past the
check before the first fails). A success clears its user's failures, not the address's. Memory
is bounded: at most ``max_keys`` keys, the stalest dropped first.

The API keeps one limiter per process and reloads it from the audit log's last window at start.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

__all__ = ["LoginLimiter", "Policy"]


@dataclass(frozen=True, slots=True)
class Policy:
    window: timedelta = timedelta(minutes=15)
    per_user: int = 5
    per_address: int = 20
    max_keys: int = 10_000


@dataclass
class LoginLimiter:
    policy: Policy = field(default_factory=Policy)
    _failures: OrderedDict[str, deque[datetime]] = field(default_factory=OrderedDict)

    def _limit(self, key: str) -> int:
        return self.policy.per_user if key.startswith("user:") else self.policy.per_address

    def _live(self, key: str, now: datetime) -> deque[datetime] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.policy.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def blocking(self, keys: tuple[str, ...], now: datetime) -> list[tuple[str, datetime]]:
        """The keys that block an attempt now, each with the time it releases (the same time
        for as long as the block lasts: a blocked attempt is not counted)."""
        out = []
        for key in keys:
            times = self._live(key, now)
            if times is not None and len(times) >= self._limit(key):
                # blocked until enough of the window's failures age out
                release = times[len(times) - self._limit(key)] + self.policy.window
                if release > now:
                    out.append((key, release))
        return out

    def retry_after(self, keys: tuple[str, ...], now: datetime) -> float | None:
        """Seconds until an attempt with these keys may be tried, ``None`` if it may now."""
        blocked = self.blocking(keys, now)
        if not blocked:
            return None
        return max((release - now).total_seconds() for _, release in blocked)

    def failed(self, keys: tuple[str, ...], now: datetime) -> None:
        for key in keys:
            times = self._live(key, now)
            if times is None:
                times = self._failures[key] = deque()
            times.append(now)
            self._failures.move_to_end(key)
            if len(times) > self._limit(key):
                times.popleft()
        while len(self._failures) > self.policy.max_keys:
            self._failures.popitem(last=False)

    def refund(self, keys: tuple[str, ...], at: datetime) -> None:
        """Take back one failure recorded ``at`` (an attempt counted in advance that then
        succeeded): counting before the password is checked closes the race of many attempts
        checked at once, before any of them has failed."""
        for key in keys:
            times = self._failures.get(key)
            if times is not None and at in times:
                times.remove(at)
                if not times:
                    del self._failures[key]

    def succeeded(self, user_key: str) -> None:
        self._failures.pop(user_key, None)

    def __len__(self) -> int:
        return len(self._failures)
