"""inbound_counters: the per-sender inbound limit (reliability and security)

Revision ID: 0005_reliability
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
import storage.models


revision = '0005_reliability'
down_revision = "0004_staff"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbound_counters',
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('window_start', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'address', name=op.f('pk_inbound_counters'))
    )


def downgrade() -> None:
    op.drop_table('inbound_counters')
