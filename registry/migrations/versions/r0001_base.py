"""The base tables: sites, units, gateways, beds, devices, patients, admissions, bed stays and
device assignments.

Revision ID: 0001
Revises:
Create Date: 2025-06-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _asset() -> list[sa.Column[object]]:
    return [
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("retired_at", TS, nullable=True),
    ]


def _open(column: str) -> dict[str, Any]:
    where = sa.text(f"{column} IS NULL")
    return {"sqlite_where": where, "postgresql_where": where}


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=True),
        *_asset(),
        sa.PrimaryKeyConstraint("pk", name="pk_sites"),
        sa.UniqueConstraint("id", name="uq_sites_id"),
    )
    op.create_table(
        "units",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("site_pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("scoring_system", sa.String(32), nullable=False),
        sa.Column("rules_file", sa.String(1024), nullable=True),
        sa.Column("generation", sa.String(8), nullable=False),
        *_asset(),
        sa.ForeignKeyConstraint(["site_pk"], ["sites.pk"], name="fk_units_site_pk_sites"),
        sa.PrimaryKeyConstraint("pk", name="pk_units"),
        sa.UniqueConstraint("site_pk", "id", name="uq_units_site_pk_id"),
    )
    op.create_table(
        "gateways",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("unit_pk", sa.Integer(), nullable=False),
        *_asset(),
        sa.ForeignKeyConstraint(["unit_pk"], ["units.pk"], name="fk_gateways_unit_pk_units"),
        sa.PrimaryKeyConstraint("pk", name="pk_gateways"),
        sa.UniqueConstraint("id", name="uq_gateways_id"),
    )
    op.create_index("ix_gateways_unit_pk", "gateways", ["unit_pk"])
    op.create_table(
        "beds",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("unit_pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("gateway_pk", sa.Integer(), nullable=True),
        *_asset(),
        sa.ForeignKeyConstraint(["unit_pk"], ["units.pk"], name="fk_beds_unit_pk_units"),
        sa.ForeignKeyConstraint(
            ["gateway_pk"], ["gateways.pk"], name="fk_beds_gateway_pk_gateways"
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_beds"),
        sa.UniqueConstraint("unit_pk", "id", name="uq_beds_unit_pk_id"),
    )
    op.create_table(
        "devices",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("manufacturer", sa.String(128), nullable=True),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("serial_number", sa.String(64), nullable=True),
        sa.Column("udi", sa.String(128), nullable=True),
        sa.Column("driver", sa.String(64), nullable=True),
        sa.Column("port", sa.String(256), nullable=True),
        sa.Column("ble_address", sa.String(17), nullable=True),
        sa.Column("firmware", sa.String(64), nullable=True),
        *_asset(),
        sa.PrimaryKeyConstraint("pk", name="pk_devices"),
        sa.UniqueConstraint("id", name="uq_devices_id"),
        sa.UniqueConstraint(
            "manufacturer", "serial_number", name="uq_devices_manufacturer_serial_number"
        ),
    )
    op.create_table(
        "patients",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("dob", sa.Date(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("pk", name="pk_patients"),
        sa.UniqueConstraint("id", name="uq_patients_id"),
    )
    op.create_table(
        "admissions",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("patient_pk", sa.Integer(), nullable=False),
        sa.Column("admitted_at", TS, nullable=False),
        sa.Column("discharged_at", TS, nullable=True),
        sa.CheckConstraint(
            "discharged_at IS NULL OR discharged_at > admitted_at", name="ck_admissions_range"
        ),
        sa.ForeignKeyConstraint(
            ["patient_pk"], ["patients.pk"], name="fk_admissions_patient_pk_patients"
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_admissions"),
        sa.UniqueConstraint("id", name="uq_admissions_id"),
    )
    op.create_index("ix_admissions_patient_pk", "admissions", ["patient_pk"])
    op.create_index(
        "ix_admissions_open_patient", "admissions", ["patient_pk"], unique=True,
        **_open("discharged_at"),
    )
    op.create_table(
        "bed_stays",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("admission_pk", sa.Integer(), nullable=False),
        sa.Column("bed_pk", sa.Integer(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("end_reason", sa.String(16), nullable=True),
        sa.CheckConstraint("ended_at IS NULL OR ended_at > started_at", name="ck_bed_stays_range"),
        sa.ForeignKeyConstraint(
            ["admission_pk"], ["admissions.pk"], name="fk_bed_stays_admission_pk_admissions"
        ),
        sa.ForeignKeyConstraint(["bed_pk"], ["beds.pk"], name="fk_bed_stays_bed_pk_beds"),
        sa.PrimaryKeyConstraint("pk", name="pk_bed_stays"),
    )
    op.create_index("ix_bed_stays_admission_pk", "bed_stays", ["admission_pk"])
    op.create_index("ix_bed_stays_bed_started", "bed_stays", ["bed_pk", "started_at"])
    op.create_index(
        "ix_bed_stays_open_bed", "bed_stays", ["bed_pk"], unique=True, **_open("ended_at")
    )
    op.create_index(
        "ix_bed_stays_open_admission", "bed_stays", ["admission_pk"], unique=True,
        **_open("ended_at"),
    )
    op.create_table(
        "device_assignments",
        sa.Column("pk", sa.Integer(), nullable=False),
        sa.Column("device_pk", sa.Integer(), nullable=False),
        sa.Column("gateway_pk", sa.Integer(), nullable=False),
        sa.Column("bed_pk", sa.Integer(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.CheckConstraint(
            "ended_at IS NULL OR ended_at > started_at", name="ck_device_assignments_range"
        ),
        sa.ForeignKeyConstraint(
            ["device_pk"], ["devices.pk"], name="fk_device_assignments_device_pk_devices"
        ),
        sa.ForeignKeyConstraint(
            ["gateway_pk"], ["gateways.pk"], name="fk_device_assignments_gateway_pk_gateways"
        ),
        sa.ForeignKeyConstraint(
            ["bed_pk"], ["beds.pk"], name="fk_device_assignments_bed_pk_beds"
        ),
        sa.PrimaryKeyConstraint("pk", name="pk_device_assignments"),
    )
    op.create_index("ix_device_assignments_gateway_pk", "device_assignments", ["gateway_pk"])
    op.create_index("ix_device_assignments_bed_pk", "device_assignments", ["bed_pk"])
    op.create_index(
        "ix_device_assignments_device_started", "device_assignments", ["device_pk", "started_at"]
    )
    op.create_index(
        "ix_device_assignments_open_device", "device_assignments", ["device_pk"], unique=True,
        **_open("ended_at"),
    )


def downgrade() -> None:
    for table in ("device_assignments", "bed_stays", "admissions", "patients", "devices",
                  "beds", "gateways", "units", "sites"):
        op.drop_table(table)
