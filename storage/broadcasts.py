"""Broadcast SQL: materialise recipients set-wise, claim due deliveries, record outcomes, throttle.

Plain functions of a Session owned by the caller (the unit of work), like storage/repository.py.
Nothing here loops over recipients in Python: recipients are written with one INSERT ... SELECT, and
quiet-hour holds and time zones are set with one UPDATE per time zone or area code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Protocol, Sequence

from sqlalchemy import (and_, bindparam, case, delete, exists, func, insert, literal, or_, select, text, union_all,
                        update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from storage.models import CAUSE_MAX, Broadcast, ConsentEvent, Delivery, EarlyStatus, Member, SendThrottle, Signature

DUE = text("deliveries.status IN ('pending', 'held')")  # literal, so the partial index ix_deliveries_due is used
OPEN_STATUSES = ("pending", "held", "sending")


def _insert(session: Session, model):
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


@dataclass(frozen=True)
class Filters:
    campaign: str
    channel: str = "all"  # "all", or one channel's name
    state: str | None = None
    zip_prefix: str | None = None
    signed_since: datetime | None = None


def recipients_query(f: Filters, *columns):
    """``columns`` of each signer of the campaign a broadcast may reach (not simulated, not opted out,
    not unreachable), once: ``Member`` is the chat the message goes to, ``Signature`` the signature
    (a person signs a campaign once). A person with one chat (most) is reached on it. A person with
    several (the same number on SMS and WhatsApp, a Telegram chat linked to a number) is reached once,
    on the chat they last wrote from among those not stopped and reachable, of the channel asked for
    if one is; a linked chat counts only once its member has written on it.

    Three disjoint parts, so that each is a plain join, anti-join or semi-join for the planner: signers
    alone (one scan, as before people had several chats), signers linked to a person, and persons
    with chats linked to them (both few)."""
    signer, other = aliased(Member, name="signer"), aliased(Member, name="other")

    def filtered(q):
        q = q.where(Signature.campaign == f.campaign, Signature.simulated.is_(False))
        if f.state:
            q = q.where(Signature.state == f.state)
        if f.zip_prefix:
            q = q.where(Signature.zip_code.startswith(f.zip_prefix, autoescape=True))
        if f.signed_since:
            q = q.where(Signature.signed_at >= f.signed_since)
        return q

    def usable(m):
        conds = [m.simulated.is_(False), m.opted_out_at.is_(None), m.unreachable_at.is_(None)]
        if f.channel != "all":
            conds.append(m.channel == f.channel)
        return and_(*conds)

    alone = filtered(select(*columns).select_from(Signature).join(Member, Member.id == Signature.member_id)
                     .where(Member.person_id.is_(None), usable(Member),
                            # "IS NOT NULL" lets the planner hash only the few linked chats, by their index
                            ~exists().where(other.person_id.is_not(None), other.person_id == Member.id)))
    root = func.coalesce(signer.person_id, signer.id)
    never = literal(datetime(1970, 1, 1, tzinfo=timezone.utc), Member.last_seen_at.type)
    seen_m, seen_o = func.coalesce(Member.last_seen_at, never), func.coalesce(other.last_seen_at, never)
    better = exists().where(or_(other.id == root, other.person_id == root), usable(other),
                            or_(other.id == signer.id, other.last_seen_at.is_not(None)),
                            or_(seen_o > seen_m, and_(seen_o == seen_m, other.id < Member.id)))

    def shared(which):
        return filtered(select(*columns).select_from(Signature).join(signer, signer.id == Signature.member_id)
                        .join(Member, or_(Member.id == root, Member.person_id == root))
                        .where(which, usable(Member), or_(Member.id == signer.id, Member.last_seen_at.is_not(None)),
                               ~better))

    linked = exists().where(other.person_id == signer.id)
    return union_all(alone, shared(signer.person_id.is_not(None)), shared(and_(signer.person_id.is_(None), linked)))


def count_recipients(session: Session, f: Filters) -> dict[tuple[str, str], int]:
    """(channel, language) -> recipients."""
    r = recipients_query(f, Member.channel, Member.language).subquery("r")
    q = select(r.c.channel, r.c.language, func.count()).group_by(r.c.channel, r.c.language)
    return {(ch, lang): n for ch, lang, n in session.execute(q)}


def count_outside_window(session: Session, f: Filters, channel: str, since: datetime) -> int:
    """Recipients on ``channel`` whose last message is older than ``since`` (or who never wrote)."""
    r = recipients_query(f, Member.channel, Member.last_seen_at).subquery("r")
    q = select(func.count()).select_from(r).where(r.c.channel == channel,
                                                  or_(r.c.last_seen_at.is_(None), r.c.last_seen_at < since))
    return session.scalar(q) or 0


def materialise(session: Session, broadcast: Broadcast, f: Filters, now: datetime) -> int:
    """One delivery row per recipient, with one INSERT ... SELECT. Returns the number of rows."""
    cols = ["broadcast_id", "member_id", "channel", "address", "language", "name", "timezone", "status",
            "due_at", "attempts"]
    sel = recipients_query(f, literal(broadcast.id), Member.id, Member.channel, Member.address, Member.language,
                           Signature.name, Signature.timezone, literal("pending"), literal(now, Delivery.due_at.type),
                           literal(0))
    res = session.execute(insert(Delivery).from_select(cols, sel))
    if res.rowcount is not None and res.rowcount >= 0:
        return res.rowcount
    return session.scalar(select(func.count()).select_from(Delivery)
                          .where(Delivery.broadcast_id == broadcast.id)) or 0


def area_codes_without_zone(session: Session, broadcast_id: int, channels: Sequence[str]) -> list[str]:
    """North American area codes of the broadcast's recipients on ``channels`` (phone numbers) whose
    ZIP gave no time zone."""
    q = (select(func.substr(Delivery.address, 3, 3)).distinct()
         .where(Delivery.broadcast_id == broadcast_id, Delivery.channel.in_(channels), Delivery.timezone.is_(None),
                Delivery.address.like("+1__________")))
    return [ac for ac in session.scalars(q) if ac]


def set_zone_for_area_code(session: Session, broadcast_id: int, area_code: str, zone: str,
                           channels: Sequence[str]) -> None:
    session.execute(update(Delivery)
                    .where(Delivery.broadcast_id == broadcast_id, Delivery.channel.in_(channels),
                           Delivery.timezone.is_(None), Delivery.address.like(f"+1{area_code}%"))
                    .values(timezone=zone).execution_options(synchronize_session=False))


def zones(session: Session, broadcast_id: int, channels: Sequence[str]) -> list[str | None]:
    """The time zones of the broadcast's recipients on ``channels``."""
    return list(session.scalars(select(Delivery.timezone).distinct()
                                .where(Delivery.broadcast_id == broadcast_id, Delivery.channel.in_(channels))))


