"""What goes into and comes out of the registry: the requests it takes and the views it returns.

The same pydantic models are the REST API's request bodies and responses (so its OpenAPI
document describes them) and what the CLI builds from its options and prints with ``--json``.
Everything a request carries is checked here, before the service layer looks at the database:
ids are opaque topic-level ids, free text has no control characters, a serial number, UDI, BLE
address or time zone that is malformed is refused with a sentence saying what the form is.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from wardwire.context import PATIENT_PATTERN, TimeZoneName
from wardwire.models import Generation, Ident

__all__ = [
    "AdmissionView",
    "AdmitRequest",
    "AssignRequest",
    "AssignmentView",
    "AtAnswer",
    "BedRequest",
    "BedView",
    "DeviceRequest",
    "DeviceUpdate",
    "DeviceView",
    "GatewayRequest",
    "GatewayView",
    "ImportReport",
    "Instant",
    "PatientId",
    "PatientRequest",
    "PatientView",
    "ScoringSystem",
    "SiteRequest",
    "SiteView",
    "StayView",
    "TimeRequest",
    "TransferRequest",
    "UnitRequest",
    "UnitView",
]

PatientId = Annotated[str, Field(pattern=PATIENT_PATTERN, examples=["P-1a2b3c"])]
#: free text (a manufacturer, a model, a site's name): printable, one line
Text = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("a time between 1970 and 3000 (ISO 8601 with a UTC offset)")
    return value.astimezone(UTC)


#: a point in time: ISO 8601 with a UTC offset (``2025-06-01T14:02:00+08:00``, ``...Z``); a
#: time without an offset is refused (whose 14:02?), and it is kept in UTC
Instant = Annotated[AwareDatetime, AfterValidator(_utc)]


class ScoringSystem(StrEnum):
    BEDSIDE_PEWS = "bedside_pews"
    UK_NPEWS = "uk_npews"
    BRIGHTON_PEWS = "brighton_pews"
    NEWS2 = "news2"


def _zone_exists(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name, e.g. Europe/London)") \
            from None
    return name


def _serial(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}", value):
        raise ValueError(
            "bad serial number format: 1-64 letters, digits, '.', '_', '/' or '-', starting "
            "with a letter or digit"
        )
    return value


def _gtin_ok(digits: str) -> bool:
    """GS1 mod-10 check digit of a GTIN-14."""
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


_GS1 = re.compile(r"\(01\)(\d{14})((?:\((?:10|21)\)[!-'*-~]{1,20}|\((?:11|17)\)\d{6})*)")
UDI_FORMS = (
    "bad UDI format: GS1 '(01)' + a 14-digit GTIN with a valid check digit, optionally "
    "followed by (11)/(17) YYMMDD, (10) lot, (21) serial; or HIBCC ('+...') or ICCBBA ('=...')"
)


def _udi(value: str) -> str:
    m = _GS1.fullmatch(value)
    if m is not None:
        if not _gtin_ok(m.group(1)):
            raise ValueError(f"bad UDI: GTIN {m.group(1)} has a wrong check digit")
        return value
    if re.fullmatch(r"\+[A-Z][A-Z0-9]{3}[A-Z0-9$/+%. -]{2,66}", value):  # HIBCC
        return value
    if re.fullmatch(r"=[A-Z0-9=/,.%+&-][A-Z0-9=/,.%+& -]{4,69}", value):  # ICCBBA
        return value
    raise ValueError(UDI_FORMS)


def _ble(value: str) -> str:
    if not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", value):
        raise ValueError("bad BLE address: six hex pairs separated by ':' (AA:BB:CC:DD:EE:FF)")
    return value.upper()


Zone = Annotated[TimeZoneName, AfterValidator(_zone_exists)]
Serial = Annotated[str, Field(max_length=64), AfterValidator(_serial)]
Udi = Annotated[str, Field(max_length=128), AfterValidator(_udi)]
BleAddress = Annotated[str, Field(max_length=17), AfterValidator(_ble)]
Driver = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", examples=["wwmon"])]
#: a serial port or a pyserial URL (``/dev/ttyUSB0``, ``socket://10.0.0.5:4001``)
Port = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\s\x00-\x1f\x7f]+$")]
Firmware = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Path = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f]+$")]
Day = Annotated[date, Field(ge=date(1900, 1, 1), le=date(2999, 12, 31))]


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- requests ---------------------------------------------------------------------------------
class SiteRequest(_Request):
    id: Ident
    name: Text | None = None


class UnitRequest(_Request):
    site: Ident
    id: Ident
    time_zone: Zone = Field(examples=["Europe/London"])
    scoring_system: ScoringSystem = ScoringSystem.BEDSIDE_PEWS
    rules_file: Path | None = None
    generation: Generation = Generation.REAL


class BedRequest(_Request):
    id: Ident
    #: the gateway serving the bed by default (of this unit)
    gateway: Ident | None = None


class GatewayRequest(_Request):
    id: Ident


class DeviceUpdate(_Request):
    """Asset data that changes over a device's life (a firmware upgrade, a new PM date);
    absent fields are left as they are."""

    manufacturer: Text | None = None
    model: Text | None = None
    serial_number: Serial | None = None
    udi: Udi | None = None
    driver: Driver | None = None
    port: Port | None = None
    ble_address: BleAddress | None = None
    firmware: Firmware | None = None
    maintenance_due: Day | None = None

    @model_validator(mode="after")
    def _one_link(self) -> DeviceUpdate:
        if self.port is not None and self.ble_address is not None:
            raise ValueError("a device has a port or a BLE address, not both")
        return self


class DeviceRequest(DeviceUpdate):
    id: Ident
    manufacturer: Text
    model: Text
    serial_number: Serial
    driver: Driver


class PatientRequest(_Request):
    id: PatientId
    dob: Day


class TimeRequest(_Request):
    """When it happened (default: now)."""

    time: Instant | None = None


class AssignRequest(TimeRequest):
    device: Ident
    site: Ident
    unit: Ident
    bed: Ident
    #: default: the bed's gateway
    gateway: Ident | None = None


class AdmitRequest(TimeRequest):
    patient: PatientId
    site: Ident
    unit: Ident
    bed: Ident


class TransferRequest(TimeRequest):
    site: Ident
    unit: Ident
    bed: Ident


# -- views ------------------------------------------------------------------------------------
Status = Literal["active", "retired"]


class SiteView(_View):
    id: str
    name: str | None
    status: Status
    created_at: datetime
    retired_at: datetime | None


class UnitView(_View):
    site: str
    id: str
    time_zone: str
    scoring_system: str
    rules_file: str | None
    generation: str
    status: Status
    created_at: datetime
    retired_at: datetime | None


class GatewayView(_View):
    id: str
    site: str
    unit: str
    status: Status
    created_at: datetime
    retired_at: datetime | None


class AssignmentView(_View):
    id: int
    device: str
    gateway: str
    site: str
    unit: str
    bed: str
    started_at: datetime
    ended_at: datetime | None


class BedView(_View):
    site: str
    unit: str
    id: str
    gateway: str | None
    status: Status
    created_at: datetime
    retired_at: datetime | None
    #: now: the devices assigned to it, the admission and patient in it
    devices: list[str]
    admission: str | None
    patient: str | None


class DeviceView(_View):
    id: str
    manufacturer: str | None
    model: str | None
    serial_number: str | None
    udi: str | None
    driver: str | None
    port: str | None
    ble_address: str | None
    firmware: str | None
    maintenance_due: date | None
    status: Status
    last_seen: datetime | None
    created_at: datetime
    retired_at: datetime | None
    #: the current assignment, if any
    assignment: AssignmentView | None


class StayView(_View):
    site: str
    unit: str
    bed: str
    started_at: datetime
    ended_at: datetime | None
    #: ``transfer`` or ``discharge`` once ended
    end_reason: str | None


class AdmissionView(_View):
    id: str
    patient: str
    admitted_at: datetime
    discharged_at: datetime | None
    stays: list[StayView]


class PatientView(_View):
    id: str
    dob: date
    created_at: datetime
    #: the open admission, if any
    admission: str | None


class AtAnswer(_View):
    """Where a device was at a time, and who lay in that bed then (None: nowhere / nobody)."""

    device: str
    time: datetime
    assignment: int | None
    gateway: str | None
    site: str | None
    unit: str | None
    bed: str | None
    admission: str | None
    patient: str | None


class ImportReport(_View):
    site: str
    unit: str
    created: dict[str, int]
    #: devices created from the ward file without asset data (``device update`` completes them)
    incomplete_devices: list[str]
