"""Where a service gets its unit context (``wardwire.context.UnitContext``) from.

Today the source is a ward file (TOML, written by a biomedical engineer or the demo); tomorrow it
is the registry's API. Services call :func:`load_unit_context` with whatever the operator gave
(``--context`` / ``WM_CONTEXT``): a path, or an ``http(s)://`` URL that answers ``GET`` with the
unit context as JSON. Moving a unit from the file to the registry is a URL change, not a code
change. An ``https://`` registry is verified against the system's trust store or, with
``ca_file`` (``WM_REGISTRY_CA_FILE``), against that CA alone (e.g. the one ``wardwatch certs
init`` made); a failed verification is an error that says so, never a silent fallback to plain
HTTP.

Ward file example::

    site = "demo"
    unit = "picu"
    scoring_system = "bedside_pews"
    generation = "demo"          # the only generation this unit's gateways may send

    [[gateways]]
    id = "gw-a"

    [[beds]]
    id = "bed01"
    patient = "P-1a2b3c"         # pseudonymous id, never a name or MRN
    dob = "2022-03-14"
    gateway = "gw-a"
    devices = ["mon-bed01"]

Alert rules (freshness, onset, clear, escalation delays) are not unit context: they live in the
alerting service's unit rules file (``wardwatch alerting run --rules``).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from servicekit.clock import utcnow
from servicekit.files import write_private
from servicekit.tomlio import dump_model, load_toml_model, validation_lines
from wardwire.context import UnitContext

__all__ = [
    "ContextSource",
    "UnitContextError",
    "dump_ward_file",
    "load_unit_context",
    "load_ward_file",
    "read_token_file",
    "registry_token",
]

#: A context document larger than this is refused (a unit has tens of beds, not millions).
MAX_CONTEXT_BYTES = 16 * 1024 * 1024


class UnitContextError(Exception):
    """The unit context could not be read or is not valid; the message says where and why."""


def load_ward_file(path: Path) -> UnitContext:
    """Read and validate a ward file; raises :class:`UnitContextError` naming each key path."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raw = None  # let the shared loader word the error
    if isinstance(raw, dict) and "alerting" in raw:
        raise UnitContextError(
            f"{path}: [alerting] is not unit context any more: move onset_s, clear_s, stale_s "
            "and escalate_after_s to the alerting unit rules file (wardwatch alerting run "
            "--rules FILE, also accepted as --policy; docs/alerting.md)"
        )
    return load_toml_model(path, UnitContext, "ward file", UnitContextError)


def dump_ward_file(ctx: UnitContext) -> str:
    """Render a unit context as a ward file (the demo and the load generator write one)."""
    return dump_model(ctx)


def _tls_context(url: str, ca_file: Path | None) -> ssl.SSLContext | None:
    """Certificate and host-name verification for an https URL: against ``ca_file`` only when
    given, else the system's trust store."""
    if not url.startswith("https://"):
        return None
    try:
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise UnitContextError(f"{url}: cannot use the CA file {ca_file}: {exc}") from exc


def read_token_file(path: Path) -> str:
    """A registry bearer token from ``path``: its first line, the file readable by its owner
    only (a token is a credential: refused if group or others may read it)."""
    try:
        mode = path.stat().st_mode
        if mode & 0o077:
            raise UnitContextError(
                f"{path}: the registry token file may be read by others (mode "
                f"{mode & 0o777:o}): chmod 600 it")
        token = path.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    except OSError as exc:
        raise UnitContextError(f"{path}: cannot read the registry token: {exc}") from exc
    if not token:
        raise UnitContextError(f"{path}: the registry token file is empty")
    return token


def registry_token(source: str | Path, token: str | None,
                   token_file: Path | None) -> str | None:
    """The bearer token to read ``source`` with: none for a ward file; else the one in
    ``token_file`` (read now, so a rotated token is seen), else ``token``."""
    if not _is_url(source):
        return None
    return read_token_file(token_file) if token_file is not None else token


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A unit context answers itself: a redirect is not followed (urllib would send every
    header on, the bearer token too, to wherever it points, another host or plain http)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> None:
        raise UnitContextError(
            f"{req.full_url}: the context source answered a redirect ({code}) to {newurl}; "
            "not followed (the token is sent to the registry's own URL only: set that URL)")


#: the whole answer must arrive within this many socket timeouts (``timeout_s`` bounds each
#: read only: a registry dripping its answer never trips it)
ANSWER_TIMEOUTS = 3


