"""Device upkeep: the calibration / preventive-maintenance due date and when a service last
heard from the device.

Revision ID: 0002
Revises: 0001
Create Date: 2025-06-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("maintenance_due", sa.Date(), nullable=True))
        batch.add_column(sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("last_seen")
        batch.drop_column("maintenance_due")
