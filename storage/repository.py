"""Queries and writes, each a plain function of a Session owned by the caller (the unit of work)."""

from __future__ import annotations

import queue
import threading
from datetime import datetime
from typing import Callable, Iterator, Mapping

from sqlalchemy import DateTime, Select, delete, func, or_, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from storage.models import (
    CAUSE_MAX,
    CampaignCount,
    ConsentEvent,
    Conversation,
    Delivery,
    InboundCounter,
    Member,
    ProcessedMessage,
    Signature,
    TelegramGroupNotice,
)

FORGOTTEN_PREFIX = "forgotten:"  # a forgotten member's address: this prefix and an HMAC of the contact


def _insert(session: Session, model):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def member(session: Session, member_id: int) -> Member:
    """The member row, read afresh (after storage.inbound has locked or created it in this transaction)."""
    return session.get(Member, member_id, populate_existing=True)


def person_of(member: Member) -> int:
    """The person a member is: its own id, or the id of the member it was linked to."""
    return member.person_id if member.person_id is not None else member.id


def _person_members(person: int):
    return select(Member.id).where(or_(Member.id == person, Member.person_id == person))


def person_members(session: Session, member: Member) -> list[Member]:
    """Every member that is the same person as ``member`` (itself first, then by id)."""
    person = person_of(member)
    others = session.scalars(select(Member).where(or_(Member.id == person, Member.person_id == person),
                                                  Member.id != member.id).order_by(Member.id))
    return [member, *others]


def phone_member(session: Session, phone: str) -> str | None:
    """The channel of the first real member of a phone number (E.164), whose person it is; None when
    no channel has met it."""
    return session.scalar(select(Member.channel).where(Member.address == phone, Member.simulated.is_(False))
                          .order_by(Member.id).limit(1))


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


def add_consent(session: Session, member: Member, *, kind: str, cause: str, campaign: str | None,
                text_sent: str | None, now: datetime) -> None:
    session.add(ConsentEvent(member_id=member.id, kind=kind, channel=member.channel, cause=cause[:CAUSE_MAX],
                             campaign=campaign, text_sent=text_sent, created_at=now))


def signature_count(session: Session, campaign: str) -> int:
    return session.scalar(select(CampaignCount.signatures).where(CampaignCount.campaign == campaign)) or 0


def signature_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(CampaignCount.campaign, CampaignCount.signatures))
    return {campaign: count for campaign, count in rows}


def recount(session: Session, campaign: str) -> int:
    """Recompute the stored counter from the rows (repair tool; not for page views)."""
    n = session.scalar(select(func.count(func.distinct(func.coalesce(Member.person_id, Member.id))))
                       .select_from(Signature).join(Member, Member.id == Signature.member_id)
                       .where(Signature.campaign == campaign, Signature.simulated.is_(False))) or 0
    stmt = (_insert(session, CampaignCount).values(campaign=campaign, signatures=n)
            .on_conflict_do_update(index_elements=["campaign"], set_={"signatures": n}))
    session.execute(stmt)
    return n


def _person_columns():
    """The person a signature's member is, and whether that person has more than one chat."""
    person = func.coalesce(Member.person_id, Member.id)
    mate = aliased(Member)
    # "someone links to this member": one small set (linked chats are few), evaluated once, not per row
    shared = or_(Member.person_id.is_not(None),
                 Member.id.in_(select(mate.person_id).where(mate.person_id.is_not(None))))
    return person, shared


def _listed(campaign: str) -> tuple:
    """The signatures an export or a delivery lists: not simulated, not erased on request (those are
    counted, never listed)."""
    return (Signature.campaign == campaign, Signature.simulated.is_(False),
            Member.address.not_like(FORGOTTEN_PREFIX + "%"))


