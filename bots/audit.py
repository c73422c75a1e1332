"""The audit log: what staff did (sign-in, export, member lookup, broadcast), append-only."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from storage import staff_queries as q
from storage.uow import Database

if TYPE_CHECKING:
    from bots.staff_accounts import StaffInfo

# Audit actions.
SIGN_IN, SIGN_OUT, EXPORT, MEMBER_LOOKUP, MEMBER_VIEW, BROADCAST, BROADCAST_CANCEL = (
    "sign_in", "sign_out", "export", "member_lookup", "member_view", "broadcast", "broadcast_cancel")
DELIVERY = "delivery"  # the delivery package PDF: names go to the petition's target
BROADCAST_EDIT = "broadcast_edit"  # a scheduled broadcast changed before its time
STAFF_ROLE = "staff_role"  # an admin changed a login's role


def audit(db: Database, staff: StaffInfo, action: str, target: str | None, detail: str | None, ip: str | None,
          now: datetime) -> None:
    with db.uow() as uow:
        q.add_audit(uow.session, staff_email=staff.email, action=action, target=target, detail=detail, ip=ip, now=now)
        uow.commit()


def audit_as(db: Database, who: str, action: str, target: str | None, detail: str | None, now: datetime,
             ip: str | None = None) -> None:
    """An entry for someone who is not a signed-in staff member: `cli:<user>`, or an API token's label."""
    with db.uow() as uow:
        q.add_audit(uow.session, staff_email=who[:254], action=action, target=target, detail=detail, ip=ip, now=now)
        uow.commit()


def audit_entries(db: Database, limit: int = 100, before_id: int | None = None) -> list:
    with db.reader() as uow:
        entries = q.audit_page(uow.session, limit, before_id)
        uow.session.expunge_all()
        return entries
