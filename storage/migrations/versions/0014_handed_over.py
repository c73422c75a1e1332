"""deliveries.handed_over_at: when a worker handed the message to the provider (checked, in the same
statement, that the member was still subscribed and the broadcast not cancelled); and the index of the
messages in flight per member, which an opt-out waits for before it is answered.

Revision ID: 0014_handed_over
Revises: 0013_attack_fixes
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

import storage.models


revision = "0014_handed_over"
down_revision = "0013_attack_fixes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("handed_over_at", storage.models.UTCDateTime(timezone=True), nullable=True))
    op.create_index("ix_deliveries_in_flight", "deliveries", ["member_id"],
                    postgresql_where=sa.text("status = 'sending'"), sqlite_where=sa.text("status = 'sending'"))
    # Rows a worker of the earlier code holds may be with the provider already: count them so (a cancel
    # then leaves them to finish, as that code expects, and an opt-out waits for them).
    op.execute("UPDATE deliveries SET handed_over_at = COALESCE(updated_at, due_at) WHERE status = 'sending'")


def downgrade() -> None:
    op.drop_index("ix_deliveries_in_flight", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("handed_over_at")