def hold_zone(session: Session, broadcast_id: int, zone: str | None, until: datetime, channels: Sequence[str]) -> int:
    """Hold the broadcast's due messages on ``channels`` in ``zone`` until ``until`` (quiet hours there)."""
    cond = Delivery.timezone.is_(None) if zone is None else Delivery.timezone == zone
    res = session.execute(update(Delivery)
                          .where(Delivery.broadcast_id == broadcast_id, Delivery.channel.in_(channels), cond,
                                 Delivery.status == "pending")
                          .values(status="held", due_at=until).execution_options(synchronize_session=False))
    return res.rowcount or 0


# --- workers -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Claimed:
    id: int
    broadcast_id: int
    member_id: int
    channel: str
    address: str
    language: str
    name: str
    timezone: str | None
    attempts: int
    blocked: bool  # opted out or unreachable since the broadcast was planned
    cancelled: bool = False  # staff cancelled the broadcast since (a retry that came back pending, say)
    lease_until: datetime | None = None  # set by the claim that marks it `sending`: which claim this is
    last_seen: datetime | None = None  # the member's last message (a channel's reply window runs from it)
    templated: bool = False  # outside the reply window: the broadcast's approved template goes instead
    handed: bool = False  # handed to the provider by the claim itself (its slot was due at once)


