"""The registry's REST API (FastAPI): the service layer over HTTP, one transaction per request.

Every route calls one service-layer function inside ``registry.db.transaction``. A refused
request answers 4xx with ``{"error": kind, "reason": "one sentence"}`` (a malformed one: 422,
with ``detail`` listing each bad field) and writes nothing. ``GET /units/{site}/{unit}/context``
answers exactly the ``UnitContext`` JSON that ``servicekit.context`` reads from a registry URL.
The OpenAPI document is at ``/openapi.json``.

Every route needs ``Authorization: Bearer TOKEN`` but ``POST /login`` (which gives one): the
permission each route needs is looked up in ``registry.roles`` (one table; a route missing from
it is refused). No token, or a malformed, unknown, expired or revoked one: 401; a role without
the permission: 403 saying which roles have it. Who acted is recorded in the audit log.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry import assets, audit, care, roles, users
from registry import enroll as enrolment
from registry.db import transaction
from registry.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RegistryError,
    TooManyAttempts,
    Unauthorized,
    Unavailable,
)
from registry.ratelimit import LoginLimiter, Policy
from registry.schemas import (
    AdmissionView,
    AdmitRequest,
    AssignmentView,
    AssignRequest,
    AtAnswer,
    BedRequest,
    BedView,
    DeviceRequest,
    DeviceUpdate,
    DeviceView,
    GatewayRequest,
    GatewayView,
    Instant,
    PatientRequest,
    PatientView,
    SiteRequest,
    SiteView,
    TimeRequest,
    TransferRequest,
    UnitRequest,
    UnitView,
)
from registry.unitcontext import unit_context, without_dates_of_birth
from wardwire import charting
from wardwire.context import PATIENT_PATTERN, UnitContext
from wardwire.models import AlertCommand, ChartedSet, CommandAction

__all__ = ["ChartEntry", "ErrorBody", "PublishChart", "PublishCommand", "create_app"]

log = logging.getLogger("wardwatch.registry.api")

#: hands a nurse's command to the broker: ``publish_command(site, unit, command)``; raises if
#: it could not (the API answers 503 with the reason)
PublishCommand = Callable[[str, str, AlertCommand], None]
#: hands a nurse's charted set to the broker: ``publish_chart(site, unit, charted_set)``;
#: raises if it could not (the API answers 503 with the reason)
PublishChart = Callable[[str, str, ChartedSet], None]

T = TypeVar("T")
ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
SiteId = Annotated[str, Path(pattern=ID)]
UnitId = Annotated[str, Path(pattern=ID)]
BedId = Annotated[str, Path(pattern=ID)]
GatewayId = Annotated[str, Path(pattern=ID)]
DeviceId = Annotated[str, Path(pattern=ID)]
PatientPath = Annotated[str, Path(pattern=PATIENT_PATTERN)]
#: an admission id, or a patient id standing for that patient's open admission
AdmissionRef = Annotated[str, Path(pattern=ID)]
AlertId = Annotated[str, Path(pattern=ID)]
UserPath = Annotated[str, Path(pattern=users.USER_PATTERN)]


class ErrorBody(BaseModel):
    error: str
    reason: str
    detail: list[dict[str, Any]] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": what}
    for code, what in (
        (400, "Not possible on this database"),
        (404, "Something the request names does not exist"),
        (409, "Contradicts the registry's state"),
        (401, "No token, or a malformed, unknown, expired or revoked one"),
        (403, "The user's role may not do this"),
        (422, "A malformed or implausible value"),
        (429, "Too many failed logins: wait Retry-After seconds"),
        (503, "The database or the broker is unavailable"),
    )
}

#: who the request's token speaks for (set by the authorisation dependency)
_PRINCIPAL: ContextVar[users.Principal | None] = ContextVar("principal", default=None)
_bearer = HTTPBearer(auto_error=False, description="A token from POST /login, or one issued "
                     "by `wardwatch registry user token` (a service's)")


class Me(BaseModel):
    user: str
    role: roles.Role
    token_id: str


class PasswordChange(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    current: SecretStr = Field(max_length=users.MAX_PASSWORD)
    new: SecretStr = Field(max_length=users.MAX_PASSWORD)


class TokenRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    days: int = Field(default=users.ISSUED_TTL.days, ge=1, le=users.MAX_TTL.days)


class AlertActionRequest(BaseModel):
    """A nurse's action on an alert: ``minutes`` with a snooze, ``reason`` with a resolve."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    minutes: float | None = Field(default=None, gt=0, le=24 * 60)
    reason: str | None = Field(default=None, min_length=1, max_length=200,
                               pattern=r"^[^\x00-\x1f\x7f]+$")


