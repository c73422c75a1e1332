"""The inbound hot path: the statements one conversation message sends.

Every message of every conversation runs these, so they are built once from the models' tables and
compiled once per dialect, and run in a ``Transaction``: one pooled connection of the engine's,
used through the driver, with no Session and no SQLAlchemy Connection around it (their bookkeeping
cost more CPU per message than the statements themselves): no statement building, no ORM objects,
no flush and no SQLAlchemy execution layer per message. Driver errors still come out as
SQLAlchemy's, and a lost connection is invalidated as SQLAlchemy does (``transaction._driver``), so the webhook's
503s and its retry after a database restart hold.
Nothing is cached between messages: the member, their opt-out and their conversation are read fresh,
under the member's row lock, each time.

A message, on PostgreSQL (round trips; SQLite runs the same steps as separate statements, which cost
it no round trip):

1. ``admit``: BEGIN; one statement that counts the message against its sender's per-minute limit,
   claims the provider's message id and locks the member's row; then ``lock_state``, a statement of
   its own (so it reads what a concurrent message of the same member committed before the lock was
   ours): the member, their conversation, and the campaigns their person signed and their latest
   signature. All three go in one pipeline;
2. ``add_signature`` (the signature and the campaign counter, one statement), when the engine asks;
3. ``save_and_commit``: the consent events, the member, the conversation and the reply kept for
   retries (one statement), the member's own words for the inbox when the engine keeps them (their
   message, the acknowledgement, their conversation with staff), and COMMIT, in one pipeline.

The same functions claim a provider id (``claim``) and lock or create a member (``lock_state``,
``create_or_lock``) for the services that go on with the ORM (a Telegram contact, a blocked bot,
forgetting a member), in the session's own transaction (``Transaction.within``): there is no second
way. The rooms: this module's operations; ``state`` (the conversation state, defined once);
``sql`` (the statements, compiled once per dialect); ``transaction`` (the driver-level transaction).
"""


from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from storage.inbound.sql import _for, prepare  # noqa: F401 - prepare: for storage.uow
from storage.inbound.state import (  # noqa: F401 - the state's names, for the hot path's callers
    _FLAGS,
    _MEMBER_COLUMNS,
    CONVERSATION_FIELDS,
    STATE_FIELDS,
    ConversationState,
    MemberState,
)
from storage.inbound.transaction import Transaction, _driver, _execute, _run
from storage.models import CAUSE_MAX


def _p(**params) -> dict:
    """Bind parameters are named p_<name>: a bare column name is reserved in INSERT and UPDATE."""
    return {f"p_{k}": v for k, v in params.items()}


def _campaigns(*joined: str | None) -> frozenset[str]:
    return frozenset(slug for part in joined if part for slug in part.split(","))


@dataclass
class Admission:
    """What ``admit`` found: the sender's messages this minute (0: not counted), whether the provider's
    message id was claimed now (False: a retry of a message already handled), and the member, locked
    and read (None: a contact never seen)."""

    count: int
    claimed: bool
    member: MemberState | None


def admit(conn: Transaction, channel: str, address: str, provider_id: str | None, now: datetime,
          window: datetime | None) -> Admission:
    """The transaction's first statements: count the message in its sender's minute starting at
    ``window`` (None: not counted), claim ``provider_id`` (the claim waits for a transaction still
    handling the same id to end), then lock and read the member (``lock_state``).

    On PostgreSQL the counter, the claim and the lock are one statement, sent with BEGIN and the read
    in one round trip; the read is a statement of its own, so it sees what a concurrent message of this
    member committed before the lock was ours. ``save_and_commit`` sends COMMIT the same way."""
    st = _for(conn)
    params = _p(channel=channel, address=address, provider_id=provider_id, now=now, window=window)
    if st.pg:
        with _driver(conn) as raw:
            with raw.pipeline():
                conn.begin()
                admitted = _execute(raw, st.admit[window is not None, provider_id is not None], params)
                state = _execute(raw, st.lock_state, params)
            (count, claimed, _), row = admitted.fetchone(), state.fetchone()
        return Admission(count, bool(claimed), _member(conn, row))
    count = _run(conn, st.bump, params).fetchone()[0] if window is not None else 0
    claimed = provider_id is None or _run(conn, st.claim, params).fetchone() is not None
    return Admission(count, claimed, lock_state(conn, channel, address))


def claim(conn: Transaction, channel: str, provider_id: str, now: datetime) -> bool:
    """Claim the provider's message id on its own (``admit`` claims it with the message's other first
    statements): False when it was claimed before (a retry). A concurrent retry waits on the key until
    the first transaction ends, then sees its row."""
    return _run(conn, _for(conn).claim, _p(channel=channel, provider_id=provider_id, now=now)).fetchone() is not None