def claim_candidates(session: Session, channel: str, limit: int, now: datetime,
                     broadcast_id: int | None = None) -> list[Claimed]:
    """Due deliveries of ``channel``, locked for this transaction. On PostgreSQL, rows another worker
    holds are skipped (FOR UPDATE SKIP LOCKED), so workers never wait on, or take, each other's rows;
    SQLite serialises writers (BEGIN IMMEDIATE), so the same code is safe there for one worker at a time."""
    q = (select(Delivery.id, Delivery.broadcast_id, Delivery.member_id, Delivery.channel, Delivery.address,
                Delivery.language, Delivery.name, Delivery.timezone, Delivery.attempts,
                (Member.opted_out_at.is_not(None) | Member.unreachable_at.is_not(None)).label("blocked"),
                Broadcast.cancelled_at.is_not(None).label("cancelled"), Member.last_seen_at)
         .join(Member, Member.id == Delivery.member_id)
         .join(Broadcast, Broadcast.id == Delivery.broadcast_id)
         .where(Delivery.channel == channel, DUE, Delivery.due_at <= now)
         .order_by(Delivery.due_at, Delivery.id)
         .limit(limit)
         .with_for_update(skip_locked=True, of=Delivery))
    if broadcast_id is not None:
        q = q.where(Delivery.broadcast_id == broadcast_id)
    return [Claimed(*row[:9], bool(row[9]), bool(row[10]), last_seen=row[11]) for row in session.execute(q)]


def mark_sending(session: Session, ids: Sequence[int], now: datetime, lease_until: datetime,
                 handed: Sequence[int] = ()) -> None:
    """Claimed by a worker, with a lease; not yet handed to the provider (see hand_over), except
    ``handed``: those whose members lock_subscribed found subscribed in this transaction."""
    if ids:
        session.execute(update(Delivery).where(Delivery.id.in_(ids))
                        .values(status="sending", attempts=Delivery.attempts + 1, lease_until=lease_until,
                                handed_over_at=case((Delivery.id.in_(handed), now), else_=None) if handed else None,
                                updated_at=now).execution_options(synchronize_session=False))


def lock_subscribed(session: Session, member_ids: Iterable[int]) -> set[int]:
    """Those of the members who are subscribed (not opted out, not unreachable), their rows locked FOR
    SHARE until commit: a STOP being handled (its transaction holds the row FOR UPDATE) is waited for
    and read again, and a STOP after this waits for the commit (see hand_over)."""
    ids = sorted(set(member_ids))
    if not ids:
        return set()
    return set(session.scalars(
        select(Member.id).where(Member.id.in_(ids), Member.opted_out_at.is_(None), Member.unreachable_at.is_(None))
        .order_by(Member.id).with_for_update(read=True)))


@dataclass(frozen=True)
class HandOver:
    handed: frozenset[int]  # go to the provider now
    skipped: dict[int, str]  # never sent: id -> "opted_out" or "cancelled" (written as `skipped`)


