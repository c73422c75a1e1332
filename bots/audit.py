"""The audit log: what staff did (sign-in, export, member lookup, broadcast), in the console or from
the command line, append-only."""

from __future__ import annotations

import getpass
import os
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
INBOX_REPLY, INBOX_STATUS, SAVED_REPLY = "inbox_reply", "inbox_status", "saved_reply"  # the inbox
MEMBER_FORGET = "member_forget"
STAFF_ADD, STAFF_SET_PASSWORD, STAFF_DISABLE = "staff_add", "staff_set_password", "staff_disable"


def cli_user() -> str:
    """Who runs a command line, as the audit log names them: ``cli:`` and their operating-system login."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        user = os.environ.get("USER") or str(os.getuid())
    return f"cli:{user}"


def broadcast_detail(campaign: str, recipients: int, by_channel: dict[str, int], held: int = 0) -> str:
    channels = ", ".join(f"{n} {ch}" for ch, n in sorted(by_channel.items()) if n)
    return (f"{campaign} to {recipients} recipient{'' if recipients == 1 else 's'} ({channels})"
            + (f"; {held} SMS held for quiet hours" if held else ""))


def audit(db: Database, staff: StaffInfo, action: str, target: str | None, detail: str | None, ip: str | None,
          now: datetime) -> None:
    record(db, staff.email, action, target, detail, ip, now)


def record(db: Database, who: str, action: str, target: str | None, detail: str | None, ip: str | None,
           now: datetime) -> None:
    """An entry by ``who``: a staff login's email, or ``cli_user()``."""
    with db.uow() as uow:
        q.add_audit(uow.session, staff_email=who, action=action, target=target, detail=detail, ip=ip, now=now)
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
