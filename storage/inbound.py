"""The inbound hot path (issue 6): the statements one conversation message sends.

Every message of every conversation runs these, so they are built once per dialect (with bind
parameters, from the models' tables) and run on the session's connection: no statement building, no
ORM objects and no flush per message. Nothing is cached between messages: the member, their opt-out
and their conversation are read fresh, under the member's row lock, each time.

A message, on PostgreSQL (round trips; SQLite runs the same steps as separate statements, which cost
it no round trip):

1. ``admit``: count the message against its sender's per-minute limit, claim the provider's message
   id, and lock the member's row, in one statement;
2. ``lock_state``: the member, their conversation and the campaigns their person signed, read after
   the lock is held (so nothing is read from before a concurrent message of the same member
   committed);
3. ``add_signature`` (the signature and the campaign counter, one statement), ``add_consent``, when
   the engine asks for them;
4. ``save``: the member, the conversation and the reply kept for retries, one statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import (Boolean, Connection, bindparam, case, delete, distinct, exists, func, literal, literal_column,
                        or_, select, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import aliased

from storage.models import (
    CampaignCount,
    ConsentEvent,
    Conversation,
    InboundCounter,
    Member,
    ProcessedMessage,
    Signature,
    UTCDateTime,
)


@dataclass
class MemberState:
    """The locked member, their conversation and their person's signed campaigns."""

    id: int
    simulated: bool
    person_id: int | None
    language: str
    opted_out: bool
    disclosed: bool
    campaign: str | None = None
    step: str = "idle"
    pending_name: str | None = None
    invalid_count: int = 0
    signed: frozenset[str] = frozenset()


def _now(name: str = "now"):
    return bindparam("p_" + name, type_=UTCDateTime)


class _Statements:
    """The hot path's statements for one dialect, built once."""

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
        self._admit: dict[tuple[bool, bool], object] = {}

        # The person's signed campaigns: a slug has letters, digits and dashes only, so a comma joins them.
        person = func.coalesce(Member.person_id, Member.id)
        mate = aliased(Member)
        signed = (select(func.string_agg(distinct(Signature.campaign), literal_column("','")) if self.pg
                         else func.group_concat(distinct(Signature.campaign)))
                  .where(Signature.member_id.in_(select(mate.id).where(or_(mate.id == person, mate.person_id == person))
                                                .correlate(Member)))
                  .scalar_subquery())
        self.lock_state = (
            select(Member.id, Member.simulated, Member.person_id, Member.language,
                   Member.opted_out_at.is_not(None), Member.disclosed_at.is_not(None),
                   Conversation.member_id, Conversation.campaign, Conversation.step, Conversation.pending_name,
                   Conversation.invalid_count, signed)
            .outerjoin(Conversation, Conversation.member_id == Member.id)
            .where(Member.channel == bindparam("p_channel"), Member.address == bindparam("p_address"))
            .with_for_update(of=Member))
        by_person = bindparam("p_person")
        self.signed = (select(func.string_agg(distinct(Signature.campaign), literal_column("','")) if self.pg
                              else func.group_concat(distinct(Signature.campaign)))
                       .where(Signature.member_id.in_(select(Member.id).where(or_(Member.id == by_person,
                                                                                  Member.person_id == by_person)))))
        self.lock_person = select(Member.id).where(Member.id == bindparam("p_person")).with_for_update()
        # A contact that was forgotten (its erased member's address is forgotten_token) starts opted out.
        forgotten = exists().where(Member.channel == bindparam("p_channel"), Member.address == bindparam("p_token"))
        self.insert_member = (insert(Member)
                              .values(channel=bindparam("p_channel"), address=bindparam("p_address"),
                                      simulated=bindparam("p_simulated"), language="en", created_at=_now(),
                                      opted_out_at=case((forgotten, _now()), else_=None))
                              .on_conflict_do_nothing(index_elements=["channel", "address"])
                              .returning(Member.id, Member.opted_out_at))

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
        conv = insert(Conversation).values(member_id=bindparam("p_member_id"), campaign=bindparam("p_campaign"),
                                           step=bindparam("p_step"), pending_name=bindparam("p_pending_name"),
                                           invalid_count=bindparam("p_invalid_count"), updated_at=_now())
        self.save_conversation = conv.on_conflict_do_update(
            index_elements=["member_id"],
            set_={c: conv.excluded[c] for c in ("campaign", "step", "pending_name", "invalid_count", "updated_at")})
        self.save_response = (update(ProcessedMessage)
                              .where(ProcessedMessage.channel == bindparam("p_channel"),
                                     ProcessedMessage.provider_id == bindparam("p_provider_id"))
                              .values(response=bindparam("p_response")))
        self._save: dict[bool, object] = {}

    def admit(self, bump: bool, claim: bool):
        """PostgreSQL: the counter, the claim and the member's lock in one statement, in that order."""
        key = (bump, claim)
        if key not in self._admit:
            columns = [self.bump.cte("bump").select().scalar_subquery() if bump else literal(0)]
            if claim:
                columns.append(select(func.count()).select_from(self.claim.cte("claim")).scalar_subquery())
            else:
                columns.append(literal(1))
            columns.append(select(func.count()).select_from(self.lock.cte("lock")).scalar_subquery())
            self._admit[key] = select(*columns)
        return self._admit[key]

    def save(self, response: bool):
        """PostgreSQL: the member, the conversation and (with a provider id) the stored reply, one statement."""
        if response not in self._save:
            stmt = select(func.count()).select_from(self.save_member.returning(Member.id).cte("m"))
            stmt = stmt.add_cte(self.save_conversation.cte("c"))
            if response:
                stmt = stmt.add_cte(self.save_response.cte("r"))
            self._save[response] = stmt
        return self._save[response]


