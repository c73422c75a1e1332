"""What a broadcast did, for its page and the staff API: its deliveries by outcome, and the opt-outs
and replies from its recipients in the 48 hours after their message. Counts only; each member is
counted once per broadcast.

The window of a recipient starts when their message was sent (``deliveries.sent_at``) and ends 48
hours after the broadcast's last message was sent: SMS held for quiet hours go out later than the
rest, and their recipients get their own start.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from storage.models import ConsentEvent, Delivery, Member

WINDOW = timedelta(hours=48)


def outcome_counts(session: Session, broadcast_id: int) -> dict[str, int]:
    """Deliveries by status, with those skipped because staff cancelled as `cancelled` (not `skipped`)."""
    q = (select(Delivery.status, Delivery.error_code, func.count())
         .where(Delivery.broadcast_id == broadcast_id).group_by(Delivery.status, Delivery.error_code))
    counts: dict[str, int] = {}
    for status, error_code, n in session.execute(q):  # a few error codes per broadcast
        key = "cancelled" if status == "skipped" and error_code == "cancelled" else status
        counts[key] = counts.get(key, 0) + n
    return counts


def window_end(session: Session, broadcast_id: int) -> datetime | None:
    """48 hours after the broadcast's last message was sent; None when none was sent."""
    last = session.scalar(select(func.max(Delivery.sent_at)).where(Delivery.broadcast_id == broadcast_id))
    return last + WINDOW if last is not None else None


def opt_outs_after(session: Session, broadcast_id: int, until: datetime) -> int:
    """Recipients who opted out (any way: STOP, plain words, the provider's report) after their
    message and before ``until``."""
    opted = exists().where(ConsentEvent.member_id == Delivery.member_id, ConsentEvent.kind == "opt_out",
                           ConsentEvent.created_at >= Delivery.sent_at, ConsentEvent.created_at < until)
    return session.scalar(select(func.count()).select_from(Delivery)
                          .where(Delivery.broadcast_id == broadcast_id, Delivery.sent_at.is_not(None), opted)) or 0


def replies_after(session: Session, broadcast_id: int, until: datetime) -> int:
    """Recipients who wrote to us after their message and before ``until``.

    Read from the member's last inbound time: a member who wrote within the window and again after it
    is not counted, nor one whose last message was their opt-out (STOP is counted as an opt-out, not
    as a reply; the opt-out is recorded at the same instant as the message). This is the one place
    that knows where members' messages are kept; when they are kept one by one (the inbox), count
    from there instead."""
    stopped = exists().where(ConsentEvent.member_id == Member.id, ConsentEvent.kind == "opt_out",
                             ConsentEvent.created_at == Member.last_seen_at)
    wrote = exists().where(Member.id == Delivery.member_id,
                           and_(Member.last_seen_at > Delivery.sent_at, Member.last_seen_at < until), ~stopped)
    return session.scalar(select(func.count()).select_from(Delivery)
                          .where(Delivery.broadcast_id == broadcast_id, Delivery.sent_at.is_not(None), wrote)) or 0
