"""broadcasts.send_token: a staff confirmation sends one broadcast, however often it is submitted

Revision ID: 0006_send_token
Revises: 0005_reliability
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_send_token"
down_revision = "0005_reliability"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("send_token", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_broadcasts_send_token"), ["send_token"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_index(batch.f("ix_broadcasts_send_token"))
        batch.drop_column("send_token")
