"""broadcasts: send_token (a staff confirmation sends one broadcast, however often it is submitted);
cancelled_at, cancelled_by (a broadcast stopped before every message went out)

Revision ID: 0006_broadcast_controls
Revises: 0005_reliability
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa

import storage.models


revision = "0006_broadcast_controls"
down_revision = "0005_reliability"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("send_token", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_broadcasts_send_token"), ["send_token"], unique=True)
        batch.add_column(sa.Column("cancelled_at", storage.models.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("cancelled_by", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_column("cancelled_by")
        batch.drop_column("cancelled_at")
        batch.drop_index(batch.f("ix_broadcasts_send_token"))
        batch.drop_column("send_token")