def hand_over(session: Session, claims: Sequence[tuple[int, int, datetime]], now: datetime) -> HandOver:
    """Just before the provider calls: mark these claims (delivery id, member id, the claim's lease) as
    handed to the provider, only where the member is still subscribed (not opted out, not unreachable)
    and the broadcast not cancelled; the others are `skipped` in the same transaction, and never sent.
    A claim that is no longer this worker's (its lease ran out, a cancel skipped it) is neither.

    Ordered against a STOP: the members' rows are locked FOR SHARE until commit. A STOP's transaction
    locks its member's row FOR UPDATE (storage.inbound), so one of the two waits for the other: either
    the STOP committed first, and the lock re-reads the row (READ COMMITTED) and finds them opted out;
    or the hand-over committed first, and the STOP, once committed, finds the message in flight
    (in_flight_to) and waits for it before it is answered. On SQLite the two are write transactions:
    one writer at a time orders them the same way. Against a cancel: both update the delivery rows,
    so one waits for the other and re-reads them (cancel_open skips claims not handed over)."""
    if not claims:
        return HandOver(frozenset(), {})
    subscribed = lock_subscribed(session, (m for _, m, _ in claims))
    live = ~exists().where(Broadcast.id == Delivery.broadcast_id, Broadcast.cancelled_at.is_not(None))
    by_lease: dict[datetime, list[tuple[int, int]]] = {}
    for delivery_id, member_id, lease in claims:
        by_lease.setdefault(lease, []).append((delivery_id, member_id))
    handed: set[int] = set()
    skipped: dict[int, str] = {}
    for lease, rows in by_lease.items():
        mine = (Delivery.status == "sending", Delivery.lease_until == lease, Delivery.handed_over_at.is_(None))
        go = [d for d, m in rows if m in subscribed]
        if go:
            handed |= set(session.scalars(
                update(Delivery).where(Delivery.id.in_(go), live, *mine)
                .values(handed_over_at=now).returning(Delivery.id).execution_options(synchronize_session=False)))
        rest = [d for d, _ in rows if d not in handed]
        if rest:
            reason = case((live, literal("opted_out")), else_=literal("cancelled"))
            skipped.update(session.execute(
                update(Delivery).where(Delivery.id.in_(rest), *mine)
                .values(status="skipped", error_code=reason, lease_until=None, updated_at=now)
                .returning(Delivery.id, Delivery.error_code).execution_options(synchronize_session=False)).all())
    return HandOver(frozenset(handed), skipped)


def in_flight_to(session: Session, member_id: int, now: datetime) -> bool:
    """Whether a message to this member is on its way to the provider: handed over by a worker that has
    not yet written the provider's answer (and whose lease still holds)."""
    return bool(session.scalar(select(exists().where(
        Delivery.member_id == member_id, text("deliveries.status = 'sending'"),
        Delivery.handed_over_at.is_not(None), Delivery.lease_until > now))))


def mark_skipped(session: Session, ids: Sequence[int], now: datetime, reason: str, status: str = "skipped") -> None:
    if ids:
        session.execute(update(Delivery).where(Delivery.id.in_(ids))
                        .values(status=status, error_code=reason, updated_at=now)
                        .execution_options(synchronize_session=False))


def mark_held(session: Session, ids: Sequence[int], until: datetime, now: datetime) -> None:
    if ids:
        session.execute(update(Delivery).where(Delivery.id.in_(ids))
                        .values(status="held", due_at=until, updated_at=now)
                        .execution_options(synchronize_session=False))


def mark_started(session: Session, broadcast_ids: Iterable[int], now: datetime) -> None:
    ids = sorted(set(broadcast_ids))
    if ids:
        session.execute(update(Broadcast).where(Broadcast.id.in_(ids), Broadcast.started_at.is_(None))
                        .values(started_at=now).execution_options(synchronize_session=False))


def reap_expired(session: Session, now: datetime) -> tuple[int, int]:
    """Rows left `sending` past their lease (a dead worker): (requeued, unknown). Those it never handed
    to the provider (hand_over commits before the call) go back to `pending` for another worker; those
    it handed over may have gone out: `unknown`, reported and never resent."""
    expired = (text("deliveries.status = 'sending'"), Delivery.lease_until < now)
    requeued = session.execute(update(Delivery).where(*expired, Delivery.handed_over_at.is_(None))
                               .values(status="pending", lease_until=None, attempts=Delivery.attempts - 1,
                                       updated_at=now)
                               .execution_options(synchronize_session=False)).rowcount or 0
    unknown = session.execute(update(Delivery).where(*expired)
                              .values(status="unknown", error_code="lease_expired", updated_at=now)
                              .execution_options(synchronize_session=False)).rowcount or 0
    return requeued, unknown


_T = Delivery.__table__


