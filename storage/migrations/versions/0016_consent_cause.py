"""consent_events.cause: 400 characters instead of 64, so that "staff reply (api:<token label>
(<email>))" names who sent a message whole (it was cut inside the label or the email).

PostgreSQL widens a varchar without rewriting the table; SQLite does not enforce the length, but the
table is rebuilt in batch so that its declared type matches the model.

Revision ID: 0016_consent_cause
Revises: 0015_delivery_files
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = "0016_consent_cause"
down_revision = "0015_delivery_files"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("consent_events") as batch:
        batch.alter_column("cause", existing_type=sa.String(length=64), type_=sa.String(length=400),
                           existing_nullable=False)


def downgrade() -> None:
    op.execute("UPDATE consent_events SET cause = substr(cause, 1, 64) WHERE length(cause) > 64")
    with op.batch_alter_table("consent_events") as batch:
        batch.alter_column("cause", existing_type=sa.String(length=400), type_=sa.String(length=64),
                           existing_nullable=False)
