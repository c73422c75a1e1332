"""Queries for the staff console: logins, sign-in attempts, the audit log, dashboard
aggregates and member lookup. Plain functions of a Session owned by the caller.

The dashboard reads aggregates only (COUNT ... GROUP BY on indexed columns); it never loads rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, false, func, select, text, update
from sqlalchemy.orm import Session

from storage.models import (ApiToken, AuditLog, Broadcast, ConsentEvent, Delivery, Member, SendThrottle, SignInAttempt,
                            Signature, StaffUser)

# --- logins -----------------------------------------------------------------------------------------


def staff_by_email(session: Session, email: str, lock: bool = False) -> StaffUser | None:
    stmt = select(StaffUser).where(StaffUser.email == email)
    return session.scalars(stmt.with_for_update() if lock else stmt).first()


def staff_exists(session: Session) -> bool:
    return session.scalar(select(StaffUser.id).limit(1)) is not None


def token_and_staff(session: Session, token_hash: str) -> tuple[ApiToken, StaffUser] | None:
    row = session.execute(select(ApiToken, StaffUser).join(StaffUser, StaffUser.id == ApiToken.staff_id)
                          .where(ApiToken.token_hash == token_hash)).first()
    return (row[0], row[1]) if row else None


def delete_tokens(session: Session, staff_id: int) -> int:
    return session.execute(delete(ApiToken).where(ApiToken.staff_id == staff_id)).rowcount or 0


def token_use(session: Session) -> dict[int, tuple[int, datetime | None]]:
    """staff id -> (tokens, the latest time one was used)."""
    rows = session.execute(select(ApiToken.staff_id, func.count(), func.max(ApiToken.last_used_at))
                           .group_by(ApiToken.staff_id))
    return {staff_id: (n, last) for staff_id, n, last in rows}


def active_admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(StaffUser)
                          .where(StaffUser.role == "admin", StaffUser.active.is_(True))) or 0


def staff_by_id(session: Session, staff_id: int) -> StaffUser | None:
    return session.get(StaffUser, staff_id)


def all_staff(session: Session) -> list[StaffUser]:
    return list(session.scalars(select(StaffUser).order_by(StaffUser.email)))


# --- sign-in attempts --------------------------------------------------------------------------------


def lock_sign_in(session: Session, email: str, ip: str) -> None:
    """Serialise sign-in checks of this account and of this address until the transaction ends, so
    that counting failures and recording the new attempt are one step for concurrent requests
    (PostgreSQL: advisory locks, taken in one order; SQLite: the write transaction already is)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted({f"sign-in email:{email}", f"sign-in ip:{ip}"}):
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def record_attempt(session: Session, email: str, ip: str, succeeded: bool, now: datetime) -> int:
    attempt = SignInAttempt(email=email, ip=ip, succeeded=succeeded, at=now)
    session.add(attempt)
    session.flush()
    return attempt.id


def attempt_succeeded(session: Session, attempt_id: int) -> None:
    session.execute(update(SignInAttempt).where(SignInAttempt.id == attempt_id).values(succeeded=True))


def _known_ips(email: str):
    """Addresses this account has signed in from (the audit log keeps them)."""
    return select(AuditLog.ip).where(AuditLog.staff_email == email, AuditLog.action == "sign_in",
                                     AuditLog.ip.is_not(None))


def is_known_address(session: Session, email: str, ip: str) -> bool:
    return session.scalar(select(func.count()).select_from(_known_ips(email).where(AuditLog.ip == ip).subquery())) > 0


def _failures(session: Session, since: datetime, *where) -> list[datetime]:
    """Failed attempts matching ``where`` since ``since`` and after the last success among them."""
    last_ok = session.scalar(select(func.max(SignInAttempt.id))
                             .where(*where, SignInAttempt.succeeded.is_(True), SignInAttempt.at >= since))
    conditions = [*where, SignInAttempt.succeeded.is_(False), SignInAttempt.at >= since]
    if last_ok is not None:
        conditions.append(SignInAttempt.id > last_ok)
    return list(session.scalars(select(SignInAttempt.at).where(*conditions).order_by(SignInAttempt.id)))


def failures_for_pair(session: Session, email: str, ip: str, since: datetime) -> list[datetime]:
    """Failed attempts at this account from this address (since its last success from there)."""
    return _failures(session, since, SignInAttempt.email == email, SignInAttempt.ip == ip)


def failures_from_unknown_addresses(session: Session, email: str, since: datetime) -> list[datetime]:
    """Failed attempts at this account from addresses it never signed in from (since its last success)."""
    return _failures(session, since, SignInAttempt.email == email, SignInAttempt.ip.not_in(_known_ips(email)))


def failures_for_email(session: Session, email: str, since: datetime) -> list[datetime]:
    """Failed attempts at this account since ``since`` and after its last successful sign-in."""
    return _failures(session, since, SignInAttempt.email == email)


def failures_for_ip(session: Session, ip: str, since: datetime) -> list[datetime]:
    return list(session.scalars(select(SignInAttempt.at)
                                .where(SignInAttempt.ip == ip, SignInAttempt.succeeded.is_(False),
                                       SignInAttempt.at >= since)
                                .order_by(SignInAttempt.id)))


