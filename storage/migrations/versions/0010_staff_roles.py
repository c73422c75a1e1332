"""staff roles (admin, organizer, viewer; existing logins become admins), API tokens (hashed), and
the index the staff API pages a campaign's signatures through (campaign, id)

Revision ID: 0010_staff_roles
Revises: 0009_whatsapp
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

import storage.models


revision = "0010_staff_roles"
down_revision = "0009_whatsapp"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Every login made before roles could do everything: it stays an admin.
    with op.batch_alter_table("staff_users") as batch:
        batch.add_column(sa.Column("role", sa.String(length=16), nullable=False, server_default="admin"))
    with op.batch_alter_table("staff_users") as batch:
        batch.alter_column("role", server_default=None)
    op.create_table(
        "api_tokens",
        sa.Column("id", BigId, nullable=False),
        sa.Column("staff_id", BigId, nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_users.id"], name=op.f("fk_api_tokens_staff_id_staff_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_api_tokens_staff_id"), "api_tokens", ["staff_id"])
    op.create_index("ix_signatures_campaign_id", "signatures", ["campaign", "id"])


def downgrade() -> None:
    op.drop_index("ix_signatures_campaign_id", table_name="signatures")
    op.drop_index(op.f("ix_api_tokens_staff_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    with op.batch_alter_table("staff_users") as batch:
        batch.drop_column("role")
