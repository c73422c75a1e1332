"""WhatsApp: a broadcast's approved template for members outside a channel's reply window
(broadcasts.window_template, a Twilio Content SID), and the index that finds a phone number's other
members (the same person on SMS and WhatsApp).

Revision ID: 0009_whatsapp
Revises: 0008_campaigns
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = "0009_whatsapp"
down_revision = "0008_campaigns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("window_template", sa.String(length=64), nullable=True))
    op.create_index("ix_members_address", "members", ["address"])


def downgrade() -> None:
    op.drop_index("ix_members_address", table_name="members")
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_column("window_template")
