"""The InfluxDB HTTP v1 client every service shares: ``/query`` (InfluxQL), ``/write``, ``/ping``.

The v1 API is served natively by InfluxDB 1.x and as the compatibility API by 2.x/3.x, so one
client serves every generation. Calls take an ``httpx.Client`` the caller owns (connection reuse,
timeouts) and an :class:`InfluxTarget` (URL, database, credentials). An ``error`` in a query's
body is an error even on HTTP 200.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["InfluxError", "InfluxTarget", "ping", "query", "write"]


class InfluxError(RuntimeError):
    """InfluxDB refused a query or a write (the message carries its error text)."""


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    url: str
    db: str
    username: str | None = None
    password: str | None = None

    def auth(self) -> tuple[str, str] | None:
        return (self.username, self.password or "") if self.username else None


def query(
    http: httpx.Client, target: InfluxTarget, q: str, *, write: bool = False
) -> list[dict[str, Any]]:
    """Run InfluxQL; returns ``results``. An ``error`` in the body is an error even on 200."""
    data = {"q": q, "epoch": "ms"}
    if target.db:  # server-level statements (CREATE USER ...) name no database
        data["db"] = target.db
    auth = target.auth()
    if write:
        r = http.post(f"{target.url}/query", data=data, auth=auth or httpx.USE_CLIENT_DEFAULT)
    else:
        r = http.get(f"{target.url}/query", params=data, auth=auth or httpx.USE_CLIENT_DEFAULT)
    try:
        body = r.json()
    except ValueError:
        raise InfluxError(f"{r.status_code}: {r.text[:200]}") from None
    errors = [body.get("error")] + [res.get("error") for res in body.get("results", [])]
    errors = [e for e in errors if e]
    if r.status_code >= 300 or errors:
        raise InfluxError(f"{q[:100]!r}: {r.status_code} {errors}")
    return list(body.get("results", []))


def write(
    http: httpx.Client, target: InfluxTarget, lines: Iterable[str], *, precision: str = "ns"
) -> httpx.Response:
    """POST line protocol to ``/write``; the caller judges the response (see ingest.writer)."""
    auth = target.auth()
    return http.post(
        f"{target.url}/write",
        params={"db": target.db, "precision": precision},
        content="\n".join(lines).encode(),
        auth=auth or httpx.USE_CLIENT_DEFAULT,
    )


def ping(http: httpx.Client, target: InfluxTarget, *, timeout_s: float = 5.0) -> bool:
    """Whether the server answers ``/ping`` with 204 (alive)."""
    try:
        return http.get(f"{target.url}/ping", timeout=timeout_s).status_code == 204
    except httpx.HTTPError:
        return False
