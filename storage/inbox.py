"""The inbox's queries and writes outside the inbound hot path (which keeps members' words itself:
storage/inbound.py): the list of conversations, one conversation, staff replies, open/done, saved
replies, and what privacy erases or purges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from storage.models import Broadcast, Delivery, InboxMessage, InboxThread, Member, SavedReply

STATUSES = ("open", "done")


@dataclass(frozen=True)
class ThreadRow:
    member_id: int
    channel: str
    language: str
    campaign: str | None
    status: str
    last_at: datetime
    last_text: str
    unread: int


@dataclass(frozen=True)
class Filters:
    status: str = "open"
    campaign: str | None = None
    channel: str | None = None
    language: str | None = None


_THREAD_COLUMNS = (InboxThread.member_id, InboxThread.channel, InboxThread.language, InboxThread.campaign,
                   InboxThread.status, InboxThread.last_at, InboxThread.last_text, InboxThread.unread)


def threads(session: Session, filters: Filters, limit: int, before: tuple[datetime, int] | None = None) -> list[ThreadRow]:
    """Conversations newest first (by the member's latest message), ``limit`` of them, after the cursor
    ``before`` (the last_at and member id of the previous page's last row). Read from
    ix_inbox_threads_status_last_at in order: a page costs its rows, not the inbox's size."""
    stmt = select(*_THREAD_COLUMNS).where(InboxThread.status == filters.status)
    if filters.campaign:
        stmt = stmt.where(InboxThread.campaign == filters.campaign)
    if filters.channel:
        stmt = stmt.where(InboxThread.channel == filters.channel)
    if filters.language:
        stmt = stmt.where(InboxThread.language == filters.language)
    if before is not None:
        at, member_id = before
        stmt = stmt.where(or_(InboxThread.last_at < at, and_(InboxThread.last_at == at,
                                                               InboxThread.member_id < member_id)))
    stmt = stmt.order_by(InboxThread.last_at.desc(), InboxThread.member_id.desc()).limit(limit)
    return [ThreadRow(*row) for row in session.execute(stmt)]


def unread_count(session: Session) -> int:
    """Open conversations with something staff have not read (the navigation's badge; a partial index)."""
    return session.scalar(select(func.count()).select_from(InboxThread)
                          .where(InboxThread.status == "open", InboxThread.unread > 0)) or 0


def thread(session: Session, member_id: int) -> ThreadRow | None:
    row = session.execute(select(*_THREAD_COLUMNS).where(InboxThread.member_id == member_id)).first()
    return ThreadRow(*row) if row else None


@dataclass(frozen=True)
class MessageRow:
    at: datetime
    sender: str  # member | bot | staff
    staff_email: str | None
    channel: str
    text: str
    media: bool
    broadcast_id: int | None = None  # a broadcast the member was sent (the bot's side of the thread)


def messages(session: Session, member_id: int, limit: int = 500) -> list[MessageRow]:
    """The conversation in order: the member's words, the bot's acknowledgements and staff replies, and
    the broadcasts they were sent meanwhile (what they were answering), the latest ``limit`` of each."""
    kept = session.execute(select(InboxMessage.at, InboxMessage.sender, InboxMessage.staff_email,
                                  InboxMessage.channel, InboxMessage.text, InboxMessage.media)
                           .where(InboxMessage.member_id == member_id)
                           .order_by(InboxMessage.id.desc()).limit(limit)).all()
    rows = [MessageRow(*r) for r in reversed(kept)]  # oldest first: a sort by time keeps that order in a tie
    if rows:
        since = min(r.at for r in rows)
        sent = session.execute(
            select(Delivery.sent_at, Delivery.channel, Delivery.language, Broadcast.message_en, Broadcast.message_es,
                   Broadcast.id)
            .join(Broadcast, Broadcast.id == Delivery.broadcast_id)
            .where(Delivery.member_id == member_id, Delivery.sent_at.is_not(None))
            .order_by(Delivery.sent_at.desc()).limit(20)).all()
        # the broadcast they answered first, then any later ones
        earlier = [s for s in sent if s.sent_at < since][:1]
        for s in [*earlier, *[s for s in sent if s.sent_at >= since]]:
            text = s.message_es if s.language == "es" and s.message_es else s.message_en
            rows.append(MessageRow(s.sent_at, "bot", None, s.channel, text, False, s.id))
    rows.sort(key=lambda r: (r.at, r.broadcast_id is None))  # a broadcast before what answered it
    return rows


def last_staff_message(session: Session, member_id: int) -> tuple[str, datetime] | None:
    """The text and time of the latest staff reply to the member."""
    row = session.execute(select(InboxMessage.text, InboxMessage.at)
                          .where(InboxMessage.member_id == member_id, InboxMessage.sender == "staff")
                          .order_by(InboxMessage.id.desc()).limit(1)).first()
    return (row[0], row[1]) if row else None


def member(session: Session, member_id: int) -> Member | None:
    return session.get(Member, member_id)


def lock_thread(session: Session, member_id: int) -> InboxThread | None:
    return session.scalars(select(InboxThread).where(InboxThread.member_id == member_id).with_for_update()
                           .execution_options(populate_existing=True)).first()


def mark_read(session: Session, member_id: int) -> None:
    session.execute(update(InboxThread).where(InboxThread.member_id == member_id, InboxThread.unread > 0)
                    .values(unread=0).execution_options(synchronize_session=False))


def set_status(session: Session, member_id: int, status: str, by: str, now: datetime) -> bool:
    """Done (by whom, when) or open again; False for a member with no conversation."""
    values = {"status": status, "done_at": now if status == "done" else None,
              "done_by": by if status == "done" else None}
    if status == "done":
        values["unread"] = 0
    return bool(session.execute(update(InboxThread).where(InboxThread.member_id == member_id).values(**values)
                                .execution_options(synchronize_session=False)).rowcount)


def add_message(session: Session, member_id: int, channel: str, sender: str, text: str, now: datetime,
                staff_email: str | None = None) -> None:
    session.add(InboxMessage(member_id=member_id, at=now, sender=sender, staff_email=staff_email, channel=channel,
                             text=text, media=False))


def ensure_thread(session: Session, member: Member, now: datetime, campaign: str | None = None) -> None:
    """A conversation row for a member staff write to first (from the member page)."""
    if session.get(InboxThread, member.id) is None:
        session.add(InboxThread(member_id=member.id, channel=member.channel, language=member.language,
                                campaign=campaign, status="open", last_at=now, last_text="", unread=0))
        session.flush()


# --- saved replies ----------------------------------------------------------------------------------


def saved_replies(session: Session) -> list[SavedReply]:
    return list(session.scalars(select(SavedReply).order_by(SavedReply.language, SavedReply.title, SavedReply.id)))


def add_saved_reply(session: Session, language: str, title: str, text: str, by: str, now: datetime) -> SavedReply:
    reply = SavedReply(language=language, title=title, text=text, updated_by=by, updated_at=now)
    session.add(reply)
    session.flush()
    return reply


def delete_saved_reply(session: Session, reply_id: int) -> bool:
    return bool(session.execute(delete(SavedReply).where(SavedReply.id == reply_id)).rowcount)


# --- privacy ----------------------------------------------------------------------------------------


def erase(session: Session, member_id: int) -> int:
    """Everything the inbox holds for a member (forgetting them); the messages removed."""
    removed = session.execute(delete(InboxMessage).where(InboxMessage.member_id == member_id)).rowcount
    session.execute(delete(InboxThread).where(InboxThread.member_id == member_id))
    return removed


def purge_done(session: Session, before: datetime) -> int:
    """Drop conversations marked done before ``before`` with their messages; the conversations dropped."""
    old = select(InboxThread.member_id).where(InboxThread.status == "done", InboxThread.done_at < before)
    session.execute(delete(InboxMessage).where(InboxMessage.member_id.in_(old)))
    return session.execute(delete(InboxThread).where(InboxThread.status == "done", InboxThread.done_at < before)
                           ).rowcount


def names(session: Session, member_ids: list[int]) -> dict[int, str]:
    """The name each member last signed with (the list and the thread show it; staff address the
    member by it), for the members that signed."""
    if not member_ids:
        return {}
    from storage.models import Signature

    rows = session.execute(select(Signature.member_id, Signature.name).where(Signature.member_id.in_(member_ids))
                           .order_by(Signature.member_id, Signature.id))
    return {member_id: name for member_id, name in rows if name}
