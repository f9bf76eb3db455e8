"""The edge agent's configuration file format (TOML), validated by pydantic.

The gateway's own business, so it lives with the edge agent, not in the wire contract.

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

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from servicekit.tomlio import dump_model, load_toml_model
from wardwire.models import Generation, Ident


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


class MetricsSection(_Cfg):
    """Prometheus ``/metrics`` of the gateway (device counters, outbox, broker link); off
    unless a port is given. Loopback by default: a gateway exposes nothing to the ward network
    unless its operator says so."""

    port: Annotated[int, Field(strict=True, ge=0, le=65535)] | None = None
    host: str = "127.0.0.1"


class EdgeConfig(_Cfg):
    gateway: GatewaySection
    broker: BrokerSection = BrokerSection()
    outbox: OutboxSection = OutboxSection()
    clock: ClockSection = ClockSection()
    metrics: MetricsSection = MetricsSection()
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


def load_edge_config(path: Path) -> EdgeConfig:
    """Read and validate an edge config file; raises ``ConfigError`` with a readable message."""
    return load_toml_model(path, EdgeConfig, "edge config", ConfigError)


def dump_edge_config(cfg: EdgeConfig) -> str:
    """Render a config back to TOML that :func:`load_edge_config` reads to an equal config
    (used by enrolment and the demo)."""
    return dump_model(cfg)