@lru_cache(maxsize=None)
def _statements(dialect: str) -> _Statements:
    return _Statements(dialect)


def _for(conn: Connection) -> _Statements:
    return _statements(conn.dialect.name)


def _p(**params) -> dict:
    """Bind parameters are named p_<name>: a bare column name is reserved in INSERT and UPDATE."""
    return {f"p_{k}": v for k, v in params.items()}


def _campaigns(joined: str | None) -> frozenset[str]:
    return frozenset(joined.split(",")) if joined else frozenset()


def admit(conn: Connection, channel: str, address: str, provider_id: str | None, now: datetime,
          window: datetime | None) -> tuple[int, bool]:
    """Count the message in its sender's minute starting at ``window`` (None: not counted), and claim
    ``provider_id``. Returns (messages this minute, claimed); claimed is False for a provider's retry of
    a message already handled (or being handled: the claim waits for that transaction to end). On
    PostgreSQL the member's row is locked too, when the member exists."""
    st = _for(conn)
    params = _p(channel=channel, address=address, provider_id=provider_id, now=now, window=window)
    if st.pg:
        count, claimed, _locked = conn.execute(st.admit(window is not None, provider_id is not None), params).one()
        return count, bool(claimed)
    count = conn.execute(st.bump, params).scalar_one() if window is not None else 0
    claimed = provider_id is None or conn.execute(st.claim, params).first() is not None
    return count, claimed


def unclaim(conn: Connection, channel: str, provider_id: str) -> None:
    """Give up a claim made in this transaction (a dropped message leaves no row behind)."""
    conn.execute(_for(conn).unclaim, _p(channel=channel, provider_id=provider_id))


def stored_response(conn: Connection, channel: str, provider_id: str) -> str | None:
    """The reply kept by the first handling of a message (None: it is still being handled, or was dropped)."""
    return conn.execute(_for(conn).response, _p(channel=channel, provider_id=provider_id)).scalar()


def lock_state(conn: Connection, channel: str, address: str) -> MemberState | None:
    """The member (row-locked), their conversation and their person's signed campaigns; None for a
    contact never seen. A member linked to another chat also locks that person's row, so two chats of
    one person cannot sign the same campaign at once; their signed campaigns are then read again."""
    row = conn.execute(_for(conn).lock_state, _p(channel=channel, address=address)).first()
    if row is None:
        return None
    (member_id, simulated, person_id, language, opted_out, disclosed,
     conv_id, campaign, step, pending, invalid, signed) = row
    state = MemberState(member_id, bool(simulated), person_id, language, bool(opted_out), bool(disclosed),
                        signed=_campaigns(signed))
    if conv_id is not None:
        state.campaign, state.step, state.pending_name, state.invalid_count = campaign, step, pending, invalid
    if person_id is not None:
        st = _for(conn)
        conn.execute(st.lock_person, _p(person=person_id)).first()
        state.signed = _campaigns(conn.execute(st.signed, _p(person=person_id)).scalar())
    return state


def create_member(conn: Connection, channel: str, address: str, now: datetime, simulated: bool,
                  forgotten_token: str | None) -> MemberState | None:
    """Insert a member for a first message; None when another transaction inserted it first (then lock
    and read it with lock_state). A row this transaction inserted is invisible to others until commit.
    A contact forgotten before (a member at ``forgotten_token`` exists) starts opted out."""
    row = conn.execute(_for(conn).insert_member, _p(channel=channel, address=address, now=now, simulated=simulated,
                                                    token=forgotten_token)).first()
    if row is None:
        return None
    return MemberState(row[0], simulated, None, "en", opted_out=row[1] is not None, disclosed=False)


def add_signature(conn: Connection, member: MemberState, channel: str, *, campaign: str, name: str, zip_code: str,
                  city: str, state: str, timezone: str | None, language: str, now: datetime) -> bool:
    """Record the signature and count it (a simulated one is not counted). False when this member had
    signed already (the unique constraint holds). Another chat of the same person is the caller's to
    check, in ``MemberState.signed``: lock_state read it under the person's lock."""
    st = _for(conn)
    params = _p(member_id=member.id, campaign=campaign, channel=channel, name=name, zip_code=zip_code, city=city,
                state=state, timezone=timezone, language=language, simulated=member.simulated, now=now)
    if st.pg:
        return bool(conn.execute(st.sign, params).scalar_one())
    if conn.execute(st.sign, params).first() is None:
        return False
    if not member.simulated:
        conn.execute(st.count, params)
    return True


def add_consent(conn: Connection, member_id: int, channel: str, *, kind: str, cause: str, campaign: str | None,
                text_sent: str | None, now: datetime) -> None:
    conn.execute(_for(conn).consent, _p(member_id=member_id, kind=kind, channel=channel, cause=cause[:64],
                                        campaign=campaign, text_sent=text_sent, now=now))


def save(conn: Connection, member_id: int, channel: str, provider_id: str | None, *, language: str, opted_out: bool,
         disclosed: bool, campaign: str | None, step: str, pending_name: str | None, invalid_count: int,
         response: str, now: datetime) -> None:
    """Write the member (language, opt-out kept from its first time, disclosure, seen now and reachable
    again), their conversation, and the reply kept for a retry of ``provider_id``."""
    st = _for(conn)
    params = _p(member_id=member_id, language=language, opted_out=opted_out, disclosed=disclosed, campaign=campaign,
                step=step, pending_name=pending_name, invalid_count=invalid_count, channel=channel,
                provider_id=provider_id, response=response, now=now)
    if st.pg:
        conn.execute(st.save(provider_id is not None), params)
        return
    conn.execute(st.save_member, params)
    conn.execute(st.save_conversation, params)
    if provider_id is not None:
        conn.execute(st.save_response, params)
