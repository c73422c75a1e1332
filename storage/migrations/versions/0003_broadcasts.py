"""broadcasts, deliveries, send throttles

Revision ID: 0003_broadcasts
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
import storage.models


revision = '0003_broadcasts'
down_revision = "0002_telegram"
branch_labels = None
depends_on = None


def upgrade() -> None:
    
    op.create_table('broadcasts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('campaign', sa.String(length=64), nullable=False),
    sa.Column('message_en', sa.Text(), nullable=False),
    sa.Column('message_es', sa.Text(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=2), nullable=True),
    sa.Column('zip_prefix', sa.String(length=5), nullable=True),
    sa.Column('signed_since', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('timezones', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_broadcasts'))
    )
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_broadcasts_campaign'), ['campaign'], unique=False)

    op.create_table('send_throttles',
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('next_slot', sa.Float(precision=53), nullable=False),
    sa.Column('paused_until', sa.Float(precision=53), nullable=False),
    sa.PrimaryKeyConstraint('channel', name=op.f('pk_send_throttles'))
    )
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('broadcast_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('member_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('due_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('lease_until', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=True),
    sa.Column('error_code', sa.String(length=32), nullable=True),
    sa.Column('sent_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id'], name=op.f('fk_deliveries_broadcast_id_broadcasts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_deliveries_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('broadcast_id', 'member_id', name=op.f('uq_deliveries_broadcast_id'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_deliveries_broadcast_status', ['broadcast_id', 'status'], unique=False)
        batch_op.create_index('ix_deliveries_due', ['channel', 'due_at', 'id'], unique=False, postgresql_where=sa.text("status IN ('pending', 'held')"), sqlite_where=sa.text("status IN ('pending', 'held')"))
        batch_op.create_index('ix_deliveries_lease', ['lease_until'], unique=False, postgresql_where=sa.text("status = 'sending'"), sqlite_where=sa.text("status = 'sending'"))
        batch_op.create_index('ix_deliveries_provider_id', ['provider_id'], unique=False, postgresql_where=sa.text('provider_id IS NOT NULL'), sqlite_where=sa.text('provider_id IS NOT NULL'))

    


def downgrade() -> None:
    
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_provider_id')
        batch_op.drop_index('ix_deliveries_lease', postgresql_where=sa.text("status = 'sending'"), sqlite_where=sa.text("status = 'sending'"))
        batch_op.drop_index('ix_deliveries_due', postgresql_where=sa.text("status IN ('pending', 'held')"), sqlite_where=sa.text("status IN ('pending', 'held')"))
        batch_op.drop_index('ix_deliveries_broadcast_status')

    op.drop_table('deliveries')
    op.drop_table('send_throttles')
    with op.batch_alter_table('broadcasts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_broadcasts_campaign'))

    op.drop_table('broadcasts')
    
