"""The inbound hot path: the statements one conversation message sends.

Every message of every conversation runs these, so they are built once from the models' tables and
compiled once per dialect, and run in a ``Transaction``: one pooled connection of the engine's,
used through the driver, with no Session and no SQLAlchemy Connection around it (their bookkeeping
cost more CPU per message than the statements themselves): no statement building, no ORM objects,
no flush and no SQLAlchemy execution layer per message. Driver errors still come out as
SQLAlchemy's, and a lost connection is invalidated as SQLAlchemy does (``_driver``), so the webhook's
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
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import (Boolean, Connection, Engine, bindparam, case, delete, exists, func, literal, literal_column,
                        select, true, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased

from storage.db import begin_write, transaction_settings
from storage.models import (
    CampaignCount,
    ConsentEvent,
    Conversation,
    InboundCounter,
    InboxMessage,
    InboxThread,
    Member,
    ProcessedMessage,
    Signature,
    UTCDateTime,
)


@dataclass(kw_only=True)
class ConversationState:
    """What is kept of a member's conversation between two messages, field by field: the engine's State
    less what is derived from other rows (bots.service maps the two by these names). The first three
    are the member row's, the rest the conversation row's columns of the same names."""

    language: str = "en"
    opted_out: bool = False
    disclosed: bool = False
    campaign: str | None = None
    step: str = "idle"
    pending_name: str | None = None
    invalid_count: int = 0
    acked_on: str | None = None  # the day the inbox last acknowledged their own words


STATE_FIELDS = tuple(f.name for f in fields(ConversationState))
CONVERSATION_FIELDS = STATE_FIELDS[3:]  # the conversations table's columns, by name


@dataclass(kw_only=True)
class MemberState(ConversationState):
    """The locked member, their conversation, their person's signed campaigns and latest signature."""

    id: int
    simulated: bool
    person_id: int | None
    signed: frozenset[str] = frozenset()
    # the person's latest signature (of any of their chats): what a second campaign offers to sign with
    last_signature: tuple[str, str, str, str, str, str | None] | None = None  # campaign, name, zip, city, state, tz


# The member row as lock_state reads it, by MemberState's field names (then the conversation's columns).
_MEMBER_COLUMNS = {"id": Member.id, "simulated": Member.simulated, "person_id": Member.person_id,
                   "language": Member.language, "opted_out": Member.opted_out_at.is_not(None),
                   "disclosed": Member.disclosed_at.is_not(None)}
_FLAGS = ("simulated", "opted_out", "disclosed")  # SQLite reads them as 0 and 1


def _now(name: str = "now"):
    return bindparam("p_" + name, type_=UTCDateTime)


