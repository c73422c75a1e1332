"""The inbound hot path's statements: built once from the models' tables, compiled once per dialect
(``_Sql``), with how a call's parameters become the driver's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import (Boolean, Engine, bindparam, case, delete, exists, func, literal, literal_column, select, true,
                        update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from storage.inbound.state import _MEMBER_COLUMNS, CONVERSATION_FIELDS
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

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from storage.inbound.transaction import Transaction


PHONE_LOCK_SPACE = 0x6669726D  # "firm": the first key of the advisory locks on phone numbers


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
        # PostgreSQL: a first message's number, locked until the transaction ends, so that a first
        # message of the same number on another channel at the same moment waits, then sees this member
        # and links to it (its INSERT's snapshot is taken after the lock). Two-key form, its own space.
        if self.pg:
            self.lock_number = select(func.pg_advisory_xact_lock(literal(PHONE_LOCK_SPACE),
                                                                 func.hashtext(bindparam("p_address"))))
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
            self.lock_number = sql(st.lock_number)
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


def prepare(engine: Engine) -> None:
    """Compile the hot path's statements for ``engine``'s dialect now, at a web process's start
    (storage.uow.Database.for_requests), rather than in the first message the process handles (30 to
    40 ms on a slow machine)."""
    _for(engine)
