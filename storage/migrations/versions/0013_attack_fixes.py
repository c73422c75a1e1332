"""erasure: staff lookups no longer keep what was typed, and deliveries of forgotten members name
nobody (rows written before `firma member forget` erased them).

Revision ID: 0013_attack_fixes
Revises: 0012_inbox
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = "0013_attack_fixes"
down_revision = "0012_inbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    # A lookup's detail was "<what was typed> -> N found": keep only the count.
    rows = bind.execute(sa.text("SELECT id, detail FROM audit_log WHERE action = 'member_lookup'")).all()
    for row_id, detail in rows:
        count = (detail or "").rsplit(" -> ", 1)[-1] if " -> " in (detail or "") else None
        bind.execute(sa.text("UPDATE audit_log SET detail = :d WHERE id = :i"), {"d": count, "i": row_id})
    bind.execute(sa.text(
        "UPDATE deliveries SET name = '', address = (SELECT m.address FROM members m WHERE m.id = deliveries.member_id) "
        "WHERE member_id IN (SELECT id FROM members WHERE address LIKE 'forgotten:%')"))


def downgrade() -> None:
    pass  # what was erased stays erased
