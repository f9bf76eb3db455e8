"""The registry's tables (SQLAlchemy 2 typed ORM): assets, people and the history joining them.

Assets (sites, units, beds, gateways, devices) are retired, never deleted, so history keeps
pointing at them. Patients are a pseudonymous id and a date of birth, nothing else. The
history tables hold half-open time ranges ``[started_at, ended_at)``; ``ended_at IS NULL`` is
the current one. A range is closed once and never rewritten: a transfer closes one bed stay and
opens the next, so "where was this device, and who lay there, at 14:02" can always be answered.

Each table has an integer primary key ``pk`` used by foreign keys, and the public id (``id``)
the API and the CLI use. The partial unique indexes (``... WHERE ended_at IS NULL``) make the
database itself refuse a second open range for one device, bed, admission or patient even if two
writers race past the service layer's checks.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Admission",
    "AuditHead",
    "AuditRecord",
    "Base",
    "Bed",
    "BedStay",
    "Device",
    "DeviceAssignment",
    "Gateway",
    "Patient",
    "Site",
    "Token",
    "Unit",
    "User",
    "UtcDateTime",
]

ID_LEN = 64
#: constraint names the same on every database, so migrations can name what they alter
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every database.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored as naive
    UTC (SQLAlchemy's fixed-width text, which sorts and compares in time order) and read back
    aware. A naive datetime never gets in: the service layer only handles aware ones.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _open(column: str) -> dict[str, Any]:
    """Keyword arguments of a partial index over the rows whose range is still open."""
    where = text(f"{column} IS NULL")
    return {"sqlite_where": where, "postgresql_where": where}


class _Asset:
    """What every asset has: a status and when it was created and retired."""

    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Site(_Asset, Base):
    __tablename__ = "sites"
    pk: Mapped[int] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))

    units: Mapped[list[Unit]] = relationship(back_populates="site")


class Unit(_Asset, Base):
    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("site_pk", "id"),)
    pk: Mapped[int] = mapped_column(primary_key=True)
    site_pk: Mapped[int] = mapped_column(ForeignKey("sites.pk"))
    id: Mapped[str] = mapped_column(String(ID_LEN))
    time_zone: Mapped[str] = mapped_column(String(64))
    scoring_system: Mapped[str] = mapped_column(String(32))
    rules_file: Mapped[str | None] = mapped_column(String(1024))
    generation: Mapped[str] = mapped_column(String(8))

    site: Mapped[Site] = relationship(back_populates="units")


class Gateway(_Asset, Base):
    __tablename__ = "gateways"
    pk: Mapped[int] = mapped_column(primary_key=True)
    #: unique across the registry: the broker binds a gateway's client id broker-wide
    id: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    unit_pk: Mapped[int] = mapped_column(ForeignKey("units.pk"), index=True)

    unit: Mapped[Unit] = relationship()


class Bed(_Asset, Base):
    __tablename__ = "beds"
    __table_args__ = (UniqueConstraint("unit_pk", "id"),)
    pk: Mapped[int] = mapped_column(primary_key=True)
    unit_pk: Mapped[int] = mapped_column(ForeignKey("units.pk"))
    id: Mapped[str] = mapped_column(String(ID_LEN))
    #: the gateway that serves the bed when none of its devices says otherwise (the default
    #: gateway of a device assignment, and the bed's gateway in the unit context)
    gateway_pk: Mapped[int | None] = mapped_column(ForeignKey("gateways.pk"))

    unit: Mapped[Unit] = relationship()
    gateway: Mapped[Gateway | None] = relationship()


class Device(_Asset, Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("manufacturer", "serial_number"),)
    pk: Mapped[int] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    #: asset data: required by ``device add``, unrecorded (NULL) for a device imported from a
    #: ward file until ``device update`` completes it
    manufacturer: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(128))
    serial_number: Mapped[str | None] = mapped_column(String(64))
    udi: Mapped[str | None] = mapped_column(String(128))
    driver: Mapped[str | None] = mapped_column(String(64))
    port: Mapped[str | None] = mapped_column(String(256))
    ble_address: Mapped[str | None] = mapped_column(String(17))
    firmware: Mapped[str | None] = mapped_column(String(64))
    #: calibration / preventive maintenance due (added by revision 0002)
    maintenance_due: Mapped[date | None] = mapped_column(Date())
    #: when a service last heard from it (added by revision 0002)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Patient(Base):
    """A pseudonymous id and a date of birth (the scoring band depends on age): no name, no
    medical record number."""

    __tablename__ = "patients"
    pk: Mapped[int] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    dob: Mapped[date] = mapped_column(Date())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Admission(Base):
    """One stay of a patient on the ward, from admission to discharge, across transfers."""

    __tablename__ = "admissions"
    __table_args__ = (
        CheckConstraint("discharged_at IS NULL OR discharged_at > admitted_at", name="range"),
        Index("ix_admissions_open_patient", "patient_pk", unique=True, **_open("discharged_at")),
    )
    pk: Mapped[int] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    patient_pk: Mapped[int] = mapped_column(ForeignKey("patients.pk"), index=True)
    admitted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    discharged_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    patient: Mapped[Patient] = relationship()
    stays: Mapped[list[BedStay]] = relationship(
        back_populates="admission", order_by="BedStay.started_at"
    )


class BedStay(Base):
    """An admission in one bed over ``[started_at, ended_at)``; a transfer ends one and starts
    the next (``end_reason`` says which: ``transfer`` or ``discharge``)."""

    __tablename__ = "bed_stays"
    __table_args__ = (
        CheckConstraint("ended_at IS NULL OR ended_at > started_at", name="range"),
        Index("ix_bed_stays_open_bed", "bed_pk", unique=True, **_open("ended_at")),
        Index("ix_bed_stays_open_admission", "admission_pk", unique=True, **_open("ended_at")),
        Index("ix_bed_stays_bed_started", "bed_pk", "started_at"),
    )
    pk: Mapped[int] = mapped_column(primary_key=True)
    admission_pk: Mapped[int] = mapped_column(ForeignKey("admissions.pk"), index=True)
    bed_pk: Mapped[int] = mapped_column(ForeignKey("beds.pk"))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_reason: Mapped[str | None] = mapped_column(String(16))

    admission: Mapped[Admission] = relationship(back_populates="stays")
    bed: Mapped[Bed] = relationship()


class DeviceAssignment(Base):
    """A device serving a bed through a gateway over ``[started_at, ended_at)``."""

    __tablename__ = "device_assignments"
    __table_args__ = (
        CheckConstraint("ended_at IS NULL OR ended_at > started_at", name="range"),
        Index("ix_device_assignments_open_device", "device_pk", unique=True, **_open("ended_at")),
        Index("ix_device_assignments_device_started", "device_pk", "started_at"),
    )
    pk: Mapped[int] = mapped_column(primary_key=True)
    device_pk: Mapped[int] = mapped_column(ForeignKey("devices.pk"))
    gateway_pk: Mapped[int] = mapped_column(ForeignKey("gateways.pk"), index=True)
    bed_pk: Mapped[int] = mapped_column(ForeignKey("beds.pk"), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    device: Mapped[Device] = relationship()
    gateway: Mapped[Gateway] = relationship()
    bed: Mapped[Bed] = relationship()


class User(Base):
    """A person (or a service process) who may use the API: a role, an argon2 password hash
    (none for a service identity that only holds tokens), active or disabled. Never deleted:
    the audit log names users."""

    __tablename__ = "users"
    pk: Mapped[int] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(ID_LEN), unique=True)
    role: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    password_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Token(Base):
    """A bearer token: the public id and the SHA-256 of its secret (the secret itself is shown
    once and never stored). Valid in ``[issued_at, expires_at)`` unless revoked."""

    __tablename__ = "tokens"
    __table_args__ = (CheckConstraint("expires_at > issued_at", name="range"),)
    pk: Mapped[int] = mapped_column(primary_key=True)
    id: Mapped[str] = mapped_column(String(32), unique=True)
    user_pk: Mapped[int] = mapped_column(ForeignKey("users.pk"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    #: ``login`` (from POST /login) or ``issued`` (by ``registry user token``)
    kind: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    user: Mapped[User] = relationship()


class AuditRecord(Base):
    """One record of the hash chain (``registry.audit``): ``hash`` covers every other field and
    ``prev``, the hash of record ``seq - 1``."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(ID_LEN))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    #: canonical JSON (ids and changed field names, never a date of birth or a pseudonym)
    detail: Mapped[str] = mapped_column(Text())
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The single row (``id`` 1) naming the newest audit record; every writer locks it, so
    concurrent transactions append one chain."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column()
    hash: Mapped[str] = mapped_column(String(64))