class _Statements:
    """The hot path's statements for one dialect, built once (and compiled once, by _Compiled)."""

    def __init__(self, dialect: str):
        self.pg = dialect == "postgresql"
        insert = postgresql.insert if self.pg else sqlite.insert

        bump = insert(InboundCounter).values(channel=bindparam("p_channel"), address=bindparam("p_address"),
                                             window_start=_now("window"), count=1)
        self.bump = bump.on_conflict_do_update(
            index_elements=["channel", "address"],
            set_={"count": case((InboundCounter.window_start == bump.excluded.window_start, InboundCounter.count + 1),
                                else_=1),
                  "window_start": bump.excluded.window_start},
        ).returning(InboundCounter.count)
        self.claim = (insert(ProcessedMessage)
                      .values(channel=bindparam("p_channel"), provider_id=bindparam("p_provider_id"),
                              received_at=_now())
                      .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
                      .returning(ProcessedMessage.provider_id))
        self.lock = (select(Member.id)
                     .where(Member.channel == bindparam("p_channel"), Member.address == bindparam("p_address"))
                     .with_for_update())
        self.unclaim = delete(ProcessedMessage).where(ProcessedMessage.channel == bindparam("p_channel"),
                                                      ProcessedMessage.provider_id == bindparam("p_provider_id"))
        self.response = select(ProcessedMessage.response).where(
            ProcessedMessage.channel == bindparam("p_channel"), ProcessedMessage.provider_id == bindparam("p_provider_id"))

        # The person's signed campaigns: those of the person's own member (the root, person_id or else id)
        # and those of the members linked to it, as two lists (a slug has letters, digits and dashes only,
        # so a comma joins them). Two lookups by equality on indexed columns, so that the plan PostgreSQL
        # caches for the prepared statement is index scans even when it was made while the tables were
        # empty (one subquery with "id = root OR person_id = root" was cached as a scan of members and
        # signatures: every message of a new deployment read both tables whole).
        agg = ((lambda c: func.string_agg(c, literal_column("','"))) if self.pg else func.group_concat)
        mate = aliased(Member)

        def signed(root):
            own = select(agg(Signature.campaign)).where(Signature.member_id == root).scalar_subquery()
            linked = (select(agg(Signature.campaign)).select_from(mate)
                      .join(Signature, Signature.member_id == mate.id).where(mate.person_id == root)
                      .correlate(Member).scalar_subquery())
            return own, linked

        # The person's latest signature: the greater of the two latest ids, the root's own and its linked
        # members' (ids grow, and one person's signatures are written under its lock), looked up by that
        # id. On PostgreSQL a LATERAL subquery, so that it is an index lookup per member whatever plan is
        # cached (a plain join was planned as a hash join over all signatures); SQLite has no LATERAL and
        # looks a rowid up by its value anyway.
        last = aliased(Signature, name="last_signature")
        greatest = func.greatest if self.pg else func.max  # SQLite's max() of two values is theirs
        none = literal_column("0")

        def latest_id(root):
            own = select(func.max(Signature.id)).where(Signature.member_id == root).correlate(Member).scalar_subquery()
            linked = (select(func.max(Signature.id)).select_from(mate)
                      .join(Signature, Signature.member_id == mate.id).where(mate.person_id == root)
                      .correlate(Member).scalar_subquery())
            return greatest(func.coalesce(own, none), func.coalesce(linked, none))

        last_columns = (last.campaign, last.name, last.zip_code, last.city, last.state, last.timezone)

        def with_latest(stmt, root):
            if self.pg:
                # LIMIT keeps the planner from flattening it into that hash join
                found = select(*last_columns).where(last.id == latest_id(root)).limit(literal_column("1")).lateral("latest")
                return stmt.add_columns(*found.c).outerjoin(found, true())
            return stmt.add_columns(*last_columns).outerjoin(last, last.id == latest_id(root))

        root = func.coalesce(Member.person_id, Member.id)
        self.lock_state = with_latest(
            select(*_MEMBER_COLUMNS.values(), Conversation.member_id,
                   *(Conversation.__table__.c[name] for name in CONVERSATION_FIELDS), *signed(root))
            .outerjoin(Conversation, Conversation.member_id == Member.id), root,
        ).where(Member.channel == bindparam("p_channel"), Member.address == bindparam("p_address")) \
            .with_for_update(of=Member)
        person = bindparam("p_person", type_=Member.id.type)
        self.signed = with_latest(select(*signed(person)).select_from(Member), person).where(Member.id == person)
        self.lock_person = select(Member.id).where(Member.id == bindparam("p_person")).with_for_update()
        # A contact that was forgotten (its erased member's address is forgotten_token) starts opted out.
        forgotten = exists().where(Member.channel == bindparam("p_channel"), Member.address == bindparam("p_token"))
        # A phone number already met on another channel (SMS, WhatsApp: the channels whose addresses are
        # E.164, the only ones starting with "+") is the same person: with p_link the new member is
        # linked, in the same statement, to that number's person (its first member's person).
        other = aliased(Member, name="same_number")
        phone_person = (select(func.coalesce(other.person_id, other.id))
                        .where(other.address == bindparam("p_address"), other.channel != bindparam("p_channel"),
                               other.address.startswith("+"), other.simulated.is_(False))
                        .order_by(other.id).limit(1).scalar_subquery())
        self.insert_member = (insert(Member)
                              .values(channel=bindparam("p_channel"), address=bindparam("p_address"),
                                      simulated=bindparam("p_simulated"), language=bindparam("p_language"),
                                      created_at=_now(),
                                      opted_out_at=case((forgotten, _now()), else_=None),
                                      person_id=case((bindparam("p_link", type_=Boolean), phone_person), else_=None))
                              .on_conflict_do_nothing(index_elements=["channel", "address"])
                              .returning(Member.id, Member.opted_out_at, Member.person_id))

        sig = (insert(Signature)
               .values(member_id=bindparam("p_member_id"), campaign=bindparam("p_campaign"),
                       channel=bindparam("p_channel"),
                       name=bindparam("p_name"), zip_code=bindparam("p_zip_code"), city=bindparam("p_city"),
                       state=bindparam("p_state"), timezone=bindparam("p_timezone"), language=bindparam("p_language"),
                       simulated=bindparam("p_simulated"), signed_at=_now())
               .on_conflict_do_nothing(index_elements=["member_id", "campaign"])
               .returning(Signature.id))
        count = (insert(CampaignCount).values(campaign=bindparam("p_campaign"), signatures=1)
                 .on_conflict_do_update(index_elements=["campaign"], set_={"signatures": CampaignCount.signatures + 1}))
        if self.pg:
            # One statement: the signature, and the counter only when the signature was new (and real).
            sig_cte = sig.cte("sig")
            counted = (insert(CampaignCount)
                       .from_select(["campaign", "signatures"],
                                    select(bindparam("p_campaign", type_=CampaignCount.campaign.type), literal(1))
                                    .select_from(sig_cte).where(bindparam("p_simulated", type_=Boolean).is_(False)))
                       .on_conflict_do_update(index_elements=["campaign"],
                                              set_={"signatures": CampaignCount.signatures + 1}))
            self.sign = select(func.count()).select_from(sig_cte).add_cte(counted.cte("counted"))
        else:
            self.sign, self.count = sig, count

        self.consent = (ConsentEvent.__table__.insert()
                        .values(member_id=bindparam("p_member_id"), kind=bindparam("p_kind"),
                                channel=bindparam("p_channel"),
                                cause=bindparam("p_cause"), campaign=bindparam("p_campaign"),
                                text_sent=bindparam("p_text_sent"), created_at=_now()))

        opted_out, disclosed = bindparam("p_opted_out", type_=Boolean), bindparam("p_disclosed", type_=Boolean)
        self.save_member = (update(Member).where(Member.id == bindparam("p_member_id"))
                            .values(language=bindparam("p_language"),
                                    opted_out_at=case((opted_out, func.coalesce(Member.opted_out_at, _now())),
                                                      else_=None),
                                    disclosed_at=case((disclosed, func.coalesce(Member.disclosed_at, _now())),
                                                      else_=Member.disclosed_at),
                                    last_seen_at=_now(), unreachable_at=None))
        conv = insert(Conversation).values(member_id=bindparam("p_member_id"), updated_at=_now(),
                                           **{name: bindparam("p_" + name) for name in CONVERSATION_FIELDS})
        self.save_conversation = conv.on_conflict_do_update(
            index_elements=["member_id"], set_={c: conv.excluded[c] for c in (*CONVERSATION_FIELDS, "updated_at")})
        self.save_response = (update(ProcessedMessage)
                              .where(ProcessedMessage.channel == bindparam("p_channel"),
                                     ProcessedMessage.provider_id == bindparam("p_provider_id"))
                              .values(response=bindparam("p_response")))

        # The inbox: a message of the member's conversation with staff, and that conversation (open again,
        # newest, one more unread message when it is the member's).
        self.inbox_message = (InboxMessage.__table__.insert()
                              .values(member_id=bindparam("p_member_id"), at=_now(), sender=bindparam("p_sender"),
                                      channel=bindparam("p_channel"), text=bindparam("p_text"),
                                      media=bindparam("p_media", type_=Boolean)))
        thread = insert(InboxThread).values(member_id=bindparam("p_member_id"), channel=bindparam("p_channel"),
                                            language=bindparam("p_language"), campaign=bindparam("p_campaign"),
                                            status="open", last_at=_now(), last_text=bindparam("p_text"),
                                            unread=1)
        self.inbox_thread = thread.on_conflict_do_update(
            index_elements=["member_id"],
            set_={"channel": thread.excluded.channel, "language": thread.excluded.language,
                  "campaign": func.coalesce(thread.excluded.campaign, InboxThread.campaign),
                  "status": "open", "last_at": thread.excluded.last_at, "last_text": thread.excluded.last_text,
                  "unread": case((InboxThread.status == "open", InboxThread.unread + 1), else_=1),
                  "done_at": None, "done_by": None})

    def admit(self, bump: bool, claim: bool):
        """PostgreSQL: the counter, the claim and the member's lock in one statement, in that order."""
        columns = [self.bump.cte("bump").select().scalar_subquery() if bump else literal(0)]
        if claim:
            columns.append(select(func.count()).select_from(self.claim.cte("claim")).scalar_subquery())
        else:
            columns.append(literal(1))
        columns.append(select(func.count()).select_from(self.lock.cte("lock")).scalar_subquery())
        return select(*columns)

    def save(self, response: bool):
        """PostgreSQL: the member, the conversation and (with a provider id) the stored reply, one statement."""
        stmt = select(func.count()).select_from(self.save_member.returning(Member.id).cte("m"))
        stmt = stmt.add_cte(self.save_conversation.cte("c"))
        if response:
            stmt = stmt.add_cte(self.save_response.cte("r"))
        return stmt


