"""The registry's errors: one root, split by whose fault and what the caller can do about it.

Every invalid request raises a :class:`RegistryError` subclass from the service layer; the shells
translate it once: the REST API answers its ``status`` with ``{"error": kind, "reason": ...}``,
the CLI prints the reason on one line of stderr and exits 2. Foreign exceptions (a database
integrity error from a race) are translated at the boundary with the cause chained.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "RegistryError",
    "TooManyAttempts",
    "Unauthorized",
    "Unavailable",
    "Unsupported",
]


class RegistryError(Exception):
    """A request the registry refuses; ``str(exc)`` is the one-line reason."""

    status = 400
    kind = "bad_request"

    @property
    def reason(self) -> str:
        return str(self)


class NotFound(RegistryError):
    """Something the request names does not exist (an unknown bed, device, patient...)."""

    status = 404
    kind = "not_found"


class Conflict(RegistryError):
    """The request is well-formed but contradicts the registry's state: a device already
    assigned, an overlapping admission, an id already taken, a retired entity."""

    status = 409
    kind = "conflict"


class Invalid(RegistryError):
    """A value is malformed or implausible: a bad serial number or UDI, a date of birth in the
    future, an unknown time zone, a time before the range it would close."""

    status = 422
    kind = "invalid"


class Unsupported(RegistryError):
    """The operation cannot be done on this database (a PostgreSQL backup: use pg_dump)."""

    status = 400
    kind = "unsupported"


class Unauthorized(RegistryError):
    """No credentials, or ones that do not check out (unknown, wrong, expired, revoked)."""

    status = 401
    kind = "unauthorized"


class Forbidden(RegistryError):
    """Authenticated, but the user's role may not do this."""

    status = 403
    kind = "forbidden"


class TooManyAttempts(RegistryError):
    """Too many failed logins for this user or from this address: wait ``retry_after`` s."""

    status = 429
    kind = "too_many_attempts"

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Unavailable(RegistryError):
    """Something the request needs is not there (no broker configured)."""

    status = 503
    kind = "unavailable"
