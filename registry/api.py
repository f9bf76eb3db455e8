"""The registry's REST API (FastAPI): the service layer over HTTP, one transaction per request.

Every route calls one service-layer function inside ``registry.db.transaction``. A refused
request answers 4xx with ``{"error": kind, "reason": "one sentence"}`` (a malformed one: 422,
with ``detail`` listing each bad field) and writes nothing. ``GET /units/{site}/{unit}/context``
answers exactly the ``UnitContext`` JSON that ``servicekit.context`` reads from a registry URL.
The OpenAPI document is at ``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Body, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry import assets, care
from registry.db import transaction
from registry.errors import RegistryError
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
from registry.unitcontext import unit_context
from wardwire.context import PATIENT_PATTERN, UnitContext

__all__ = ["ErrorBody", "create_app"]

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
        (422, "A malformed or implausible value"),
    )
}


def _validation_reason(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts) or "invalid request"


def create_app(engine: Engine, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The API over ``engine`` (already at the newest schema revision); ``clock`` gives ``now``
    (aware UTC; tests inject one)."""
    now = clock or (lambda: datetime.now(UTC))
    app = FastAPI(
        title="wardwatch registry",
        version="1",
        description="Sites, units, beds, gateways, devices, patients and their history; the "
        "unit context every service reads.",
        responses=ERRORS,
    )

    @app.exception_handler(RegistryError)
    async def _refused(_request: Request, exc: RegistryError) -> JSONResponse:
        return JSONResponse({"error": exc.kind, "reason": exc.reason}, status_code=exc.status)

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
        with transaction(engine) as session:
            return fn(session, now())

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
        """The unit context the services read (``--context URL``), now or as it was ``at``."""
        return run(lambda s, t: unit_context(s, site, unit, at=at or t))

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
    def retire_gateway(gateway: GatewayId) -> GatewayView:
        return run(lambda s, t: assets.retire_gateway(s, gateway, now=t))

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

    return app