def store_response(conn: Transaction, channel: str, provider_id: str, response: str) -> None:
    """Keep the answer given to a claimed message, for a retry of it (``save_and_commit`` does it for a
    conversation message)."""
    _run(conn, _for(conn).save_response, _p(channel=channel, provider_id=provider_id, response=response))


def unclaim(conn: Transaction, channel: str, provider_id: str) -> None:
    """Give up a claim made in this transaction (a dropped message leaves no row behind)."""
    _run(conn, _for(conn).unclaim, _p(channel=channel, provider_id=provider_id))


def stored_response(conn: Transaction, channel: str, provider_id: str) -> str | None:
    """The reply kept by the first handling of a message (None: it is still being handled, or was dropped)."""
    row = _run(conn, _for(conn).response, _p(channel=channel, provider_id=provider_id)).fetchone()
    return row[0] if row else None


def lock_state(conn: Transaction, channel: str, address: str) -> MemberState | None:
    """The member (row-locked), their conversation and their person's signed campaigns; None for a
    contact never seen."""
    return _member(conn, _run(conn, _for(conn).lock_state, _p(channel=channel, address=address)).fetchone())


def _member(conn: Transaction, row) -> MemberState | None:
    """A lock_state row as MemberState. A member linked to another chat also locks that person's row, so
    two chats of one person cannot sign the same campaign at once; their signed campaigns are then read
    again."""
    if row is None:
        return None
    values = dict(zip(_MEMBER_COLUMNS, row))
    values.update((flag, bool(values[flag])) for flag in _FLAGS)
    at = len(_MEMBER_COLUMNS) + 1  # after the conversation's member_id: None when it has none yet
    if row[at - 1] is not None:
        values.update(zip(CONVERSATION_FIELDS, row[at:]))
    signed_own, signed_linked, *last = row[at + len(CONVERSATION_FIELDS):]
    state = MemberState(**values, signed=_campaigns(signed_own, signed_linked), last_signature=_last(last))
    if state.person_id is not None:
        st = _for(conn)
        _run(conn, st.lock_person, _p(person=state.person_id)).fetchone()
        signed_own, signed_linked, *last = _run(conn, st.signed, _p(person=state.person_id)).fetchone()
        state.signed, state.last_signature = _campaigns(signed_own, signed_linked), _last(last)
    return state


def _last(columns: list) -> tuple | None:
    return tuple(columns) if columns[0] is not None else None


def create_member(conn: Transaction, channel: str, address: str, now: datetime, simulated: bool,
                  forgotten_token: str | None, link: bool = False, language: str = "en") -> MemberState | None:
    """Insert a member for a first message; None when another transaction inserted it first (then lock
    and read it with lock_state). A row this transaction inserted is invisible to others until commit.
    A contact forgotten before (a member at ``forgotten_token`` exists) starts opted out. With ``link``
    (a phone-number channel), a number another channel has met is linked to that person in the same
    statement; the person is then locked and the campaigns they signed read (one more round trip, for
    that first message only). Consent stays the member's own (per channel)."""
    st = _for(conn)
    params = _p(channel=channel, address=address, now=now, simulated=simulated, token=forgotten_token,
                link=link and not simulated, language=language)
    if st.pg and link and not simulated:
        # the number's lock and the INSERT in one round trip: the INSERT runs once the lock is ours, so
        # the same number's first message on another channel, at the same moment, is seen and linked
        # (SQLite's writers take turns: nothing to do there)
        with _driver(conn) as raw:
            with raw.pipeline():
                conn.begin()
                _execute(raw, st.lock_number, params)
                inserted = _execute(raw, st.insert_member, params)
            row = inserted.fetchone()
    else:
        row = _run(conn, st.insert_member, params).fetchone()
    if row is None:
        return None
    member = MemberState(id=row[0], simulated=simulated, person_id=row[2], language=language,
                         opted_out=row[1] is not None)
    if member.person_id is not None:
        st = _for(conn)
        _run(conn, st.lock_person, _p(person=member.person_id)).fetchone()
        signed_own, signed_linked, *last = _run(conn, st.signed, _p(person=member.person_id)).fetchone()
        member.signed, member.last_signature = _campaigns(signed_own, signed_linked), _last(last)
    return member


