"""telegram: members.person_id (contact sharing links chats to people), group notices

Revision ID: 0002_telegram
Revises: 0001
Create Date: 2026-11-27
"""
from alembic import op
import sqlalchemy as sa
import storage.models


revision = "0002_telegram"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A plain ADD COLUMN (no batch table copy): on SQLite a batch copy of `members` would drop the
    # table that signatures and conversations reference with ON DELETE CASCADE.
    op.add_column("members", sa.Column("person_id", BigId, nullable=True))
    op.create_index(op.f("ix_members_person_id"), "members", ["person_id"], unique=False)
    op.create_table(
        "telegram_group_notices",
        sa.Column("chat_id", sa.String(length=32), nullable=False),
        sa.Column("sent_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_telegram_group_notices")),
    )


def downgrade() -> None:
    op.drop_table("telegram_group_notices")
    op.drop_index(op.f("ix_members_person_id"), table_name="members")
    # SQLite >= 3.35 drops a column in place, which keeps the rows that reference members intact.
    op.execute("ALTER TABLE members DROP COLUMN person_id")