log = logging.getLogger(__name__)


class _Sql:
    """One statement compiled once for a dialect: its SQL text, and how a call's parameters become the
    driver's (the statement's own constants, each column type's bind conversion, as SQLAlchemy applies
    them; in SQLite's positional order)."""

    __slots__ = ("text", "defaults", "processors", "order")

    def __init__(self, stmt, dialect):
        compiled = stmt.compile(dialect=dialect)
        self.text = str(compiled)
        names = set(compiled.bind_names.values())
        self.defaults = compiled.construct_params({n: None for n in names if n.startswith("p_")})
        processors = {}
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors[name] = process
        self.processors = tuple(processors.items())
        self.order = tuple(compiled.positiontup) if compiled.positional else None

    def params(self, given: dict):
        values = {**self.defaults, **given}
        for name, process in self.processors:
            values[name] = process(values[name])
        return values if self.order is None else tuple(values[n] for n in self.order)


class _Compiled:
    """Every hot-path statement of one dialect as _Sql, compiled on first use."""

    def __init__(self, dialect):
        st = _Statements(dialect.name)
        self.pg = st.pg
        sql = lambda stmt: _Sql(stmt, dialect)  # noqa: E731
        self.lock_state, self.lock_person, self.signed = sql(st.lock_state), sql(st.lock_person), sql(st.signed)
        self.insert_member, self.sign, self.consent = sql(st.insert_member), sql(st.sign), sql(st.consent)
        self.unclaim, self.response = sql(st.unclaim), sql(st.response)
        self.claim, self.save_response = sql(st.claim), sql(st.save_response)
        if self.pg:
            self.admit = {key: sql(st.admit(*key)) for key in ((b, c) for b in (True, False) for c in (True, False))}
            self.save = {response: sql(st.save(response)) for response in (True, False)}
        else:
            self.bump, self.count = sql(st.bump), sql(st.count)
            self.save_member, self.save_conversation = sql(st.save_member), sql(st.save_conversation)
        self.inbox_message, self.inbox_thread = sql(st.inbox_message), sql(st.inbox_thread)