def export_query(campaign: str) -> Select:
    """The campaign's signatures in signing order, with two trailing columns: the person, and whether
    that person has more than one chat (then only their first signature is exported: stream_export)."""
    person, shared = _person_columns()
    # signed_at as the driver gives it (aware on PostgreSQL, naive UTC on SQLite), without UTCDateTime's
    # conversion per row: the export converts each once, to its text (bots.exports)
    signed_at = type_coerce(Signature.signed_at, DateTime(timezone=True)).label("signed_at")
    return (select(signed_at, Signature.campaign, Signature.channel, Signature.name, Signature.zip_code,
                   Signature.city, Signature.state, Signature.language,
                   Member.opted_out_at.is_not(None).label("opted_out"), Member.address,
                   person.label("person"), shared.label("shared"))
            .join(Member, Member.id == Signature.member_id)
            .where(*_listed(campaign))
            .order_by(Signature.signed_at, Signature.id))


_END = object()


def _prefetched(batches: Iterator[list], ahead: int = 2) -> Iterator[list]:
    """``batches``, fetched by a thread up to ``ahead`` batches ahead of the caller: the database
    produces the next rows while the caller formats these (the driver waits on its socket without the
    GIL). The fetching thread is the only user of the connection until it has stopped: at the end, on
    an error (raised here, in the caller's thread) and when the caller stops early (closing this
    generator waits for a fetch in progress to finish)."""
    ready: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for rows in batches:
                if not put(rows):
                    return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, raised there
            put(exc)

    thread = threading.Thread(target=fetch, name="export-fetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def stream_export(session: Session, campaign: str, batch: int = 5000) -> Iterator[tuple]:
    """Rows of the export, one per person, fetched in batches with a server-side cursor as plain rows
    (no ORM loading per row; ``opted_out`` comes as a boolean), the next batch while the caller works
    on this one (``_prefetched``). Memory stays flat: two batches ahead at most, and only people with
    several linked chats are remembered (to skip their later signatures)."""
    seen: set[int] = set()
    result = session.connection().execute(export_query(campaign).execution_options(yield_per=batch))
    for rows in _prefetched(result.partitions()):
        for row in rows:
            *cells, person, shared = row
            if shared:
                if person in seen:
                    continue
                seen.add(person)
            yield tuple(cells)


def signatures_page(session: Session, campaign: str, after: int, limit: int) -> tuple[list[tuple], int | None]:
    """One page of the export's rows for the staff API, by signature id after ``after`` (a keyset
    cursor: an index range scan on (campaign, id), the same cost for the first page and the last,
    no OFFSET). Returns (rows as in stream_export, the cursor of the next page or None at the end).
    A person with several linked chats is listed once, by their first signature, as in the export."""
    person, shared = _person_columns()
    signed_at = type_coerce(Signature.signed_at, DateTime(timezone=True)).label("signed_at")
    stmt = (select(Signature.id, signed_at, Signature.campaign, Signature.channel, Signature.name,
                   Signature.zip_code, Signature.city, Signature.state, Signature.language,
                   Member.opted_out_at.is_not(None).label("opted_out"), Member.address,
                   person.label("person"), shared.label("shared"))
            .join(Member, Member.id == Signature.member_id)
            .where(*_listed(campaign), Signature.id > after)
            .order_by(Signature.id).limit(limit + 1))
    scanned = session.execute(stmt).all()
    more = len(scanned) > limit
    scanned = scanned[:limit]
    linked = {row.person for row in scanned if row.shared}
    first: dict[int, int] = {}
    if linked:  # people with several chats: a few, looked up once per page
        first = dict(session.execute(
            select(person, func.min(Signature.id)).join(Member, Member.id == Signature.member_id)
            .where(*_listed(campaign), person.in_(linked)).group_by(person)).all())
    rows = [tuple(row[1:-2]) for row in scanned if not row.shared or first.get(row.person) == row.id]
    return rows, (scanned[-1].id if more else None)


def later_signatures(session: Session, campaign: str) -> dict[int, str]:
    """The signatures the export leaves out (id -> state): a person with several chats is listed once,
    by their first signature (stream_export). Only linked chats are read: a small set."""
    person, shared = _person_columns()
    rows = session.execute(select(Signature.id, person, Signature.state).join(Member, Member.id == Signature.member_id)
                           .where(*_listed(campaign), shared).order_by(Signature.signed_at, Signature.id))
    seen: set[int] = set()
    later: dict[int, str] = {}
    for signature_id, who, where in rows:
        if who in seen:
            later[signature_id] = where
        else:
            seen.add(who)
    return later


def delivery_summary(session: Session, campaign: str, state: str | None = None,
                     later: Mapping[int, str] | None = None) -> list[tuple[str, int, datetime, datetime]]:
    """(state, signatures, first signed_at, last signed_at) per state, of the listed signatures, without
    ``later`` (later_signatures: a few ids)."""
    signed_at = type_coerce(Signature.signed_at, DateTime(timezone=True))
    stmt = (select(Signature.state, func.count(), func.min(signed_at), func.max(signed_at))
            .join(Member, Member.id == Signature.member_id).where(*_listed(campaign))
            .group_by(Signature.state).order_by(Signature.state))
    if state is not None:
        stmt = stmt.where(Signature.state == state)
    if later:
        stmt = stmt.where(Signature.id.not_in(list(later)))
    return [tuple(row) for row in session.execute(stmt)]


def erased_signers(session: Session, campaign: str) -> int:
    """People whose signature is kept, anonymised, after they asked to be forgotten."""
    return session.scalar(select(func.count(func.distinct(func.coalesce(Member.person_id, Member.id))))
                          .select_from(Signature).join(Member, Member.id == Signature.member_id)
                          .where(Signature.campaign == campaign, Signature.simulated.is_(False),
                                 Member.address.like(FORGOTTEN_PREFIX + "%"))) or 0


def stream_delivery(session: Session, campaign: str, state: str | None, later: Mapping[int, str],
                    batch: int = 5000) -> Iterator[tuple]:
    """(state, city, name, signed_at) of the listed signatures, by state, city and signing time, one per
    person (``later`` from later_signatures), fetched in batches like stream_export."""
    signed_at = type_coerce(Signature.signed_at, DateTime(timezone=True))
    stmt = (select(Signature.id, Signature.state, Signature.city, Signature.name, signed_at)
            .join(Member, Member.id == Signature.member_id).where(*_listed(campaign))
            .order_by(Signature.state, Signature.city, Signature.signed_at, Signature.id))
    if state is not None:
        stmt = stmt.where(Signature.state == state)
    result = session.connection().execute(stmt.execution_options(yield_per=batch))
    for rows in _prefetched(result.partitions()):
        for signature_id, *cells in rows:
            if later and signature_id in later:
                continue
            yield tuple(cells)


def consent_history(session: Session, member_id: int) -> list[ConsentEvent]:
    return list(session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member_id)
                                .order_by(ConsentEvent.created_at, ConsentEvent.id)))


