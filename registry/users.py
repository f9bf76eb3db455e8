"""Users, passwords and tokens: the service layer (a database session and ``now``, no HTTP).

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile);
a hash made with weaker parameters is upgraded at the next successful login. Tokens are opaque:
``wwt_<id>_<secret>``, 16 hex digits of public id and 256 random bits of secret. The database
keeps the id and the SHA-256 of the secret, never the secret (shown once, when issued), so a
copy of the database holds no usable token. A token is valid until it expires, is revoked, or
its user changes password or is disabled (both revoke every token of the user). Login tokens
last a shift (12 h); tokens issued by an administrator for a service last 90 days unless told
otherwise (at most 400).

Every change here is recorded in the audit log by the session events (``registry.audit``), and
logins (success or failure) and token issues explicitly.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry import audit
from registry.errors import Conflict, Invalid, NotFound, Unauthorized
from registry.models import Token, User
from registry.roles import SERVICES, Role

__all__ = [
    "ISSUED_TTL",
    "LOGIN_TTL",
    "MAX_TTL",
    "IssuedToken",
    "LoginRequest",
    "Principal",
    "UserRequest",
    "UserView",
    "add_user",
    "authenticate",
    "check_password",
    "disable_user",
    "enable_user",
    "issue_token",
    "list_users",
    "login",
    "password_problem",
    "set_password",
    "show_user",
]

LOGIN_TTL = timedelta(hours=12)
ISSUED_TTL = timedelta(days=90)
MAX_TTL = timedelta(days=400)
MIN_PASSWORD = 12
MAX_PASSWORD = 256  # argon2 hashes anything, but a megabyte "password" is an attack
USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
TOKEN_RE = re.compile(r"^wwt_([0-9a-f]{16})_([A-Za-z0-9_\-]{43})$")

UserId = Annotated[str, Field(pattern=USER_PATTERN, examples=["nurse.kim"])]


class UserRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: UserId
    role: Role
    #: none for a service identity that only holds tokens
    password: SecretStr | None = Field(default=None, max_length=MAX_PASSWORD)


class LoginRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    user: UserId
    password: SecretStr = Field(max_length=MAX_PASSWORD)


class UserView(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: str
    role: Role
    status: Literal["active", "disabled"]
    has_password: bool
    created_at: datetime
    password_changed_at: datetime | None
    disabled_at: datetime | None
    #: tokens neither expired nor revoked
    active_tokens: int


class IssuedToken(BaseModel):
    """A token as issued: ``token`` is the secret, shown this once."""

    model_config = ConfigDict(frozen=True)
    token: str
    token_id: str
    user: str
    role: Role
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for."""

    user: str
    role: Role
    token_id: str


_HASHER: PasswordHasher | None = None


def hasher() -> PasswordHasher:
    """The process's argon2id hasher (tests may swap in cheaper parameters)."""
    global _HASHER
    if _HASHER is None:
        _HASHER = PasswordHasher()
    return _HASHER


