"""broadcast scheduling: broadcasts.send_at (when it goes) and queued_at (when its deliveries were
written; every existing broadcast was queued when it was made)

Revision ID: 0011_broadcast_schedule
Revises: 0010_staff_roles
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

import storage.models


revision = "0011_broadcast_schedule"
down_revision = "0010_staff_roles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("broadcasts", sa.Column("send_at", storage.models.UTCDateTime(timezone=True), nullable=True))
    op.add_column("broadcasts", sa.Column("queued_at", storage.models.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE broadcasts SET queued_at = created_at")
    op.create_index("ix_broadcasts_scheduled", "broadcasts", ["send_at"],
                    postgresql_where=sa.text("queued_at IS NULL"), sqlite_where=sa.text("queued_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_broadcasts_scheduled", table_name="broadcasts")
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_column("queued_at")
        batch.drop_column("send_at")
