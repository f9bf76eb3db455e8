"""Unit context: which gateways and devices serve which bed of a unit, and who lies in it.

This is the central knowledge the edge deliberately does not have. The registry serves it; every
cloud-side service reads it through ``servicekit.context`` (from a ward file today, from the
registry's API tomorrow) and gets these types either way. Pure data: no file or network I/O.

A bed carries a pseudonymous patient id and a date of birth (the scoring band depends on age),
never a name or a medical record number.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from wardwire.models import Generation, Ident

__all__ = ["BedContext", "GatewayContext", "UnitContext"]

PATIENT_PATTERN = r"^P-[A-Za-z0-9]{4,32}$"
#: an IANA time zone name's shape (``Asia/Shanghai``); whether it exists is checked where the
#: zone is loaded (the contract reads no files)
TimeZoneName = Annotated[
    str, Field(max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")
]


class _Context(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GatewayContext(_Context):
    id: Ident


class BedContext(_Context):
    id: Ident
    patient: Annotated[str, Field(pattern=PATIENT_PATTERN)] | None = None
    dob: date | None = None
    gateway: Ident
    devices: list[Ident]
    #: the registry's id of the admission in the bed (a new one means a new occupant); None
    #: from a ward file, or for an empty bed
    admission: Ident | None = None


class UnitContext(_Context):
    """One unit: its gateways, its beds, the scoring system it uses, the generation it sends."""

    site: Ident
    unit: Ident
    #: the unit's IANA time zone (ages change at local midnight); None: UTC, or the alert
    #: rules file's ``time_zone``
    time_zone: TimeZoneName | None = None
    scoring_system: str = "bedside_pews"
    generation: Generation = Generation.REAL
    gateways: list[GatewayContext]
    beds: list[BedContext]

    _devices: dict[tuple[str, str], BedContext] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> UnitContext:
        gws = {g.id for g in self.gateways}
        seen: dict[str, str] = {}
        for bed in self.beds:
            if bed.gateway not in gws:
                raise ValueError(f"bed {bed.id}: gateway {bed.gateway!r} is not declared")
            for dev in bed.devices:
                if dev in seen:
                    raise ValueError(f"device {dev!r} assigned to both {seen[dev]} and {bed.id}")
                seen[dev] = bed.id
        ids = [b.id for b in self.beds]
        if len(ids) != len(set(ids)):
            raise ValueError("duplicate bed ids")
        return self

    def model_post_init(self, context: object, /) -> None:
        self._devices = {(b.gateway, d): b for b in self.beds for d in b.devices}

    def device_index(self) -> dict[tuple[str, str], BedContext]:
        """(gateway, device) -> bed: the one index every service looks devices up in."""
        return self._devices

    def bed_of(self, gateway_id: str, device_id: str) -> BedContext | None:
        """The bed a device serves, if that device is registered on that gateway."""
        return self._devices.get((gateway_id, device_id))

    def gateway_ids(self) -> set[str]:
        return {g.id for g in self.gateways}

    def beds_of_gateway(self, gateway_id: str) -> list[BedContext]:
        return [b for b in self.beds if b.gateway == gateway_id]
