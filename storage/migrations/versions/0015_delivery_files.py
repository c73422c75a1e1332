"""delivery_files and delivery_file_chunks: delivery package PDFs a worker makes for the console (a
large one would hold a web worker longer than gunicorn allows), kept a week.

Revision ID: 0015_delivery_files
Revises: 0014_handed_over
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

import storage.models


revision = "0015_delivery_files"
down_revision = "0014_handed_over"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "delivery_files",
        sa.Column("id", BigId, nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=2), nullable=True),
        sa.Column("names", sa.String(length=8), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("listed", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=254), nullable=False),
        sa.Column("requested_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_files")),
    )
    op.create_index("ix_delivery_files_status_id", "delivery_files", ["status", "id"])
    op.create_index("ix_delivery_files_campaign_id", "delivery_files", ["campaign", "id"])
    op.create_table(
        "delivery_file_chunks",
        sa.Column("file_id", BigId, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["delivery_files.id"], name=op.f("fk_delivery_file_chunks_file_id_delivery_files"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("file_id", "seq", name=op.f("pk_delivery_file_chunks")),
    )


def downgrade() -> None:
    op.drop_table("delivery_file_chunks")
    op.drop_index("ix_delivery_files_campaign_id", table_name="delivery_files")
    op.drop_index("ix_delivery_files_status_id", table_name="delivery_files")
    op.drop_table("delivery_files")
