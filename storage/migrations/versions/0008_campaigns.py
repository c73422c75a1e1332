"""campaigns in the database: organization (with the catalog version), organization_texts, campaigns,
campaign_texts, campaign_keywords. The campaign file seeds them once, when a process finds them empty.

Revision ID: 0008_campaigns
Revises: 0007_early_statuses
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

import storage.models


revision = "0008_campaigns"
down_revision = "0007_early_statuses"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "organization",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("help_contact", sa.Text(), nullable=False),
        sa.Column("default_campaign", sa.String(length=64), nullable=False),
        sa.Column("catalog_version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organization")),
    )
    op.create_table(
        "organization_texts",
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("program", sa.Text(), nullable=False),
        sa.Column("frequency", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("language", name=op.f("pk_organization_texts")),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", BigId, nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("goal", sa.BigInteger(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("broadcast_stop_notice", sa.Boolean(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("slug", name=op.f("uq_campaigns_slug")),
    )
    op.create_table(
        "campaign_texts",
        sa.Column("campaign_id", BigId, nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name=op.f("fk_campaign_texts_campaign_id_campaigns"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("campaign_id", "language", name=op.f("pk_campaign_texts")),
    )
    op.create_table(
        "campaign_keywords",
        sa.Column("keyword", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", BigId, nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("spelled", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"],
                                name=op.f("fk_campaign_keywords_campaign_id_campaigns"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("keyword", name=op.f("pk_campaign_keywords")),
    )
    op.create_index(op.f("ix_campaign_keywords_campaign_id"), "campaign_keywords", ["campaign_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_campaign_keywords_campaign_id"), table_name="campaign_keywords")
    op.drop_table("campaign_keywords")
    op.drop_table("campaign_texts")
    op.drop_table("campaigns")
    op.drop_table("organization_texts")
    op.drop_table("organization")