# --- Reliability and security -------------------------------------------------------------


def forget_member_data(session: Session, member: Member, token: str, now: datetime,
                       spellings: Callable[[str], set[str]] = lambda name: {name}) -> int:
    """Erase one member's personal data in place (see bots.privacy.forget). Returns signatures kept.

    ``spellings(name)`` gives the forms a name takes in stored replies (folded for SMS, escaped for
    Telegram); each is replaced by "[forgotten]" in the consent log and the stored replies."""
    names = {name for name in session.scalars(select(Signature.name).where(Signature.member_id == member.id)) if name}
    conv = session.get(Conversation, member.id)
    if conv is not None:
        if conv.pending_name:
            names.add(conv.pending_name)
        conv.campaign, conv.step, conv.pending_name, conv.invalid_count, conv.updated_at = None, "idle", None, 0, now
    kept = session.execute(update(Signature).where(Signature.member_id == member.id)
                           .values(name="", zip_code="", city="", state="", timezone=None)).rowcount
    session.execute(delete(InboundCounter).where(InboundCounter.channel == member.channel,
                                                 InboundCounter.address == member.address))
    for name in names:  # the replies we stored quote the name ("Thanks, Ana ..."): take it out
        for form in {f for spelled in spellings(name) for f in (spelled, json_escaped(spelled)) if len(f) >= 2}:
            pattern = "%" + form.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            for model, column in ((ConsentEvent, ConsentEvent.text_sent), (ProcessedMessage, ProcessedMessage.response)):
                session.execute(update(model).where(column.like(pattern, escape="\\"))
                                .values({column.key: func.replace(column, form, "[forgotten]")}))
    # Broadcast messages made for them held the number and the name (the console showed the text):
    # the rows stay for the broadcast's counts, naming nobody; those not yet sent are not sent.
    session.execute(update(Delivery).where(Delivery.member_id == member.id, Delivery.status.in_(("pending", "held")))
                    .values(status="skipped", error_code="forgotten", updated_at=now))
    session.execute(update(Delivery).where(Delivery.member_id == member.id).values(address=token, name=""))
    member.address = token
    if member.opted_out_at is None:
        member.opted_out_at = now
    member.unreachable_at = member.unreachable_at or now
    return kept