def record_outcomes(session: Session, rows: list[dict], now: datetime) -> None:
    """Write provider outcomes, a batch at a time (executemany). Each dict: id, lease (the claim's
    lease_until), status, provider_id, error_code, due_at (for retries), attempts_delta. Only rows
    still `sending` under that same claim change: a lease that ran out is not overwritten, and neither
    is a later claim of a row put back in the queue, when the same outcomes are written again (a
    COMMIT whose answer was lost: the worker cannot tell it from one that failed)."""
    if not rows:
        return
    stmt = (_T.update()
            .where(_T.c.id == bindparam("b_id"), _T.c.status == "sending",
                   _T.c.lease_until == bindparam("b_lease"))
            .values(status=bindparam("b_status"), provider_id=bindparam("b_provider_id"),
                    error_code=bindparam("b_error_code"), due_at=bindparam("b_due_at"),
                    sent_at=bindparam("b_sent_at"), attempts=_T.c.attempts + bindparam("b_attempts_delta"),
                    lease_until=None, updated_at=now))
    params = [{"b_id": r["id"], "b_lease": r["lease"], "b_status": r["status"],
               "b_provider_id": r.get("provider_id"), "b_error_code": r.get("error_code"), "b_due_at": r["due_at"],
               "b_sent_at": now if r["status"] == "sent" else None, "b_attempts_delta": r.get("attempts_delta", 0)}
              for r in rows]
    session.connection().execute(stmt, params)


def opt_out_member(session: Session, member_id: int, channel: str, cause: str, now: datetime,
                   campaign: str | None = None) -> bool:
    res = session.execute(update(Member).where(Member.id == member_id, Member.opted_out_at.is_(None))
                          .values(opted_out_at=now).execution_options(synchronize_session=False))
    if not res.rowcount:
        return False
    session.add(ConsentEvent(member_id=member_id, kind="opt_out", channel=channel, cause=cause[:CAUSE_MAX],
                             campaign=campaign, text_sent=None, created_at=now))
    return True


def mark_unreachable(session: Session, member_id: int, now: datetime) -> None:
    session.execute(update(Member).where(Member.id == member_id, Member.unreachable_at.is_(None))
                    .values(unreachable_at=now).execution_options(synchronize_session=False))


def anything_left(session: Session, now: datetime, channel: str | None = None,
                  broadcast_id: int | None = None) -> bool:
    """Work a draining worker must still wait for: pending rows (due now or retrying soon), rows in
    flight, and held rows whose window has opened. Rows held for later do not count."""
    conds = [text("(deliveries.status IN ('pending', 'sending') OR "
                  "(deliveries.status = 'held' AND deliveries.due_at <= :now))").bindparams(now=now)]
    if channel:
        conds.append(Delivery.channel == channel)
    if broadcast_id is not None:
        conds.append(Delivery.broadcast_id == broadcast_id)
    return bool(session.scalar(select(exists().where(and_(*conds)))))


def waiting_on(session: Session, channel: str) -> int:
    """Deliveries of ``channel`` a worker has still to send (pending or held)."""
    return session.scalar(select(func.count()).select_from(Delivery)
                          .where(Delivery.channel == channel, Delivery.status.in_(("pending", "held")))) or 0


def finish_broadcasts(session: Session, now: datetime) -> None:
    """Broadcasts with no open delivery left get their finished_at."""
    open_rows = exists().where(Delivery.broadcast_id == Broadcast.id, Delivery.status.in_(OPEN_STATUSES))
    session.execute(update(Broadcast).where(Broadcast.finished_at.is_(None), Broadcast.started_at.is_not(None),
                                            ~open_rows)
                    .values(finished_at=now).execution_options(synchronize_session=False))


def status_counts(session: Session, broadcast_id: int) -> dict[str, int]:
    q = (select(Delivery.status, func.count()).where(Delivery.broadcast_id == broadcast_id)
         .group_by(Delivery.status))
    return {k: v for k, v in session.execute(q)}


def counts_and_handed(session: Session, broadcast_id: int) -> tuple[dict[str, int], int]:
    """status_counts, and how many of the `sending` are handed to the provider (their answer not yet
    written), read in one statement so that the two agree."""
    q = (select(Delivery.status, func.count(), func.count(Delivery.handed_over_at))
         .where(Delivery.broadcast_id == broadcast_id).group_by(Delivery.status))
    counts, handed = {}, 0
    for status, n, with_provider in session.execute(q):
        counts[status] = n
        if status == "sending":
            handed = with_provider
    return counts, handed


