"""The edge agent's configuration file format (TOML), validated by pydantic.

Example (``docs/edge-config.md`` documents every key)::

    [gateway]
    id = "gw-picu-01"          # also the MQTT username and client id
    site = "shch"
    unit = "picu"
    generation = "real"        # real | test | demo

    [broker]
    host = "mqtt.ward.example"
    port = 8883
    username = "gw-picu-01"
    password_file = "/etc/wardwatch/gw.pass"
    [broker.tls]
    ca_file = "/etc/wardwatch/ca.pem"

    [outbox]
    path = "/var/lib/wardwatch/outbox.db"

    [clock]                    # how far a device's clock may be from the gateway's
    max_ahead_s = 300
    max_age_s = 604800

    [[devices]]
    id = "mon-0042"
    driver = "wwmon"
    port = "/dev/ttyUSB0"      # or socket://host:port, rfc2217://host:port
    baudrate = 115200

The edge knows gateway and device ids only. Which bed a device serves is resolved centrally.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wardwire.models import Generation, Ident

M = TypeVar("M", bound=BaseModel)


class _Cfg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GatewaySection(_Cfg):
    id: Ident
    site: Ident
    unit: Ident
    generation: Generation = Generation.REAL


class TlsSection(_Cfg):
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate)")
        return self


class BrokerSection(_Cfg):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    tls: TlsSection | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    session_expiry_s: Annotated[int, Field(ge=0)] = 7 * 24 * 3600
    topic_root: str = "wm/v1"

    @model_validator(mode="after")
    def _one_password(self) -> BrokerSection:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give either password or password_file, not both")
        return self

    def resolved_password(self) -> str | None:
        """The password, reading ``password_file`` if that is how it was given."""
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return self.password


class OutboxSection(_Cfg):
    path: Path = Path("outbox.db")
    max_rows: Annotated[int, Field(ge=1000)] = 2_000_000
    overflow: Literal["drop_oldest", "reject_new"] = "drop_oldest"
    batch_max: Annotated[int, Field(ge=1, le=5000)] = 500
    linger_ms: Annotated[int, Field(ge=0, le=60000)] = 1000
    inflight_max: Annotated[int, Field(ge=1, le=1000)] = 50


class ClockSection(_Cfg):
    """How far a device's clock may stray from the gateway's before its time is not used.

    A device time more than ``max_ahead_s`` ahead of the gateway's clock, or older than
    ``max_age_s``, is implausible: the value is kept, re-timed with the gateway's receive time
    (``time_source=gateway``, the device's reading in ``device_time``). Whole seconds, strict:
    a typo such as ``"300"`` or ``true`` is an error, not a bound.
    """

    max_ahead_s: Annotated[int, Field(strict=True, ge=0, le=86_400)] = 300
    max_age_s: Annotated[int, Field(strict=True, ge=60, le=366 * 86_400)] = 7 * 86_400


class DeviceSection(_Cfg):
    id: Ident
    driver: str
    port: str | None = Field(default=None, description="Serial device path or pyserial URL.")
    baudrate: Annotated[int, Field(ge=300, le=4_000_000)] | None = None  # None: driver default
    ble_address: str | None = None

    @model_validator(mode="after")
    def _has_link(self) -> DeviceSection:
        if self.port is None and self.ble_address is None:
            raise ValueError(f"device {self.id!r} needs a port (serial/URL) or a ble_address")
        return self


class EdgeConfig(_Cfg):
    gateway: GatewaySection
    broker: BrokerSection = BrokerSection()
    outbox: OutboxSection = OutboxSection()
    clock: ClockSection = ClockSection()
    heartbeat_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    devices: list[DeviceSection] = []

    @model_validator(mode="after")
    def _unique_devices(self) -> EdgeConfig:
        ids = [d.id for d in self.devices]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate device ids: {', '.join(dupes)}")
        return self


class ConfigError(Exception):
    """A configuration file is missing, not TOML, or not valid; the message says where."""


def load_toml_model(path: Path, model: type[M], what: str, error: type[Exception]) -> M:
    """Read a TOML file into ``model``; every failure raises ``error`` with a message naming
    the file and, for validation errors, each offending key path (shared by every file format
    wardwatch reads: edge config, ward file)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: invalid {what}:"]
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {where}: {err['msg']}")
        raise error("\n".join(lines)) from exc


def load_edge_config(path: Path) -> EdgeConfig:
    """Read and validate an edge config file; raises ``ConfigError`` with a readable message."""
    return load_toml_model(path, EdgeConfig, "edge config", ConfigError)


def dump_edge_config(cfg: EdgeConfig) -> str:
    """Render a config back to TOML (used by enrolment and the demo)."""
    out: list[str] = []

    def emit_table(name: str, data: dict[str, object]) -> None:
        scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and v is not None}
        out.append(f"[{name}]")
        out.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        out.append("")
        for k, v in data.items():
            if isinstance(v, dict):
                emit_table(f"{name}.{k}", v)

    data = cfg.model_dump(mode="json")
    for section in ("gateway", "broker", "outbox", "clock"):
        emit_table(section, data[section])
    out.append(f"heartbeat_s = {_toml_value(data['heartbeat_s'])}")
    out.append("")
    for dev in data["devices"]:
        out.append("[[devices]]")
        out.extend(f"{k} = {_toml_value(v)}" for k, v in dev.items() if v is not None)
        out.append("")
    # heartbeat_s is a top-level key: TOML requires it before the first table.
    top = [line for line in out if line.startswith("heartbeat_s")]
    rest = [line for line in out if not line.startswith("heartbeat_s")]
    return "\n".join([*top, "", *rest])


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    # A JSON string is a valid TOML basic string once DEL (allowed in JSON, not in TOML) is
    # escaped too; non-ASCII stays literal (TOML has no surrogate-pair escapes).
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