def create_or_lock(conn: Transaction, channel: str, address: str, now: datetime, simulated: bool,
                   forgotten_token: str | None, link: bool = False, language: str = "en") -> tuple[MemberState, bool]:
    """The member at ``address``, created (``create_member``) unless another transaction made it first,
    then locked and read (``lock_state``). Returns (member, created). For a contact ``lock_state`` has
    just found missing."""
    member = create_member(conn, channel, address, now, simulated, forgotten_token, link, language)
    if member is not None:
        return member, True
    return lock_state(conn, channel, address), False


def lock_or_create(conn: Transaction, channel: str, address: str, now: datetime, simulated: bool,
                   forgotten_token: str | None, link: bool = False, language: str = "en") -> tuple[MemberState, bool]:
    """The member at ``address``, locked and read, or created when missing. Returns (member, created)."""
    member = lock_state(conn, channel, address)
    if member is not None:
        return member, False
    return create_or_lock(conn, channel, address, now, simulated, forgotten_token, link, language)


def add_signature(conn: Transaction, member: MemberState, channel: str, *, campaign: str, name: str, zip_code: str,
                  city: str, state: str, timezone: str | None, language: str, now: datetime) -> bool:
    """Record the signature and count it (a simulated one is not counted). False when this member had
    signed already (the unique constraint holds). Another chat of the same person is the caller's to
    check, in ``MemberState.signed``: lock_state read it under the person's lock."""
    st = _for(conn)
    params = _p(member_id=member.id, campaign=campaign, channel=channel, name=name, zip_code=zip_code, city=city,
                state=state, timezone=timezone, language=language, simulated=member.simulated, now=now)
    if st.pg:
        return bool(_run(conn, st.sign, params).fetchone()[0])
    if _run(conn, st.sign, params).fetchone() is None:
        return False
    if not member.simulated:
        _run(conn, st.count, params)
    return True


LAST_TEXT = 200  # characters of a member's latest message shown in the inbox's list


@dataclass
class KeptMessage:
    """The member's own words for the inbox, and the acknowledgement sent back (None: none today)."""

    text: str
    media: bool
    campaign: str | None
    acknowledgement: str | None


@dataclass
class ConsentRecord:
    """One consent_events row: an opt-in, opt-out or HELP, its cause and the exact text sent back."""

    kind: str
    cause: str
    campaign: str | None
    text_sent: str | None


def save_and_commit(conn: Transaction, member_id: int, channel: str, provider_id: str | None, *,
                    consents: list[ConsentRecord], state: ConversationState, response: str, now: datetime,
                    kept: KeptMessage | None = None) -> None:
    """The consent events, then the member (language, opt-out kept from its first time, disclosure, seen
    now and reachable again) and their conversation as ``state``, and the reply kept for a retry of
    ``provider_id``; the inbox's rows for ``kept``; then COMMIT. On PostgreSQL all of it is one round
    trip (a pipeline)."""
    st = _for(conn)
    language = state.language
    params = _p(member_id=member_id, channel=channel, provider_id=provider_id, response=response, now=now,
                **{name: getattr(state, name) for name in STATE_FIELDS})
    events = [_p(member_id=member_id, channel=channel, kind=c.kind, cause=c.cause[:CAUSE_MAX], campaign=c.campaign,
                 text_sent=c.text_sent, now=now) for c in consents]
    inbox = []
    if kept is not None:
        inbox.append((st.inbox_message, _p(member_id=member_id, sender="member", channel=channel, text=kept.text,
                                           media=kept.media, now=now)))
        if kept.acknowledgement:
            inbox.append((st.inbox_message, _p(member_id=member_id, sender="bot", channel=channel,
                                               text=kept.acknowledgement, media=False, now=now)))
        inbox.append((st.inbox_thread, _p(member_id=member_id, channel=channel, language=language,
                                          campaign=kept.campaign, now=now,
                                          text=kept.text[:LAST_TEXT] if kept.text or not kept.media else "[media]")))
    with _driver(conn) as raw:
        if st.pg:
            with raw.pipeline():
                conn.begin()
                for event in events:
                    _execute(raw, st.consent, event)
                _execute(raw, st.save[provider_id is not None], params)
                for sql, values in inbox:
                    _execute(raw, sql, values)
                # a statement of the pipeline, answered with the rest (psycopg's commit() would wait on a
                # Sync of its own); the connection's state then reads idle, as after commit()
                raw.execute("COMMIT")
        else:
            conn.begin()
            for event in events:
                _execute(raw, st.consent, event)
            _execute(raw, st.save_member, params)
            _execute(raw, st.save_conversation, params)
            if provider_id is not None:
                _execute(raw, st.save_response, params)
            for sql, values in inbox:
                _execute(raw, sql, values)
            raw.commit()
    conn.begun = False