def next_release(session: Session, broadcast_id: int) -> datetime | None:
    return session.scalar(select(func.min(Delivery.due_at))
                          .where(Delivery.broadcast_id == broadcast_id, Delivery.status == "held"))


# A provider's final verdicts on a message (Twilio's status callbacks).
FINAL_OK = frozenset({"delivered", "read"})
FINAL_FAILED = frozenset({"failed", "undelivered"})


def move_delivery(d: Delivery, status: str, error_code: str | None, now: datetime) -> str | None:
    """Apply a provider's final status to a delivery: delivered, or failed (a failure reported after a
    delivery stands; a late "sent" or a delivery after a failure changes nothing). The new status, or
    None when nothing changed."""
    new = None
    if status in FINAL_OK and d.status in ("sent", "sending", "unknown"):
        d.status = new = "delivered"
    elif status in FINAL_FAILED and d.status in ("sent", "sending", "unknown", "delivered"):
        d.status = new = "failed"
        d.error_code = error_code or d.error_code
    if new:
        d.updated_at = now
    return new


def keep_early_status(session: Session, provider_id: str, status: str, error_code: str | None,
                      now: datetime) -> None:
    """Keep a final status whose message has no delivery with its SID yet (see EarlyStatus). A second
    one for the same message replaces a kept delivery, never a kept failure (as move_delivery)."""
    stmt = _insert(session, EarlyStatus).values(provider_id=provider_id, status=status, error_code=error_code,
                                                received_at=now)
    session.execute(stmt.on_conflict_do_update(
        index_elements=["provider_id"],
        set_={"status": stmt.excluded.status, "error_code": stmt.excluded.error_code,
              "received_at": stmt.excluded.received_at},
        where=EarlyStatus.status.in_(sorted(FINAL_OK))))


def apply_early_statuses(session: Session, now: datetime, provider_id: str | None = None) -> int:
    """Apply and drop the kept early statuses (or the one of ``provider_id``) whose deliveries now
    carry their SID: the worker's, after writing the SIDs it sent and in its periodic sweep; a status
    callback's, after keeping one. One join on the SID index, however many are kept for messages no
    delivery will claim. How many deliveries moved."""
    q = (select(EarlyStatus, Delivery)
         .join(Delivery, and_(Delivery.provider_id == EarlyStatus.provider_id, Delivery.provider_id.is_not(None)))
         .with_for_update())
    if provider_id is not None:
        q = q.where(EarlyStatus.provider_id == provider_id)
    moved = 0
    for e, d in session.execute(q).all():
        moved += move_delivery(d, e.status, e.error_code, now) is not None
        session.delete(e)
    session.flush()
    return moved


def purge_early_statuses(session: Session, before: datetime) -> int:
    """Drop early statuses kept since before ``before`` that no delivery ever claimed."""
    return session.execute(delete(EarlyStatus).where(EarlyStatus.received_at < before)).rowcount


def delivery_by_provider_id(session: Session, provider_id: str) -> Delivery | None:
    # "IS NOT NULL" lets the planner use the partial index ix_deliveries_provider_id.
    return session.scalars(select(Delivery).where(Delivery.provider_id == provider_id,
                                                  Delivery.provider_id.is_not(None))
                           .with_for_update()).first()


# --- the shared rate limit -----------------------------------------------------------------------

def lock_throttle(session: Session, channel: str, create: bool = True) -> SendThrottle:
    """The channel's throttle row, locked until commit (every worker's claims for the channel queue here)."""
    if create:
        session.execute(_insert(session, SendThrottle).values(channel=channel, next_slot=0.0, paused_until=0.0)
                        .on_conflict_do_nothing(index_elements=["channel"]))
    return session.scalars(select(SendThrottle).where(SendThrottle.channel == channel).with_for_update()
                           .execution_options(populate_existing=True)).one()


class ThrottleState(Protocol):
    next_slot: float
    paused_until: float


def peek_throttle(session: Session, channel: str) -> ThrottleState | None:
    """The channel's throttle row as it stands, without locking it (None before the first claim)."""
    return session.execute(select(SendThrottle.next_slot, SendThrottle.paused_until)
                           .where(SendThrottle.channel == channel)).one_or_none()