def password_problem(user: str, password: str) -> str | None:
    """Why ``password`` is not acceptable for ``user``, or ``None``. At least 12 characters
    (a passphrase), at most 256, no control characters, not the user's name, not one
    character repeated."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        return "a password may not contain control characters"
    if user.casefold() in password.casefold():
        return "a password may not contain the user's name"
    if len(set(password)) < 4:
        return "a password needs at least 4 different characters"
    return None


def _hash_password(user: str, password: str) -> str:
    problem = password_problem(user, password)
    if problem is not None:
        raise Invalid(problem)
    return str(hasher().hash(password))


def _get(session: Session, user: str, *, lock: bool = False) -> User:
    q = select(User).where(User.id == user)
    if lock:
        q = q.with_for_update()
    row = session.scalars(q).one_or_none()
    if row is None:
        raise NotFound(f"unknown user {user}")
    return row


def _view(session: Session, u: User, now: datetime) -> UserView:
    n = len(session.scalars(select(Token.pk).where(
        Token.user_pk == u.pk, Token.revoked_at.is_(None), Token.expires_at > now)).all())
    return UserView(id=u.id, role=Role(u.role), status=u.status,
                    has_password=u.password_hash is not None, created_at=u.created_at,
                    password_changed_at=u.password_changed_at, disabled_at=u.disabled_at,
                    active_tokens=n)


def add_user(session: Session, req: UserRequest, *, now: datetime) -> UserView:
    if session.scalars(select(User.pk).where(User.id == req.id)).first() is not None:
        raise Conflict(f"user {req.id} already exists")
    pw = req.password.get_secret_value() if req.password is not None else None
    if pw is None and req.role not in SERVICES:
        raise Invalid(f"a {req.role.value} needs a password (only a service or the alert "
                      "engine may have none)")
    u = User(id=req.id, role=req.role.value, status="active", created_at=now,
             password_hash=_hash_password(req.id, pw) if pw is not None else None,
             password_changed_at=now if pw is not None else None)
    session.add(u)
    session.flush()
    return _view(session, u, now)


def list_users(session: Session, *, now: datetime) -> list[UserView]:
    return [_view(session, u, now) for u in session.scalars(select(User).order_by(User.id))]


def show_user(session: Session, user: str, *, now: datetime) -> UserView:
    return _view(session, _get(session, user), now)


def _revoke_all(session: Session, u: User, now: datetime) -> None:
    live = list(session.scalars(select(Token.id).where(
        Token.user_pk == u.pk, Token.revoked_at.is_(None), Token.expires_at > now)))
    # a bulk update bypasses the session events: recorded here, by id
    session.execute(update(Token).where(Token.user_pk == u.pk, Token.revoked_at.is_(None))
                    .values(revoked_at=now))
    if live:
        audit.record(session, None, "tokens.revoke", f"users/{u.pk} ({u.id})",
                     {"tokens": sorted(live)}, now=now)


def set_password(session: Session, user: str, password: str, *, now: datetime) -> UserView:
    """A new password; every token of the user is revoked."""
    u = _get(session, user, lock=True)
    u.password_hash = _hash_password(u.id, password)
    u.password_changed_at = now
    _revoke_all(session, u, now)
    audit.record(session, None, "user.password", f"users/{u.pk} ({u.id})",
                 {"tokens_revoked": True}, now=now)
    session.flush()
    return _view(session, u, now)


def disable_user(session: Session, user: str, *, now: datetime) -> UserView:
    """No more logins, and every token of the user is revoked at once."""
    u = _get(session, user, lock=True)
    if u.status == "disabled":
        raise Conflict(f"user {user} is already disabled")
    u.status, u.disabled_at = "disabled", now
    _revoke_all(session, u, now)
    session.flush()
    return _view(session, u, now)


def enable_user(session: Session, user: str, *, now: datetime) -> UserView:
    u = _get(session, user, lock=True)
    if u.status == "active":
        raise Conflict(f"user {user} is already active")
    u.status, u.disabled_at = "active", None
    session.flush()
    return _view(session, u, now)


def _new_token(session: Session, u: User, kind: str, ttl: timedelta,
               now: datetime) -> IssuedToken:
    if not timedelta(minutes=1) <= ttl <= MAX_TTL:
        raise Invalid(f"a token lasts between 1 minute and {MAX_TTL.days} days")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    t = Token(id=token_id, user_pk=u.pk, kind=kind, issued_at=now, expires_at=now + ttl,
              secret_hash=hashlib.sha256(secret.encode()).hexdigest())
    session.add(t)
    session.flush()
    return IssuedToken(token=f"wwt_{token_id}_{secret}", token_id=token_id, user=u.id,
                       role=Role(u.role), expires_at=t.expires_at)


def issue_token(session: Session, user: str, *, ttl: timedelta = ISSUED_TTL,
                now: datetime) -> IssuedToken:
    """A token for ``user`` (a service's long-lived one) without its password."""
    u = _get(session, user)
    if u.status != "active":
        raise Conflict(f"user {user} is disabled")
    return _new_token(session, u, "issued", ttl, now)


def login(session: Session, req: LoginRequest, client: str, *,
          now: datetime) -> IssuedToken | None:
    """A login token if the password is right and the user active, else ``None``. Either way
    the attempt is recorded (commit the session even when it fails). The same work is done for
    an unknown user as for a wrong password, and the answer does not say which."""
    u = session.scalars(select(User).where(User.id == req.user)).one_or_none()
    pw = req.password.get_secret_value()
    ok = False
    h = hasher()
    stored = u.password_hash if u is not None else None
    try:
        if stored is None:
            h.hash(pw)  # equal work for an unknown user or a service without a password
        else:
            ok = bool(h.verify(stored, pw))
    except (VerificationError, InvalidHashError):
        ok = False
    subject = f"users/{u.pk} ({u.id})" if u is not None else f"users/- ({req.user})"
    if not ok or u is None or u.status != "active":
        why = ("unknown user" if u is None else "disabled user" if ok else "wrong password")
        audit.record(session, req.user, "login.failed", subject,
                     {"client": client, "why": why}, now=now)
        return None
    audit.act_as(session, u.id)
    audit.at_time(session, now)
    if stored is not None and h.check_needs_rehash(stored):
        u.password_hash = str(h.hash(pw))
    issued = _new_token(session, u, "login", LOGIN_TTL, now)
    audit.record(session, u.id, "login", subject,
                 {"client": client, "token": issued.token_id}, now=now)
    return issued


def authenticate(session: Session, bearer: str, *, now: datetime) -> Principal:
    """Who the token speaks for; :class:`Unauthorized` saying why not (malformed, unknown,
    expired, revoked, the user disabled)."""
    m = TOKEN_RE.match(bearer)
    if m is None:
        raise Unauthorized("malformed token")
    token_id, secret = m.groups()
    row = session.execute(select(Token, User).join(User, Token.user_pk == User.pk)
                          .where(Token.id == token_id)).one_or_none()
    digest = hashlib.sha256(secret.encode()).hexdigest()
    if row is None or not hmac.compare_digest(row[0].secret_hash, digest):
        raise Unauthorized("unknown token")
    t, u = row
    if t.revoked_at is not None:
        raise Unauthorized("the token was revoked")
    if now >= t.expires_at:
        raise Unauthorized("the token has expired")
    if u.status != "active":
        raise Unauthorized("the user is disabled")
    return Principal(user=u.id, role=Role(u.role), token_id=t.id)


def check_password(session: Session, user: str, password: str) -> bool:
    """Whether ``password`` is ``user``'s (for a change of one's own password)."""
    u = _get(session, user)
    if u.password_hash is None:
        return False
    try:
        return bool(hasher().verify(u.password_hash, password))
    except (VerificationError, InvalidHashError):
        return False
