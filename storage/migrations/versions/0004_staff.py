"""staff console: staff_users, staff_sign_in_attempts, audit_log, two dashboard indexes on signatures

Revision ID: 0004_staff
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
import storage.models


revision = '0004_staff'
down_revision = "0003_broadcasts"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('staff_users',
    sa.Column('id', BigId, nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('session_token', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_sign_in_at', storage.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_users')),
    sa.UniqueConstraint('email', name=op.f('uq_staff_users_email'))
    )
    op.create_table('staff_sign_in_attempts',
    sa.Column('id', BigId, nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('succeeded', sa.Boolean(), nullable=False),
    sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_sign_in_attempts'))
    )
    with op.batch_alter_table('staff_sign_in_attempts', schema=None) as batch_op:
        batch_op.create_index('ix_staff_sign_in_attempts_email_at', ['email', 'at'], unique=False)
        batch_op.create_index('ix_staff_sign_in_attempts_ip_at', ['ip', 'at'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', BigId, nullable=False),
    sa.Column('at', storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('staff_email', sa.String(length=254), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)

    # the dashboard's aggregates read this index only (no signature rows)
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.create_index('ix_signatures_dashboard_days', ['campaign', 'simulated', 'signed_at'], unique=False)
        batch_op.create_index('ix_signatures_dashboard_groups', ['campaign', 'simulated', 'channel', 'language', 'state'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.drop_index('ix_signatures_dashboard_groups')
        batch_op.drop_index('ix_signatures_dashboard_days')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_at')
    op.drop_table('audit_log')
    with op.batch_alter_table('staff_sign_in_attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_sign_in_attempts_ip_at')
        batch_op.drop_index('ix_staff_sign_in_attempts_email_at')
    op.drop_table('staff_sign_in_attempts')
    op.drop_table('staff_users')
