"""Bed and patient context from a ward file (TOML), until the registry service replaces it.

The ward file is the central knowledge the edge deliberately does not have: which gateway and
device serve which bed, and which (pseudonymous) patient, born when, lies in it. Ingest uses it
to reject unknown gateways/devices and to tag points with the bed; alerting uses it for the
patient's age (scoring band) and the unit's scoring system.

Example::

    site = "demo"
    unit = "picu"
    scoring_system = "bedside_pews"
    generation = "demo"          # the only generation this ward's gateways may send

    [alerting]
    onset_s = 5                  # persistence before a score alert is raised
    threshold = 7                # partial/complete total that raises an alert

    [[gateways]]
    id = "gw-a"

    [[beds]]
    id = "bed01"
    patient = "P-1a2b3c"         # pseudonymous id, never a name or MRN
    dob = "2022-03-14"
    gateway = "gw-a"
    devices = ["mon-bed01"]
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wardwire.config import load_toml_model
from wardwire.models import Generation, Ident


class _Ward(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GatewayEntry(_Ward):
    id: Ident


class BedEntry(_Ward):
    id: Ident
    patient: Annotated[str, Field(pattern=r"^P-[A-Za-z0-9]{4,32}$")] | None = None
    dob: date | None = None
    gateway: Ident
    devices: list[Ident]


class AlertingSection(_Ward):
    onset_s: Annotated[float, Field(ge=0, le=600)] = 30.0
    clear_s: Annotated[float, Field(ge=0, le=3600)] = 30.0
    threshold: Annotated[int, Field(ge=1)] = 7
    stale_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    escalate_after_s: Annotated[float, Field(gt=0)] = 120.0


class WardFile(_Ward):
    site: Ident
    unit: Ident
    scoring_system: str = "bedside_pews"
    generation: Generation = Generation.REAL
    alerting: AlertingSection = AlertingSection()
    gateways: list[GatewayEntry]
    beds: list[BedEntry]

    @model_validator(mode="after")
    def _consistent(self) -> WardFile:
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

    def bed_of_device(self, gateway_id: str, device_id: str) -> BedEntry | None:
        """The bed a device serves, if that device is registered on that gateway."""
        for bed in self.beds:
            if bed.gateway == gateway_id and device_id in bed.devices:
                return bed
        return None

    def device_index(self) -> dict[tuple[str, str], BedEntry]:
        """(gateway, device) -> bed, for fast lookups on the hot path."""
        return {(b.gateway, d): b for b in self.beds for d in b.devices}

    def beds_of_gateway(self, gateway_id: str) -> list[BedEntry]:
        return [b for b in self.beds if b.gateway == gateway_id]


class WardFileError(Exception):
    """The ward file is missing or invalid; the message says where."""


def load_ward_file(path: Path) -> WardFile:
    """Read and validate a ward file; raises ``WardFileError`` with a readable message."""
    return load_toml_model(path, WardFile, "ward file", WardFileError)


def dump_ward_file(ward: WardFile) -> str:
    """Render a ward file as TOML (the demo writes one)."""
    d = ward.model_dump(mode="json")
    out = [
        f'site = "{d["site"]}"',
        f'unit = "{d["unit"]}"',
        f'scoring_system = "{d["scoring_system"]}"',
        f'generation = "{d["generation"]}"',
        "",
        "[alerting]",
    ]
    out += [f"{k} = {v}" for k, v in d["alerting"].items()]
    for g in d["gateways"]:
        out += ["", "[[gateways]]", f'id = "{g["id"]}"']
    for b in d["beds"]:
        out += ["", "[[beds]]", f'id = "{b["id"]}"', f'gateway = "{b["gateway"]}"']
        if b["patient"]:
            out.append(f'patient = "{b["patient"]}"')
        if b["dob"]:
            out.append(f"dob = {b['dob']}")
        out.append("devices = [" + ", ".join(f'"{x}"' for x in b["devices"]) + "]")
    return "\n".join(out) + "\n"