class ChartEntry(BaseModel):
    """What a nurse enters for one bed (``POST /units/{site}/{unit}/charted-sets``). The
    registry adds ``by`` (the authenticated user), ``charted_at`` (its clock), ``set_id``,
    ``unit`` and ``generation``; a body naming any of them is refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    bed_id: str = Field(pattern=ID)
    #: ISO 8601; without a UTC offset the unit's local time; absent: now
    observed_at: str | None = Field(default=None, min_length=1, max_length=64)
    items: dict[str, Any]
    supersedes: str | None = None
    already_escalated: bool = False


class AuditEntryView(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]
    prev: str
    hash: str


class AuditVerdictView(BaseModel):
    ok: bool
    checked: int
    head: int
    broken: dict[str, Any] | None


def _validation_reason(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts) or "invalid request"


def create_app(
    engine: Engine,
    clock: Callable[[], datetime] | None = None,
    *,
    publish_command: PublishCommand | None = None,
    publish_chart: PublishChart | None = None,
    login_policy: Policy | None = None,
) -> FastAPI:
    """The API over ``engine`` (already at the newest schema revision); ``clock`` gives ``now``
    (aware UTC; tests inject one); ``publish_command`` hands a nurse's alert command to the
    broker (without it the alert routes answer 503), ``publish_chart`` a nurse's charted set
    (without it the charting route answers 503); ``login_policy`` the login rate limits."""
    now = clock or (lambda: datetime.now(UTC))
    policy = login_policy or Policy()
    limiter = LoginLimiter(policy)
    limiter_lock = threading.Lock()
    #: each blocking key's release time once its block was audited: a block is recorded when
    #: it first refuses, not at every attempt it refuses (an unauthenticated flood would
    #: otherwise write the audit log as fast as it can send)
    announced: dict[str, datetime] = {}
    # a restart (or kill -9) does not wipe the slate: the window's logins come back from the
    # audit log, in order
    with transaction(engine) as session:
        for e in audit.entries(session, now() - policy.window):
            if e.action == "login.failed":
                limiter.failed((f"user:{e.actor}", f"addr:{e.detail.get('client')}"), e.at)
            elif e.action == "login":
                limiter.succeeded(f"user:{e.actor}")

    async def authorize(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        route = request.scope.get("route")
        template = getattr(route, "path", request.url.path)
        permission = roles.rule_for(request.method, template)
        if permission is None:
            raise Forbidden(f"{request.method} {template} has no permission rule: refused")
        if permission is roles.Permission.PUBLIC:
            _PRINCIPAL.set(None)
            return
        if credentials is None:
            raise Unauthorized("a bearer token is needed (POST /login)")
        bearer = credentials.credentials

        def check() -> users.Principal:
            with transaction(engine) as session:
                return users.authenticate(session, bearer, now=now())

        principal = await run_in_threadpool(check)
        reason = roles.refusal(principal.role, permission)
        if reason is not None:
            raise Forbidden(reason)
        _PRINCIPAL.set(principal)

    app = FastAPI(
        title="wardwatch registry",
        version="1",
        description="Sites, units, beds, gateways, devices, patients and their history; the "
        "unit context every service reads. Every route but POST /login needs a bearer token; "
        "what each role may do is in docs/registry.md.",
        responses=ERRORS,
        dependencies=[Depends(authorize)],
    )

    @app.exception_handler(RegistryError)
    async def _refused(_request: Request, exc: RegistryError) -> JSONResponse:
        headers = {}
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
        return JSONResponse({"error": exc.kind, "reason": exc.reason}, status_code=exc.status,
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _malformed(_request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        return JSONResponse(
            {"error": "invalid", "reason": _validation_reason(exc), "detail": detail},
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # no such path (404), a method the path does not take (405): the same JSON shape
        return JSONResponse({"error": "http", "reason": str(exc.detail)},
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(DBAPIError)
    async def _unavailable(_request: Request, exc: DBAPIError) -> JSONResponse:
        # the database failed (down, locked past the busy timeout): not the request's fault
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return JSONResponse({"error": "unavailable", "reason": f"database error: {first}"},
                            status_code=503)

    def run(fn: Callable[[Session, datetime], T]) -> T:
        principal = _PRINCIPAL.get()
        with transaction(engine) as session:
            t = now()
            audit.act_as(session, principal.user if principal else "anonymous")
            audit.at_time(session, t)
            return fn(session, t)

    def me() -> users.Principal:
        principal = _PRINCIPAL.get()
        if principal is None:  # only a PUBLIC route has none, and it does not ask
            raise Unauthorized("a bearer token is needed (POST /login)")
        return principal

    # -- login and users ------------------------------------------------------------------
    @app.post("/login", tags=["users"])
    def login(req: users.LoginRequest, request: Request, response: Response,
              ) -> users.IssuedToken:
        """A token for a shift (12 h) for a user name and password. Failed logins are limited
        per user name and per client address (429 with Retry-After)."""
        response.headers["Cache-Control"] = "no-store"  # the answer holds a secret
        client = request.client.host if request.client else "unknown"
        keys = (f"user:{req.user}", f"addr:{client}")
        with limiter_lock:
            at = now()
            wait = limiter.retry_after(keys, at)
            if wait is None:  # counted as failed until it succeeds: a burst cannot slip past
                limiter.failed(keys, at)
                new_block: list[tuple[str, datetime]] = []
            else:
                new_block = [(k, r) for k, r in limiter.blocking(keys, at)
                             if announced.get(k) != r]
                for k, r in new_block:
                    announced[k] = r
                for k in [k for k, r in announced.items() if r <= at]:
                    del announced[k]
                while len(announced) > policy.max_keys:
                    del announced[next(iter(announced))]
        if new_block:
            until = max(r for _, r in new_block)
            run(lambda s, t: audit.record(s, req.user, "login.refused", f"users/- ({req.user})",
                                          {"client": client, "why": "rate limited",
                                           "blocked": sorted(k for k, _ in new_block),
                                           "until": until.isoformat()}, now=t))
        if wait is not None:
            raise TooManyAttempts(
                f"too many failed logins for this user or from this address: try again in "
                f"{int(wait + 0.999)} s", wait)
        issued = run(lambda s, t: users.login(s, req, client, now=t))
        if issued is not None:
            with limiter_lock:
                limiter.refund(keys, at)
                limiter.succeeded(keys[0])
        if issued is None:
            raise Unauthorized("wrong user name or password, or the user is disabled")
        return issued

    @app.get("/me", tags=["users"])
    def who_am_i() -> Me:
        p = me()
        return Me(user=p.user, role=p.role, token_id=p.token_id)

    @app.post("/me/password", tags=["users"])
    def change_my_password(req: PasswordChange) -> users.UserView:
        """Change your own password (the current one is checked); every token of yours is
        revoked, this one included: log in again."""
        p = me()
        key = (f"user:{p.user}",)
        with limiter_lock:
            at = now()
            wait = limiter.retry_after(key, at)
            if wait is None:  # counted as failed until it succeeds, as a login
                limiter.failed(key, at)
        if wait is not None:
            raise TooManyAttempts(f"too many failed attempts: try again in {int(wait + 0.999)} s",
                                  wait)
        if not run(lambda s, _: users.check_password(s, p.user, req.current.get_secret_value())):
            raise Forbidden("the current password is wrong")
        with limiter_lock:
            limiter.refund(key, at)
        return run(lambda s, t: users.set_password(s, p.user, req.new.get_secret_value(),
                                                   now=t))

    @app.get("/users", tags=["users"])
    def list_users() -> list[users.UserView]:
        return run(lambda s, t: users.list_users(s, now=t))

    @app.post("/users", status_code=201, tags=["users"])
    def add_user(req: users.UserRequest) -> users.UserView:
        return run(lambda s, t: users.add_user(s, req, now=t))

    @app.get("/users/{user}", tags=["users"])
    def show_user(user: UserPath) -> users.UserView:
        return run(lambda s, t: users.show_user(s, user, now=t))

    @app.post("/users/{user}/disable", tags=["users"])
    def disable_user(user: UserPath) -> users.UserView:
        """No more logins; every token of the user is revoked at once."""
        return run(lambda s, t: users.disable_user(s, user, now=t))

    @app.post("/users/{user}/enable", tags=["users"])
    def enable_user(user: UserPath) -> users.UserView:
        return run(lambda s, t: users.enable_user(s, user, now=t))

    @app.post("/users/{user}/tokens", status_code=201, tags=["users"])
    def issue_token(response: Response, user: UserPath,
                    req: Annotated[TokenRequest | None, Body()] = None) -> users.IssuedToken:
        """A token for a user without their password (a service's: put it in a 0600 file)."""
        response.headers["Cache-Control"] = "no-store"  # the answer holds a secret
        days = (req or TokenRequest()).days
        return run(lambda s, t: users.issue_token(s, user, ttl=timedelta(days=days), now=t))

    # -- the audit log --------------------------------------------------------------------
    @app.get("/audit", tags=["audit"])
    def audit_list(
        since: Annotated[Instant | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[AuditEntryView]:
        """The audit log in chain order (from ``since`` on, at most ``limit`` records)."""
        return run(lambda s, _: [AuditEntryView(**e.as_json())
                                 for e in audit.entries(s, since, limit=limit)])

    @app.get("/audit/verify", tags=["audit"])
    def audit_verify() -> AuditVerdictView:
        """Walk the hash chain; the first record that does not check out, if any."""
        return run(lambda s, _: AuditVerdictView(**audit.verify(s).as_json()))

    # -- sites ----------------------------------------------------------------------------
    @app.get("/sites", tags=["sites"])
    def list_sites() -> list[SiteView]:
        return run(lambda s, _: assets.list_sites(s))

    @app.post("/sites", status_code=201, tags=["sites"])
    def add_site(req: SiteRequest) -> SiteView:
        return run(lambda s, t: assets.add_site(s, req, now=t))

    @app.get("/sites/{site}", tags=["sites"])
    def show_site(site: SiteId) -> SiteView:
        return run(lambda s, _: assets.show_site(s, site))

    @app.post("/sites/{site}/retire", tags=["sites"])
    def retire_site(site: SiteId) -> SiteView:
        return run(lambda s, t: assets.retire_site(s, site, now=t))

    # -- units ----------------------------------------------------------------------------
    @app.get("/units", tags=["units"])
    def list_units(site: Annotated[str | None, Query(pattern=ID)] = None) -> list[UnitView]:
        return run(lambda s, _: assets.list_units(s, site))

    @app.post("/units", status_code=201, tags=["units"])
    def add_unit(req: UnitRequest) -> UnitView:
        return run(lambda s, t: assets.add_unit(s, req, now=t))

    @app.get("/units/{site}/{unit}", tags=["units"])
    def show_unit(site: SiteId, unit: UnitId) -> UnitView:
        return run(lambda s, _: assets.show_unit(s, site, unit))

    @app.post("/units/{site}/{unit}/retire", tags=["units"])
    def retire_unit(site: SiteId, unit: UnitId) -> UnitView:
        return run(lambda s, t: assets.retire_unit(s, site, unit, now=t))

    @app.get("/units/{site}/{unit}/context", tags=["units"])
    def get_context(
        site: SiteId, unit: UnitId, at: Annotated[Instant | None, Query()] = None
    ) -> UnitContext:
        """The unit context the services read (``--context URL``), now or as it was ``at``.
        The children's dates of birth only for a role allowed them (the alert engine, staff);
        for ingest's and the console's ``service`` token they are null."""
        ctx = run(lambda s, t: unit_context(s, site, unit, at=at or t))
        principal = _PRINCIPAL.get()
        if principal is None or not roles.allowed(principal.role,
                                                  roles.Permission.DATES_OF_BIRTH):
            ctx = without_dates_of_birth(ctx)
        return ctx

    # -- gateways -------------------------------------------------------------------------
    @app.get("/units/{site}/{unit}/gateways", tags=["gateways"])
    def list_unit_gateways(site: SiteId, unit: UnitId) -> list[GatewayView]:
        return run(lambda s, _: assets.list_gateways(s, site, unit))

    @app.post("/units/{site}/{unit}/gateways", status_code=201, tags=["gateways"])
    def add_gateway(site: SiteId, unit: UnitId, req: GatewayRequest) -> GatewayView:
        return run(lambda s, t: assets.add_gateway(s, site, unit, req, now=t))

    @app.get("/gateways", tags=["gateways"])
    def list_gateways() -> list[GatewayView]:
        return run(lambda s, _: assets.list_gateways(s))

    @app.get("/gateways/{gateway}", tags=["gateways"])
    def show_gateway(gateway: GatewayId) -> GatewayView:
        return run(lambda s, _: assets.show_gateway(s, gateway))

    @app.post("/gateways/{gateway}/retire", tags=["gateways"])
    def retire_gateway(gateway: GatewayId, request: Request) -> GatewayView:
        """Retire the gateway and, with a broker connection (``serve --mqtt``), revoke its
        broker identity: a retired gateway cannot publish. If the revocation fails the gateway
        stays retired and the answer is 503 naming what to run (reconcile lists it too)."""
        view = run(lambda s, t: assets.retire_gateway(s, gateway, now=t))
        broker = getattr(request.app.state, "broker", None)
        if broker is not None:
            try:
                enrolment.revoke(engine, broker, gateway, actor=me().user, now=now)
            except enrolment.BrokerFailed as exc:
                raise Unavailable(f"gateway {gateway} is retired, but its broker identity was "
                                  f"NOT revoked ({exc.reason}): POST /gateways/{gateway}/revoke"
                                  ) from exc
            except Conflict as exc:  # the broker's client of that name is not a gateway's
                raise Conflict(f"gateway {gateway} is retired; {exc.reason}") from exc
        return view

    # -- beds -----------------------------------------------------------------------------
    @app.get("/units/{site}/{unit}/beds", tags=["beds"])
    def list_beds(site: SiteId, unit: UnitId) -> list[BedView]:
        return run(lambda s, _: assets.list_beds(s, site, unit))

    @app.post("/units/{site}/{unit}/beds", status_code=201, tags=["beds"])
    def add_bed(site: SiteId, unit: UnitId, req: BedRequest) -> BedView:
        return run(lambda s, t: assets.add_bed(s, site, unit, req, now=t))

    @app.get("/units/{site}/{unit}/beds/{bed}", tags=["beds"])
    def show_bed(site: SiteId, unit: UnitId, bed: BedId) -> BedView:
        return run(lambda s, _: assets.show_bed(s, site, unit, bed))

    @app.post("/units/{site}/{unit}/beds/{bed}/retire", tags=["beds"])
    def retire_bed(site: SiteId, unit: UnitId, bed: BedId) -> BedView:
        return run(lambda s, t: assets.retire_bed(s, site, unit, bed, now=t))

    # -- devices --------------------------------------------------------------------------
    @app.get("/devices", tags=["devices"])
    def list_devices(
        status: Annotated[str | None, Query(pattern="^(active|retired)$")] = None,
    ) -> list[DeviceView]:
        return run(lambda s, _: assets.list_devices(s, status))

    @app.post("/devices", status_code=201, tags=["devices"])
    def add_device(req: DeviceRequest) -> DeviceView:
        return run(lambda s, t: assets.add_device(s, req, now=t))

    @app.get("/devices/{device}", tags=["devices"])
    def show_device(device: DeviceId) -> DeviceView:
        return run(lambda s, _: assets.show_device(s, device))

    @app.patch("/devices/{device}", tags=["devices"])
    def update_device(device: DeviceId, req: DeviceUpdate) -> DeviceView:
        return run(lambda s, _: assets.update_device(s, device, req))

    @app.post("/devices/{device}/retire", tags=["devices"])
    def retire_device(device: DeviceId) -> DeviceView:
        return run(lambda s, t: assets.retire_device(s, device, now=t))

    @app.post("/devices/{device}/seen", tags=["devices"])
    def device_seen(device: DeviceId, req: Annotated[TimeRequest | None, Body()] = None,
                    ) -> DeviceView:
        """A service heard from the device (at ``time``, default now); kept if the latest."""
        return run(lambda s, t: assets.device_seen(
            s, device, min((req.time if req and req.time else t), t)))

    @app.get("/devices/{device}/assignments", tags=["devices"])
    def device_history(device: DeviceId) -> list[AssignmentView]:
        return run(lambda s, _: assets.device_history(s, device))

    @app.post("/devices/{device}/unassign", tags=["devices"])
    def unassign(device: DeviceId, req: Annotated[TimeRequest | None, Body()] = None,
                 ) -> AssignmentView:
        return run(lambda s, t: care.unassign(s, device, req or TimeRequest(), now=t))

    @app.get("/devices/{device}/at", tags=["devices"])
    def device_at(device: DeviceId, time: Annotated[Instant, Query()]) -> AtAnswer:
        """Which bed the device served at ``time``, through which gateway, and who lay there."""
        return run(lambda s, _: care.at(s, device, time))

    @app.post("/assignments", status_code=201, tags=["devices"])
    def assign(req: AssignRequest) -> AssignmentView:
        return run(lambda s, t: care.assign(s, req, now=t))

    # -- patients and admissions ----------------------------------------------------------
    @app.get("/patients", tags=["patients"])
    def list_patients() -> list[PatientView]:
        return run(lambda s, _: care.list_patients(s))

    @app.post("/patients", status_code=201, tags=["patients"])
    def add_patient(req: PatientRequest) -> PatientView:
        return run(lambda s, t: care.add_patient(s, req, now=t))

    @app.get("/patients/{patient}", tags=["patients"])
    def show_patient(patient: PatientPath) -> PatientView:
        return run(lambda s, _: care.show_patient(s, patient))

    @app.get("/admissions", tags=["admissions"])
    def list_admissions(open: bool = False) -> list[AdmissionView]:
        return run(lambda s, _: care.list_admissions(s, open_only=open))

    @app.post("/admissions", status_code=201, tags=["admissions"])
    def admit(req: AdmitRequest) -> AdmissionView:
        return run(lambda s, t: care.admit(s, req, now=t))

    @app.get("/admissions/{admission}", tags=["admissions"])
    def show_admission(admission: AdmissionRef) -> AdmissionView:
        return run(lambda s, _: care.show_admission(s, admission))

    @app.post("/admissions/{admission}/transfer", tags=["admissions"])
    def transfer(admission: AdmissionRef, req: TransferRequest) -> AdmissionView:
        return run(lambda s, t: care.transfer(s, admission, req, now=t))

    @app.post("/admissions/{admission}/discharge", tags=["admissions"])
    def discharge(admission: AdmissionRef, req: Annotated[TimeRequest | None, Body()] = None,
                  ) -> AdmissionView:
        return run(lambda s, t: care.discharge(s, admission, req or TimeRequest(), now=t))

    # -- gateway enrolment (registry.enroll): a broker identity, its secret answered once --
    def broker_admin(request: Request) -> Any:
        broker = getattr(request.app.state, "broker", None)
        if broker is None:
            raise Unavailable("no broker connection (serve --mqtt): the registry cannot enrol, "
                              "rotate or revoke gateways")
        return broker

    @app.post("/gateways/{gateway}/enroll", status_code=201, tags=["gateways"])
    def enroll_gateway(gateway: GatewayId, req: enrolment.EnrollRequest, request: Request,
                       response: Response) -> enrolment.Enrollment:
        """Register the gateway (if new) and make its broker identity; the answer holds its
        password and edge config, once (biomed, admin)."""
        b = broker_admin(request)
        response.headers["Cache-Control"] = "no-store"
        return enrolment.enroll(engine, b, gateway, req, broker=b.target(), actor=me().user,
                                now=now)

    @app.post("/gateways/{gateway}/rotate", tags=["gateways"])
    def rotate_gateway(gateway: GatewayId, request: Request, response: Response,
                       req: Annotated[enrolment.RotateRequest | None, Body()] = None,
                       ) -> enrolment.Enrollment:
        """New credentials for an enrolled gateway; the old ones stop working at once."""
        b = broker_admin(request)
        response.headers["Cache-Control"] = "no-store"
        return enrolment.rotate(engine, b, gateway, req, broker=b.target(), actor=me().user,
                                now=now)

    @app.post("/gateways/{gateway}/revoke", tags=["gateways"])
    def revoke_gateway(gateway: GatewayId, request: Request) -> enrolment.Revocation:
        """Remove the gateway's broker identity: disconnected at once, refused from then on."""
        return enrolment.revoke(engine, broker_admin(request), gateway, actor=me().user,
                                now=now)

    # -- alerts: a nurse's command, handed to the broker ----------------------------------
    def alert_command(site: str, unit: str, alert_id: str, action: CommandAction,
                      req: AlertActionRequest | None) -> AlertCommand:
        p = me()
        body = req or AlertActionRequest()
        try:
            cmd = AlertCommand(command_id=uuid.uuid4().hex, action=action, alert_id=alert_id,
                               by=p.user, at=now(), minutes=body.minutes, reason=body.reason)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise Invalid(str(first.get("msg", "invalid")).removeprefix("Value error, "),
                          ) from None
        run(lambda s, _: assets.show_unit(s, site, unit))  # an unknown unit: 404
        if publish_command is None:
            raise Unavailable("no broker configured: the registry cannot send alert commands")
        try:
            publish_command(site, unit, cmd)
        except Exception as exc:  # whatever the transport raised: answered, logged, not lost
            log.warning("alert command %s not published: %s", cmd.command_id, exc)
            raise Unavailable(f"the command was not published: {exc}") from exc
        run(lambda s, t: audit.record(
            s, p.user, f"alert.{action.value}", f"alerts/{site}/{unit}/{alert_id}",
            {"command": cmd.command_id}, now=t))
        return cmd

    @app.post("/units/{site}/{unit}/alerts/{alert_id}/ack", status_code=202, tags=["alerts"])
    def ack_alert(site: SiteId, unit: UnitId, alert_id: AlertId,
                  req: Annotated[AlertActionRequest | None, Body()] = None) -> AlertCommand:
        """Acknowledge an alert (nurses): the command is published to the unit's alert
        engine, ``by`` the authenticated user."""
        return alert_command(site, unit, alert_id, CommandAction.ACK, req)

    @app.post("/units/{site}/{unit}/alerts/{alert_id}/snooze", status_code=202, tags=["alerts"])
    def snooze_alert(site: SiteId, unit: UnitId, alert_id: AlertId,
                     req: AlertActionRequest) -> AlertCommand:
        """Silence an alert for ``minutes`` (the engine refuses it for a high alert)."""
        return alert_command(site, unit, alert_id, CommandAction.SNOOZE, req)

    @app.post("/units/{site}/{unit}/alerts/{alert_id}/escalate", status_code=202,
              tags=["alerts"])
    def escalate_alert(site: SiteId, unit: UnitId, alert_id: AlertId,
                       req: Annotated[AlertActionRequest | None, Body()] = None,
                       ) -> AlertCommand:
        """Move an alert one step along its escalation chain now."""
        return alert_command(site, unit, alert_id, CommandAction.ESCALATE, req)

    @app.post("/units/{site}/{unit}/alerts/{alert_id}/resolve", status_code=202,
              tags=["alerts"])
    def resolve_alert(site: SiteId, unit: UnitId, alert_id: AlertId,
                      req: AlertActionRequest) -> AlertCommand:
        """Close an alert, with a ``reason``."""
        return alert_command(site, unit, alert_id, CommandAction.RESOLVE, req)

    # -- charting: a nurse's set, handed to the broker ------------------------------------
    @app.post("/units/{site}/{unit}/charted-sets", status_code=202, tags=["charting"])
    def chart_set(site: SiteId, unit: UnitId, req: ChartEntry) -> ChartedSet:
        """Chart a set of observations for one bed (nurses): ``by`` is the authenticated user,
        ``charted_at`` the registry's now; validated as ingest and the alert engine validate
        it (422 with the reason), published on the unit's charting topic (QoS 1) and answered
        once the broker has it (503 if not). The answer is the set as published."""
        p = me()
        t = now()
        ctx = run(lambda s, _: unit_context(s, site, unit, at=t))  # an unknown unit: 404
        try:
            cs = charting.build_charted_set(
                ctx, bed_id=req.bed_id, items=req.items, by=p.user, now=t,
                observed_at=req.observed_at, supersedes=req.supersedes,
                already_escalated=req.already_escalated)
        except charting.UnknownBed as exc:
            raise NotFound(str(exc)) from None
        except charting.ChartEntryError as exc:
            raise Invalid(str(exc)) from None
        if publish_chart is None:
            raise Unavailable("no broker configured: the registry cannot send charted sets")
        try:
            publish_chart(site, unit, cs)
        except Exception as exc:  # whatever the transport raised: answered, logged, not lost
            log.warning("charted set %s not published: %s", cs.set_id, exc)
            raise Unavailable(f"the set was not published: {exc}") from exc
        run(lambda s, t2: audit.record(
            s, p.user, "chart.entered", f"charting/{site}/{unit}/{cs.bed_id}",
            {"set": cs.set_id, "supersedes": cs.supersedes}, now=t2))
        return cs

    return app
