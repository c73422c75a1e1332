"""Queries and writes, each a plain function of a Session owned by the caller (the unit of work)."""

from __future__ import annotations

from datetime import datetime
from typing import Iterator

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.models import (
    CampaignCount,
    ConsentEvent,
    Conversation,
    Member,
    ProcessedMessage,
    Signature,
)

CLAIMED = object()  # claim_message: this process owns the message now


def _insert(session: Session, model):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def _core(session: Session, stmt):
    """Run a statement that touches no loaded ORM object on the session's connection (same transaction),
    skipping the ORM's per-statement work (autoflush, bulk-DML processing): the hot path's claims,
    counters and responses."""
    return session.connection().execute(stmt)


def claim_message(session: Session, channel: str, provider_id: str, now: datetime):
    """Insert the provider's message id. Returns CLAIMED, or the response stored by the first handling.

    A concurrent retry waits on the primary key until the first transaction ends, then sees its row.
    """
    stmt = (_insert(session, ProcessedMessage)
            .values(channel=channel, provider_id=provider_id, received_at=now)
            .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
            .returning(ProcessedMessage.provider_id))
    if _core(session, stmt).first() is not None:
        return CLAIMED
    return session.scalar(select(ProcessedMessage.response)
                          .where(ProcessedMessage.channel == channel, ProcessedMessage.provider_id == provider_id))


def store_response(session: Session, channel: str, provider_id: str, response: str) -> None:
    _core(session, update(ProcessedMessage)
          .where(ProcessedMessage.channel == channel, ProcessedMessage.provider_id == provider_id)
          .values(response=response))


def lock_member(session: Session, channel: str, address: str, now: datetime, simulated: bool = False,
                language: str = "en") -> tuple[Member, bool]:
    """Get or create the member and hold its row lock until commit. Returns (member, created).

    A member who wrote before (most messages) costs one statement, the locking SELECT; a first message
    two (the SELECT, then INSERT ... RETURNING). Two first messages at once: one INSERT wins, the
    other waits on the unique key, does nothing, and then locks the row the first one committed.
    """
    locked = (select(Member).where(Member.channel == channel, Member.address == address)
              .with_for_update().execution_options(populate_existing=True))
    member = session.scalars(locked).first()
    if member is not None:
        return member, False
    # A row this transaction inserts is invisible to others until commit: no lock needed on it.
    stmt = (_insert(session, Member)
            .values(channel=channel, address=address, simulated=simulated, language=language, created_at=now)
            .on_conflict_do_nothing(index_elements=["channel", "address"])
            .returning(Member))
    member = session.scalars(stmt, execution_options={"populate_existing": True}).first()
    if member is not None:
        return member, True
    return session.scalars(locked).one(), False


def find_member(session: Session, channel: str, address: str) -> Member | None:
    return session.scalars(select(Member).where(Member.channel == channel, Member.address == address)).first()


def conversation_for(session: Session, member_id: int, new_member: bool = False) -> Conversation:
    """The member's conversation row (made when missing; a member created in this transaction has
    none, so no query is spent on it)."""
    conv = None if new_member else session.get(Conversation, member_id)
    if conv is None:
        conv = Conversation(member_id=member_id, step="idle", invalid_count=0)
        session.add(conv)
    return conv


def signed_campaigns(session: Session, member_id: int) -> frozenset[str]:
    return frozenset(session.scalars(select(Signature.campaign).where(Signature.member_id == member_id)))


def add_signature(session: Session, member: Member, *, campaign: str, name: str, zip_code: str, city: str,
                  state: str, timezone: str | None, language: str, now: datetime) -> bool:
    """Record one signature; False when this member had already signed (the unique constraint holds)."""
    stmt = (_insert(session, Signature)
            .values(member_id=member.id, campaign=campaign, channel=member.channel, name=name, zip_code=zip_code,
                    city=city, state=state, timezone=timezone, language=language, simulated=member.simulated,
                    signed_at=now)
            .on_conflict_do_nothing(index_elements=["member_id", "campaign"])
            .returning(Signature.id))
    if _core(session, stmt).first() is None:
        return False
    if not member.simulated:
        bump = (_insert(session, CampaignCount).values(campaign=campaign, signatures=1)
                .on_conflict_do_update(index_elements=["campaign"],
                                       set_={"signatures": CampaignCount.signatures + 1}))
        _core(session, bump)
    return True


def add_consent(session: Session, member: Member, *, kind: str, cause: str, campaign: str | None,
                text_sent: str | None, now: datetime) -> None:
    session.add(ConsentEvent(member_id=member.id, kind=kind, channel=member.channel, cause=cause[:64],
                             campaign=campaign, text_sent=text_sent, created_at=now))


def signature_count(session: Session, campaign: str) -> int:
    return session.scalar(select(CampaignCount.signatures).where(CampaignCount.campaign == campaign)) or 0


def signature_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(select(CampaignCount.campaign, CampaignCount.signatures)).tuples())


def recount(session: Session, campaign: str) -> int:
    """Recompute the stored counter from the rows (repair tool; not for page views)."""
    n = session.scalar(select(func.count()).select_from(Signature)
                       .where(Signature.campaign == campaign, Signature.simulated.is_(False))) or 0
    stmt = (_insert(session, CampaignCount).values(campaign=campaign, signatures=n)
            .on_conflict_do_update(index_elements=["campaign"], set_={"signatures": n}))
    session.execute(stmt)
    return n


def export_query(campaign: str) -> Select:
    return (select(Signature.signed_at, Signature.campaign, Signature.channel, Signature.name, Signature.zip_code,
                   Signature.city, Signature.state, Signature.language,
                   Member.opted_out_at.is_not(None).label("opted_out"), Member.address)
            .join(Member, Member.id == Signature.member_id)
            .where(Signature.campaign == campaign, Signature.simulated.is_(False))
            .order_by(Signature.signed_at, Signature.id))


def stream_export(session: Session, campaign: str, batch: int = 5000) -> Iterator[tuple]:
    """Rows of the export, fetched in batches with a server-side cursor (flat memory). Plain rows from
    the session's connection: no ORM loading per row. ``opted_out`` comes as a boolean."""
    result = session.connection().execute(export_query(campaign).execution_options(yield_per=batch))
    for rows in result.partitions():
        yield from rows


def consent_history(session: Session, member_id: int) -> list[ConsentEvent]:
    return list(session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member_id)
                                .order_by(ConsentEvent.created_at, ConsentEvent.id)))