class _Deadline:
    """The sockets of one context read, shut down when its deadline passes: a read blocked in
    them returns at once (found by red-team: a dripping registry held a read for hours)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.socks: list[socket.socket] = []
        self.passed = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self.socks.append(sock)
            if self.passed:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: nothing is blocked in it

    def _expire(self) -> None:
        with self._lock:
            self.passed = True
            for s in self.socks:
                self._shut(s)

    def opener(self, tls: ssl.SSLContext | None,
               *handlers: urllib.request.BaseHandler) -> urllib.request.OpenerDirector:
        """urllib's opener, with every connection's socket known to this deadline."""
        deadline = self

        class Http(http.client.HTTPConnection):
            def connect(self) -> None:
                super().connect()
                deadline.track(self.sock)

        class Https(http.client.HTTPSConnection):
            def connect(self) -> None:
                super().connect()
                deadline.track(self.sock)

        class HttpHandler(urllib.request.HTTPHandler):
            def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
                return self.do_open(Http, req)

        class HttpsHandler(urllib.request.HTTPSHandler):
            def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
                return self.do_open(Https, req, context=tls)

        return urllib.request.build_opener(HttpHandler, HttpsHandler(context=tls), *handlers)

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _fetch(url: str, timeout_s: float, ca_file: Path | None = None,
           token: str | None = None) -> UnitContext:
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, headers=headers)
    tls = _tls_context(url, ca_file)
    deadline = _Deadline(ANSWER_TIMEOUTS * timeout_s)
    opener = deadline.opener(tls, _NoRedirect())
    try:
        with deadline, opener.open(req, timeout=timeout_s) as resp:
            body = resp.read(MAX_CONTEXT_BYTES + 1)
            if deadline.passed:
                raise OSError("the connection was cut at the deadline")
    except urllib.error.HTTPError as exc:
        hint = ""
        if exc.code in (401, 403):
            hint = (" (the registry needs a token: WM_REGISTRY_TOKEN_FILE names a 0600 file "
                    "holding a service user's token)" if not token else
                    " (the token in WM_REGISTRY_TOKEN_FILE / WM_REGISTRY_TOKEN was refused)")
        raise UnitContextError(
            f"{url}: the context source answered {exc.code} {exc.reason}{hint}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        if deadline.passed:
            raise UnitContextError(
                f"{url}: no complete answer within {deadline.seconds:g} s (the context source "
                "answers, but too slowly)") from exc
        if isinstance(exc, http.client.HTTPException):
            raise UnitContextError(
                f"{url}: not an HTTP answer the context source should give: "
                f"{type(exc).__name__}: {exc}") from exc
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, ssl.SSLError):
            trust = f"the CA in {ca_file}" if ca_file else "the system's trust store"
            raise UnitContextError(
                f"{url}: TLS with the context source failed: "
                f"{getattr(reason, 'verify_message', None) or reason} (verified against {trust}; "
                "WM_REGISTRY_CA_FILE names the registry's CA)"
            ) from exc
        raise UnitContextError(f"{url}: cannot reach the context source: {exc}") from exc
    if len(body) > MAX_CONTEXT_BYTES:
        raise UnitContextError(f"{url}: context larger than {MAX_CONTEXT_BYTES} bytes")
    try:
        return UnitContext.model_validate_json(body)
    except ValidationError as exc:
        raise UnitContextError(
            "\n".join([f"{url}: invalid unit context:", *validation_lines(exc)])
        ) from exc
    except json.JSONDecodeError as exc:  # pragma: no cover - pydantic reports JSON errors itself
        raise UnitContextError(f"{url}: not JSON: {exc}") from exc


def load_unit_context(
    source: str | Path, *, timeout_s: float = 10.0, ca_file: Path | None = None,
    token: str | None = None,
) -> UnitContext:
    """The unit context from a ward file path or a registry URL (``http://``, ``https://``;
    an https registry verified against ``ca_file`` when given, else the system's trust store)."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        return _fetch(text, timeout_s, ca_file, token)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    elif "://" in text:
        raise UnitContextError(f"{text}: a context source is a file path or an http(s) URL")
    return load_ward_file(Path(text))


#: the unit context route of the registry's API (``GET /units/{site}/{unit}/context``)
_CONTEXT_PATH = re.compile(r"/units/(?P<site>[^/]+)/(?P<unit>[^/]+)/context/?$")


def _is_url(source: str | Path) -> bool:
    return str(source).startswith(("http://", "https://"))


def _write_cache(path: Path, ctx: UnitContext) -> None:
    """Write the context to ``path`` atomically (a temporary file in the same directory, mode
    0600, fsynced, then renamed over it): a reader sees the old cache or the new one, never half."""
    write_private(path, ctx.model_dump_json(indent=2))


def _read_cache(path: Path) -> UnitContext:
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise UnitContextError(f"{path}: cannot read the context cache: {exc}") from exc
    try:
        return UnitContext.model_validate_json(body)
    except ValidationError as exc:
        raise UnitContextError(
            "\n".join([f"{path}: invalid context cache:", *validation_lines(exc)])
        ) from exc


class ContextSource:
    """A unit context source with a last-known-good cache for a registry URL.

    ``load()`` reads the file or fetches the URL. For a URL with a ``cache_path``, each good answer
    is written to the cache (atomically, mode 0600); when the URL cannot be reached or answers
    something that is not a valid unit context, ``load()`` returns the cached context instead and
    says so: ``stale`` is true and ``last_error`` holds why. It raises :class:`UnitContextError`
    only when the source fails and there is no usable cache. A ward file is never cached: a bad
    file is an operator error and is raised as before.

    ``last_ok_at`` is when the source last answered well (for a cache read at start-up: the cache
    file's modification time, i.e. when the registry last answered well).
    """

    def __init__(self, source: str | Path, cache_path: Path | None = None, *,
                 timeout_s: float = 10.0, ca_file: Path | None = None,
                 token: str | None = None, token_file: Path | None = None) -> None:
        self.source = source
        self.cache_path = cache_path
        self.timeout_s = timeout_s
        self.ca_file = ca_file
        #: the registry bearer token, or the 0600 file holding it (re-read at every load, so a
        #: rotated token is picked up without a restart)
        self.token = token
        self.token_file = token_file
        self.stale = False
        self.last_error: str | None = None
        self.last_ok_at: datetime | None = None

    @property
    def is_url(self) -> bool:
        return _is_url(self.source)

    def age_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds since the source last answered well (None if it never has)."""
        if self.last_ok_at is None:
            return None
        return max(0.0, ((now or utcnow()) - self.last_ok_at).total_seconds())

    @property
    def expected_unit(self) -> tuple[str, str] | None:
        """The ``(site, unit)`` a registry URL ``…/units/SITE/UNIT/context`` asks for (None for
        a ward file or another URL shape)."""
        if not self.is_url:
            return None
        m = _CONTEXT_PATH.search(urllib.parse.urlsplit(str(self.source)).path)
        return (urllib.parse.unquote(m["site"]), urllib.parse.unquote(m["unit"])) if m else None

    def _check_unit(self, ctx: UnitContext, what: str) -> UnitContext:
        want = self.expected_unit
        if want is not None and (ctx.site, ctx.unit) != want:
            raise UnitContextError(f"{what} is the context of {ctx.site}/{ctx.unit}, not of "
                                   f"{want[0]}/{want[1]} which {self.source} asks for")
        return ctx

    def _load(self) -> UnitContext:
        # an answer for another unit is refused, so it never replaces the cache
        return self._check_unit(load_unit_context(
            self.source, timeout_s=self.timeout_s, ca_file=self.ca_file,
            token=registry_token(self.source, self.token, self.token_file)),
            f"{self.source}: the answer")

    def load(self) -> UnitContext:
        if not self.is_url or self.cache_path is None:
            ctx = self._load()
            self.stale, self.last_error, self.last_ok_at = False, None, utcnow()
            return ctx
        try:
            ctx = self._load()
        except UnitContextError as exc:
            self.last_error = str(exc)
            try:
                cached = self._check_unit(_read_cache(self.cache_path),
                                          f"{self.cache_path}: the cache")
            except UnitContextError as cache_exc:
                raise UnitContextError(
                    f"{exc}; and no usable context cache: {cache_exc}"
                ) from exc
            self.stale = True
            if self.last_ok_at is None:
                try:
                    mtime = self.cache_path.stat().st_mtime
                except OSError:
                    mtime = None
                if mtime is not None:
                    self.last_ok_at = datetime.fromtimestamp(mtime, UTC)
            return cached
        _write_cache(self.cache_path, ctx)
        self.stale, self.last_error, self.last_ok_at = False, None, utcnow()
        return ctx