def prune_attempts(session: Session, before: datetime) -> None:
    session.execute(delete(SignInAttempt).where(SignInAttempt.at < before))


# --- audit log ---------------------------------------------------------------------------------------


def add_audit(session: Session, *, staff_email: str, action: str, target: str | None, detail: str | None,
              ip: str | None, now: datetime) -> None:
    session.add(AuditLog(staff_email=staff_email, action=action, target=(target or None) and target[:200],
                         detail=detail, ip=ip, at=now))


def audit_page(session: Session, limit: int, before_id: int | None = None) -> list[AuditLog]:
    stmt = select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(AuditLog.id < before_id)
    return list(session.scalars(stmt))


# --- dashboard aggregates ----------------------------------------------------------------------------


def _real(campaign: str):
    # "= false", not "IS false": PostgreSQL can use an index for the former only
    return (Signature.campaign == campaign, Signature.simulated == false())


def breakdown(session: Session, campaign: str) -> list[tuple[str, str, str, int]]:
    """(channel, language, state, signatures): one grouped scan of ix_signatures_dashboard_groups, in
    index order, gives every breakdown the dashboard shows (a few hundred groups at most)."""
    group = (Signature.channel, Signature.language, Signature.state)
    stmt = select(*group, func.count()).where(*_real(campaign)).group_by(*group).order_by(*group)
    return [(channel, language, state, n) for channel, language, state, n in session.execute(stmt)]


def count_since(session: Session, campaign: str, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Signature)
                          .where(*_real(campaign), Signature.signed_at >= since)) or 0


def counts_per_day(session: Session, campaign: str, day_starts: list[datetime], end: datetime) -> list[int]:
    """Signatures in [day_starts[i], day_starts[i+1]) (the last day ends at ``end``): one statement of
    range counts on ix_signatures_dashboard_days, which need no sorting (unlike GROUP BY day)."""
    if not day_starts:
        return []
    bounds = list(day_starts) + [end]
    counts = [select(func.count()).select_from(Signature)
              .where(*_real(campaign), Signature.signed_at >= lo, Signature.signed_at < hi)
              .scalar_subquery().label(f"d{i}")
              for i, (lo, hi) in enumerate(zip(bounds, bounds[1:]))]
    return [int(n or 0) for n in session.execute(select(*counts)).one()]


# --- member lookup -----------------------------------------------------------------------------------


def members_at(session: Session, addresses: list[tuple[str, str]]) -> list[Member]:
    """Members at any of the (channel, address) pairs, oldest first."""
    found: list[Member] = []
    for channel, address in addresses:  # a handful of candidates: one indexed lookup each
        found.extend(session.scalars(select(Member).where(Member.channel == channel, Member.address == address)))
    return sorted({m.id: m for m in found}.values(), key=lambda m: m.id)


def member(session: Session, member_id: int) -> Member | None:
    return session.get(Member, member_id)


def member_signatures(session: Session, member_id: int) -> list[Signature]:
    return list(session.scalars(select(Signature).where(Signature.member_id == member_id)
                                .order_by(Signature.signed_at, Signature.id)))


def member_consent(session: Session, member_id: int) -> list[ConsentEvent]:
    return list(session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member_id)
                                .order_by(ConsentEvent.created_at, ConsentEvent.id)))


# --- broadcasts -------------------------------------------------------------------------------------


def member_deliveries(session: Session, member_id: int, limit: int = 200) -> list[tuple[Delivery, Broadcast]]:
    """The broadcast messages made for one member, newest first, with their broadcast.

    Looked up as (broadcast_id IN (...), member_id), so the unique index on (broadcast_id, member_id)
    answers it with one probe per broadcast; deliveries has no index on member_id alone (it would
    slow every million-row broadcast insert), and broadcasts are few."""
    ids = list(session.scalars(select(Broadcast.id)))
    if not ids:
        return []
    q = (select(Delivery, Broadcast).join(Broadcast, Broadcast.id == Delivery.broadcast_id)
         .where(Delivery.broadcast_id.in_(ids), Delivery.member_id == member_id)
         .order_by(Delivery.broadcast_id.desc()).limit(limit))
    return [(d, b) for d, b in session.execute(q)]


def last_send_slot(session: Session) -> float | None:
    """The latest send slot any worker reserved (epoch seconds, any channel), or None if none ever did."""
    value = session.scalar(select(func.max(SendThrottle.next_slot)))
    return value if value else None


def recent_same_broadcast(session: Session, *, created_by: str, campaign: str, message_en: str,
                          message_es: str | None, channel: str, state: str | None, zip_prefix: str | None,
                          signed_since: datetime | None, since: datetime) -> Broadcast | None:
    """The newest broadcast with these texts and filters that this sender made since ``since``."""
    def same(column, value):
        return column.is_(None) if value is None else column == value

    q = (select(Broadcast).where(Broadcast.created_by == created_by, Broadcast.campaign == campaign,
                                 Broadcast.message_en == message_en, same(Broadcast.message_es, message_es),
                                 Broadcast.channel == channel, same(Broadcast.state, state),
                                 same(Broadcast.zip_prefix, zip_prefix), same(Broadcast.signed_since, signed_since),
                                 Broadcast.created_at >= since)
         .order_by(Broadcast.id.desc()).limit(1))
    return session.scalars(q).first()