def reserve_slots(throttle: SendThrottle, count: int, interval: float, at: float) -> float:
    """Take ``count`` consecutive send slots ``interval`` seconds apart; returns the first one.
    Every worker takes its slots from the same row, so the slots of all of them never bunch up."""
    start = max(throttle.next_slot, throttle.paused_until, at)
    throttle.next_slot = start + count * interval
    return start


def pause_channel(session: Session, channel: str, until: float) -> None:
    throttle = lock_throttle(session, channel)
    throttle.paused_until = max(throttle.paused_until, until)
    throttle.next_slot = max(throttle.next_slot, until)


def broadcast_by_token(session: Session, token: str) -> Broadcast | None:
    """The broadcast a staff confirmation (its one-time token) already sent, if any."""
    return session.scalars(select(Broadcast).where(Broadcast.send_token == token)).first()


def add_unless_sent(session: Session, broadcast: Broadcast) -> Broadcast | None:
    """Add ``broadcast`` (flushed: it has its id) and return None; or, when its ``send_token`` (the
    staff confirmation's) already made a broadcast, add nothing and return that one. Two confirmations
    adding the same token at the same moment: the unique token makes the second writer wait for the
    first, then fail; its transaction is rolled back and finds the first's row."""
    token = broadcast.send_token
    if token is not None and (sent := broadcast_by_token(session, token)) is not None:
        return sent
    session.add(broadcast)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        if token is None or (sent := broadcast_by_token(session, token)) is None:
            raise  # another constraint: a bug, not a repeat
        return sent
    return None


def claim_due_scheduled(session: Session, now: datetime) -> Broadcast | None:
    """A scheduled broadcast whose time has come and that no worker has queued, locked (other
    workers skip it); None when there is none."""
    stmt = (select(Broadcast).where(Broadcast.queued_at.is_(None), Broadcast.cancelled_at.is_(None),
                                    Broadcast.send_at <= now)
            .order_by(Broadcast.send_at, Broadcast.id).limit(1)
            .with_for_update(skip_locked=True).execution_options(populate_existing=True))
    return session.scalars(stmt).first()


def scheduled(session: Session) -> list[Broadcast]:
    """Broadcasts waiting for their time (not queued, not cancelled), soonest first."""
    return list(session.scalars(select(Broadcast).where(Broadcast.queued_at.is_(None), Broadcast.cancelled_at.is_(None))
                                .order_by(Broadcast.send_at, Broadcast.id)))


def recent_ids(session: Session, limit: int) -> list[int]:
    """The newest broadcasts' ids, newest first."""
    return list(session.scalars(select(Broadcast.id).order_by(Broadcast.id.desc()).limit(limit)))


def campaign_of(session: Session, broadcast_id: int) -> str | None:
    return session.scalar(select(Broadcast.campaign).where(Broadcast.id == broadcast_id))


def lock_broadcast(session: Session, broadcast_id: int) -> Broadcast | None:
    return session.scalars(select(Broadcast).where(Broadcast.id == broadcast_id).with_for_update()
                           .execution_options(populate_existing=True)).first()


def cancel_open(session: Session, broadcast_id: int, now: datetime) -> int:
    """Skip every delivery of the broadcast not yet handed to a provider as `cancelled`: pending, held,
    and claimed by a worker that has not handed it over yet (it waits for its rate slot). Rows a worker
    holds at this moment (PostgreSQL: a claim, or a hand-over, not yet committed) are waited for and
    read again: claimed, they are cancelled; handed over, they finish as they would. Returns how many
    were cancelled."""
    res = session.execute(update(Delivery)
                          .where(Delivery.broadcast_id == broadcast_id,
                                 Delivery.status.in_(("pending", "held", "sending")),
                                 (Delivery.status != "sending") | Delivery.handed_over_at.is_(None))
                          .values(status="skipped", error_code="cancelled", lease_until=None, updated_at=now)
                          .execution_options(synchronize_session=False))
    return res.rowcount or 0