def json_escaped(text: str) -> str:
    """How ``text`` appears inside json.dumps output (non-ASCII as \\u and four hex digits)."""
    import json

    return json.dumps(text)[1:-1]


def purge_processed(session: Session, before: datetime, channels: list[str] | None = None) -> int:
    """Forget provider message ids (and the replies kept for retries) received before ``before``, of
    ``channels`` (None: all)."""
    stmt = delete(ProcessedMessage).where(ProcessedMessage.received_at < before)
    if channels is not None:
        stmt = stmt.where(ProcessedMessage.channel.in_(channels))
    return session.execute(stmt).rowcount


def purge_responses(session: Session, before: datetime, channels: list[str]) -> int:
    """Drop the replies kept for retries of messages received before ``before`` (they can quote a
    name); the ids stay."""
    return session.execute(update(ProcessedMessage)
                           .where(ProcessedMessage.received_at < before, ProcessedMessage.channel.in_(channels),
                                  ProcessedMessage.response.is_not(None))
                           .values(response=None)).rowcount


def purge_inbound_counters(session: Session, before: datetime) -> int:
    """Drop per-sender counters whose minute ended before ``before`` (they no longer limit anything)."""
    return session.execute(delete(InboundCounter).where(InboundCounter.window_start < before)).rowcount

# --- Telegram: people across chats, group notices -----------------------------------


def _person_counts(session: Session, member_ids: list[int]) -> dict[str, int]:
    """Distinct people per campaign among the signatures of these members (not simulated)."""
    stmt = (select(Signature.campaign, func.count(func.distinct(func.coalesce(Member.person_id, Member.id))))
            .join(Member, Member.id == Signature.member_id)
            .where(Signature.member_id.in_(member_ids), Signature.simulated.is_(False))
            .group_by(Signature.campaign))
    return {campaign: n for campaign, n in session.execute(stmt)}


def link_member(session: Session, member: Member, person: Member) -> dict[str, int]:
    """Make ``member`` (and any chat linked to it) part of ``person``'s person; both rows are locked by
    the caller. The stored counters change by exactly the number of people that stopped being two.
    Returns the change per campaign (negative or empty)."""
    old, new = person_of(member), person_of(person)
    if old == new:
        return {}
    affected = list(session.scalars(select(Member.id).where(
        or_(Member.id.in_([old, new]), Member.person_id.in_([old, new])))))
    before = _person_counts(session, affected)
    # A chat that is its own person brings the chats linked to it; a chat linked elsewhere moves alone
    # (a new number does not make its old person the same person as the new one).
    moving = or_(Member.id == member.id, Member.person_id == member.id) if member.person_id is None \
        else Member.id == member.id
    session.execute(update(Member).where(moving).values(person_id=new)
                    .execution_options(synchronize_session=False))
    member.person_id = new
    session.flush()
    after = _person_counts(session, affected)
    changes = {c: after.get(c, 0) - n for c, n in before.items() if after.get(c, 0) != n}
    for campaign, change in changes.items():
        session.execute(update(CampaignCount).where(CampaignCount.campaign == campaign)
                        .values(signatures=CampaignCount.signatures + change))
    return changes


def claim_group_notice(session: Session, chat_id: str, now: datetime) -> bool:
    """True the first time a group or channel is seen: it gets the one "message me privately" note."""
    stmt = (_insert(session, TelegramGroupNotice).values(chat_id=chat_id, sent_at=now)
            .on_conflict_do_nothing(index_elements=["chat_id"]).returning(TelegramGroupNotice.chat_id))
    return session.execute(stmt).first() is not None
