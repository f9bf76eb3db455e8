"""A person's requests to the registry's API from the command line (``wardwatch alerting ack``,
``wardwatch chart``): the base URL, the user's bearer token, TLS, and answers turned into one
line an operator can act on.

The base URL is ``--registry URL``, else the unit context URL the services read
(``--context``/``WM_CONTEXT``, ``https://host:port/units/SITE/UNIT/context``) without its
``/units/…`` path. The token is the user's own (``wardwatch registry user token USER --out
FILE``): ``WM_REGISTRY_TOKEN_FILE`` (a 0600 file) or ``WM_REGISTRY_TOKEN``, never an argument.
An https registry is verified against ``WM_REGISTRY_CA_FILE`` or the system's trust store.
Redirects are not followed (the token would go with them).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from servicekit.context import UnitContextError, read_token_file
from servicekit.settings import ServiceSettings

__all__ = ["RegistryAnswer", "RegistryClient", "RegistryRefused", "RegistryUnavailable",
           "registry_base"]


class RegistryUnavailable(Exception):
    """The registry could not be asked (no URL, no token, not reachable, TLS)."""


class RegistryRefused(Exception):
    """The registry answered and refused the token (401: unknown, expired, revoked; 403)."""


def registry_base(explicit: str | None, context: str | None) -> str:
    """The registry's base URL from ``--registry`` or a unit context URL."""
    if explicit:
        return explicit.rstrip("/")
    if context and context.startswith(("http://", "https://")) and "/units/" in context:
        return context.split("/units/", 1)[0]
    raise RegistryUnavailable(
        "no registry URL: give --registry https://HOST:PORT (or a --context/WM_CONTEXT URL of "
        "the registry)")


@dataclass(frozen=True)
class RegistryAnswer:
    status: int
    body: Any

    @property
    def reason(self) -> str:
        if isinstance(self.body, dict) and "reason" in self.body:
            return str(self.body["reason"])
        return str(self.body)[:300]


class RegistryClient:
    def __init__(self, base: str, token: str, *, ca_file: Path | None = None,
                 timeout_s: float = 15.0) -> None:
        self.base = base
        verify: ssl.SSLContext | bool = True
        if base.startswith("https://"):
            try:
                verify = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            except (OSError, ssl.SSLError) as exc:
                raise RegistryUnavailable(f"cannot use the CA file {ca_file}: {exc}") from exc
        self.http = httpx.Client(base_url=base, timeout=timeout_s, verify=verify,
                                 follow_redirects=False,
                                 headers={"Authorization": f"Bearer {token}"})

    @classmethod
    def from_settings(cls, settings: ServiceSettings, registry: str | None,
                      context: str | None) -> RegistryClient:
        base = registry_base(registry, context or settings.context)
        if settings.registry_token_file is not None:
            try:
                token = read_token_file(settings.registry_token_file)
            except UnitContextError as exc:
                raise RegistryUnavailable(str(exc)) from exc
        else:
            token = settings.registry_token_value() or ""
        if not token:
            raise RegistryUnavailable(
                "no registry token: set WM_REGISTRY_TOKEN_FILE to a 0600 file holding yours "
                "(wardwatch registry user token USER --out FILE)")
        return cls(base, token, ca_file=settings.registry_ca_file)

    def close(self) -> None:
        self.http.close()

    def _ask(self, method: str, path: str, body: Any = None) -> RegistryAnswer:
        try:
            r = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise RegistryUnavailable(f"cannot reach the registry at {self.base}: {exc}") from exc
        try:
            payload: Any = r.json()
        except ValueError:
            payload = r.text
        return RegistryAnswer(r.status_code, payload)

    def me(self) -> str:
        """Who the token belongs to (``GET /me``)."""
        a = self._ask("GET", "/me")
        if a.status in (401, 403):
            raise RegistryRefused(f"the registry refused the token ({a.status}): {a.reason}")
        if a.status != 200 or not isinstance(a.body, dict) or "user" not in a.body:
            raise RegistryUnavailable(f"the registry did not accept the token ({a.status}): "
                                      f"{a.reason}")
        return str(a.body["user"])

    def post(self, path: str, body: Any = None) -> RegistryAnswer:
        return self._ask("POST", path, body)
