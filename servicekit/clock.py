"""The shells' clock. Pure code (the contract, scoring, rules, lifecycles) takes ``now`` as an
argument instead, so tests drive it; only service shells read the time, through this."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    """Aware UTC now."""
    return datetime.now(UTC)
