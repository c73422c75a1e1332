"""the inbox: inbox_threads (one per member with words for staff), inbox_messages (the member's words,
the bot's acknowledgements, staff replies), saved_replies; conversations.acked_on (one
acknowledgement a day).

Revision ID: 0012_inbox
Revises: 0011_broadcast_schedule
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

import storage.models


revision = "0012_inbox"
down_revision = "0011_broadcast_schedule"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UNREAD = "status = 'open' AND unread > 0"


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("acked_on", sa.String(length=10), nullable=True))
    op.create_table(
        "inbox_threads",
        sa.Column("member_id", BigId, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("last_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_text", sa.Text(), nullable=False),
        sa.Column("unread", sa.Integer(), nullable=False),
        sa.Column("done_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=254), nullable=True),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_inbox_threads_member_id_members"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_inbox_threads")),
    )
    op.create_index("ix_inbox_threads_status_last_at", "inbox_threads", ["status", "last_at", "member_id"])
    op.create_index("ix_inbox_threads_unread", "inbox_threads", ["member_id"],
                    postgresql_where=sa.text(UNREAD), sqlite_where=sa.text(UNREAD))
    op.create_table(
        "inbox_messages",
        sa.Column("id", BigId, nullable=False),
        sa.Column("member_id", BigId, nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sender", sa.String(length=8), nullable=False),
        sa.Column("staff_email", sa.String(length=254), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("media", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_inbox_messages_member_id_members"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_messages")),
    )
    op.create_index("ix_inbox_messages_member_id_id", "inbox_messages", ["member_id", "id"])
    op.create_index("ix_inbox_messages_at", "inbox_messages", ["at"])
    op.create_table(
        "saved_replies",
        sa.Column("id", BigId, nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=80), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=254), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_replies")),
    )


def downgrade() -> None:
    op.drop_table("saved_replies")
    op.drop_index("ix_inbox_messages_at", table_name="inbox_messages")
    op.drop_index("ix_inbox_messages_member_id_id", table_name="inbox_messages")
    op.drop_table("inbox_messages")
    op.drop_index("ix_inbox_threads_unread", table_name="inbox_threads")
    op.drop_index("ix_inbox_threads_status_last_at", table_name="inbox_threads")
    op.drop_table("inbox_threads")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("acked_on")