_compiled: dict[str, _Compiled] = {}


def _for(conn: Transaction | Connection) -> _Compiled:
    name = conn.dialect.name
    if name not in _compiled:
        _compiled[name] = _Compiled(conn.dialect)
    return _compiled[name]


class Transaction:
    """One inbound message's transaction, on a connection checked out of the engine's pool and used
    through its driver (``raw``): ``with Transaction(engine) as tx: ...; tx.commit()``; what is not
    committed is rolled back when the block ends, and the connection goes back to the pool as it came
    (a connection that cannot be cleaned up is discarded instead).

    The transaction begins with its first statement (``begin``). On SQLite it begins as a writer
    (storage.db.begin_write: BEGIN IMMEDIATE after the queue for the database's writer). On PostgreSQL
    the connection is in the driver's autocommit mode, in which the server's transaction is the one
    this BEGIN opens, sent in a pipeline with the statements after it (psycopg would send its own and
    wait for it first); commit and rollback reach the server all the same, and the ordinary mode is
    restored before the connection goes back."""

    _session: Session | None = None
    _connection: Connection | None = None

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect
        self.pg = self.dialect.name == "postgresql"
        self.begun = False

    @classmethod
    def within(cls, session: Session) -> "Transaction":
        """The transaction of ``session``, for work that goes on with the ORM after the hot path's
        statements (a Telegram contact): its connection, on PostgreSQL in the driver's autocommit mode
        as above (SQLAlchemy restores the mode when the connection goes back). Not a context manager:
        the session's unit of work ends it; commit and rollback are the session's."""
        pg = session.get_bind().dialect.name == "postgresql"
        connection = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"} if pg else None)
        tx = cls(connection.engine)
        tx._session, tx._connection = session, connection
        tx.raw = connection.connection.dbapi_connection
        tx.begun = not pg  # SQLAlchemy's begin (storage.db) sent BEGIN IMMEDIATE on SQLite
        return tx

    def __enter__(self) -> "Transaction":
        dialect = self.dialect
        try:
            self._pooled = self.engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:  # no connection to be had: as SQLAlchemy's connect() raises
            raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect,
                                      connection_invalidated=dialect.is_disconnect(exc, None, None)) from exc
        self.raw = self._pooled.dbapi_connection
        if self.pg:
            try:
                with _driver(self):
                    self.raw.autocommit = True
            except BaseException:
                self._pooled.close()
                raise
        return self

    def begin(self) -> None:
        """BEGIN, unless the transaction has begun (call it inside ``_driver``)."""
        if self.begun:
            return
        if self.pg:
            log.debug("BEGIN")
            self.raw.execute("BEGIN")
            settings = transaction_settings(self.raw)  # the web path's timeouts, behind a pooler
            if settings:
                self.raw.execute(settings)
        else:
            log.debug("BEGIN IMMEDIATE")
            begin_write(self.raw)
        self.begun = True

    def commit(self) -> None:
        self._end("commit")

    def rollback(self) -> None:
        self._end("rollback")

    def _end(self, how: str) -> None:
        """COMMIT or ROLLBACK: the session's (``within``), else the driver's."""
        self.begun = False
        if self._session is not None:
            getattr(self._session, how)()
            return
        with _driver(self):
            getattr(self.raw, how)()

    def invalidate(self, exc: BaseException) -> None:
        if self._connection is not None:
            self._connection.invalidate(exc)
        else:
            self._pooled.invalidate(exc)

    def __exit__(self, *exc_info) -> None:
        try:
            if self._pooled.is_valid:
                self.raw.rollback()  # nothing to do after a commit
                if self.pg:
                    self.raw.autocommit = False
        except Exception as exc:  # a connection that died meanwhile: not back into the pool
            log.warning("inbound transaction: the connection could not be cleaned up (%s); discarded",
                        exc.__class__.__name__)
            self._pooled.invalidate(exc)
        finally:
            self._pooled.close()


