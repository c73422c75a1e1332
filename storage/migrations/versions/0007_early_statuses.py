"""early_statuses: Twilio status callbacks that arrive before the worker has written the message's SID

Revision ID: 0007_early_statuses
Revises: 0006_broadcast_controls
Create Date: 2026-11-30
"""
from alembic import op
import sqlalchemy as sa

import storage.models


revision = "0007_early_statuses"
down_revision = "0006_broadcast_controls"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "early_statuses",
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("received_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider_id", name=op.f("pk_early_statuses")),
    )
    op.create_index(op.f("ix_early_statuses_received_at"), "early_statuses", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_early_statuses_received_at"), table_name="early_statuses")
    op.drop_table("early_statuses")
