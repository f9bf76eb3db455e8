"""Test helpers: a user of a role and a token for it, straight through the service layer (no
password, so no argon2 work: these tests are about what a role may do, not about logging in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from registry import users
from registry.db import transaction
from registry.models import User


def token_for(engine: Engine, role: str, user: str | None = None, *,
              now: datetime | None = None, ttl: timedelta = timedelta(days=30)) -> str:
    """A bearer token for ``user`` (default: named after the role), created if missing."""
    name = user or f"test-{role}"
    t = now or datetime.now(UTC)
    with transaction(engine) as s:
        if s.scalars(select(User).where(User.id == name)).one_or_none() is None:
            s.add(User(id=name, role=role, status="active", created_at=t - timedelta(days=1)))
            s.flush()
        return users.issue_token(s, name, ttl=ttl, now=t).token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