def prepare(engine: Engine) -> None:
    """Compile the hot path's statements for ``engine``'s dialect now, at a web process's start
    (storage.uow.Database.for_requests), rather than in the first message the process handles (30 to
    40 ms on a slow machine)."""
    _for(engine)


@contextmanager
def _driver(conn: Transaction):
    """The driver's connection under ``conn`` (in its transaction), raising what SQLAlchemy would raise:
    a driver error becomes SQLAlchemy's (OperationalError, IntegrityError, ...), and a lost connection
    is invalidated, with the pool behind it, as SQLAlchemy does (so a retry connects anew, and the web
    app answers 503 rather than 500)."""
    raw = conn.raw
    try:
        yield raw
    except conn.dialect.loaded_dbapi.Error as exc:
        dialect = conn.dialect
        lost = dialect.is_disconnect(exc, raw, None)
        if lost:
            conn.invalidate(exc)
            conn.engine.dispose(close=False)  # the other pooled connections may be dead too: new ones
        raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost,
                                  dialect=dialect) from exc


def _execute(raw, sql: _Sql, given: dict):
    """One statement on the driver's connection (queued, inside a pipeline); logged at DEBUG, as SQLAlchemy's
    echo would (config.redaction masks the phone numbers in the parameters)."""
    params = sql.params(given)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s\n%r", sql.text, params)
    return raw.execute(sql.text, params)


def _run(conn: Transaction, sql: _Sql, params: dict):
    with _driver(conn) as raw:
        conn.begin()
        return _execute(raw, sql, params)


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
    row = _run(conn, _for(conn).insert_member, _p(channel=channel, address=address, now=now, simulated=simulated,
                                                  token=forgotten_token, link=link and not simulated,
                                                  language=language)).fetchone()
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
    events = [_p(member_id=member_id, channel=channel, kind=c.kind, cause=c.cause[:64], campaign=c.campaign,
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
