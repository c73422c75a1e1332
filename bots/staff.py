"""Staff console service functions (issue 5): logins, throttled sign-in, the audit log, campaign
statistics for the dashboard, and one member's history.

Each function opens its own unit of work; the web layer and the CLI only translate.
"""

from __future__ import annotations

import hmac
from collections import Counter
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bots.runtime import Runtime
from storage import repository as repo
from storage import staff_queries as q
from storage.models import StaffUser
from storage.uow import Database

# Sign-in throttling: failures in a sliding window, counted in the database (several processes).
THROTTLE_WINDOW = timedelta(minutes=15)
ACCOUNT_FAILURE_LIMIT = 5  # per account, reset by a successful sign-in
IP_FAILURE_LIMIT = 20  # per client address, across accounts
ATTEMPTS_KEPT = timedelta(days=1)

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")

# Audit actions.
SIGN_IN, SIGN_OUT, EXPORT, MEMBER_LOOKUP, MEMBER_VIEW, BROADCAST, BROADCAST_CANCEL = (
    "sign_in", "sign_out", "export", "member_lookup", "member_view", "broadcast", "broadcast_cancel")
DELIVERY = "delivery"  # the delivery package PDF: names go to the petition's target


class StaffError(ValueError):
    """A staff account request that cannot be done; the message says why, for a person."""


@dataclass(frozen=True)
class StaffInfo:
    id: int
    email: str
    session_token: str


@dataclass(frozen=True)
class SignInResult:
    staff: StaffInfo | None = None
    retry_after: int | None = None  # seconds, when throttled

    @property
    def throttled(self) -> bool:
        return self.retry_after is not None


# argon2id at OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about 0.09 s per sign-in on a
# 2-core machine. The library's default (64 MiB, 3 passes) took 0.7 s and 64 MiB per attempt there,
# which a burst of sign-in attempts would turn into a denial of service; throttling limits guessing.
ARGON2 = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher(**ARGON2)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Checked against when the email is unknown, so a wrong email costs as long as a wrong password."""
    return _hasher().hash(secrets.token_hex(16))


def normalize_email(email: str) -> str:
    email = (email or "").strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise StaffError(f"{email!r} is not an email address")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise StaffError(f"the password must have at most {MAX_PASSWORD} characters")
    if not password.strip():
        raise StaffError("the password cannot be only spaces")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# --- accounts ---------------------------------------------------------------------------------------


def add_staff(db: Database, email: str, password: str, now: datetime) -> StaffInfo:
    email = normalize_email(email)
    check_password(password)
    with db.uow() as uow:
        if q.staff_by_email(uow.session, email) is not None:
            raise StaffError(f"{email} already has a login (use `firma staff set-password` to change it)")
        user = StaffUser(email=email, password_hash=_hasher().hash(password), session_token=secrets.token_hex(32),
                         active=True, created_at=now)
        uow.session.add(user)
        uow.commit()
        return StaffInfo(user.id, user.email, user.session_token)


def set_password(db: Database, email: str, password: str) -> None:
    """New password; every session of that login ends, and the login is enabled again."""
    email = normalize_email(email)
    check_password(password)
    with db.uow() as uow:
        user = q.staff_by_email(uow.session, email)
        if user is None:
            raise StaffError(f"{email} has no login (use `firma staff add`)")
        user.password_hash = _hasher().hash(password)
        user.session_token = secrets.token_hex(32)
        user.active = True
        uow.commit()


def set_active(db: Database, email: str, active: bool) -> None:
    email = normalize_email(email)
    with db.uow() as uow:
        user = q.staff_by_email(uow.session, email)
        if user is None:
            raise StaffError(f"{email} has no login")
        user.active = active
        user.session_token = secrets.token_hex(32)  # a disabled login is signed out everywhere
        uow.commit()


def list_staff(db: Database) -> list[dict]:
    with db.reader() as uow:
        return [{"email": u.email, "active": u.active, "created_at": u.created_at,
                 "last_sign_in_at": u.last_sign_in_at} for u in q.all_staff(uow.session)]


# --- signing in and out -----------------------------------------------------------------------------


def _retry_after(failures: list[datetime], limit: int, now: datetime) -> int | None:
    if len(failures) < limit:
        return None
    frees_at = failures[-limit] + THROTTLE_WINDOW  # when the oldest counted failure leaves the window
    return max(1, int((frees_at - now).total_seconds()) + 1)


def sign_in(db: Database, email: str, password: str, ip: str, now: datetime) -> SignInResult:
    """Check a sign-in. Throttled requests are refused before the password is looked at."""
    key = (email or "").strip().lower()[:254]
    ip = (ip or "unknown")[:64]
    since = now - THROTTLE_WINDOW
    with db.uow() as uow:
        s = uow.session
        waits = [w for w in (_retry_after(q.failures_for_email(s, key, since), ACCOUNT_FAILURE_LIMIT, now),
                             _retry_after(q.failures_for_ip(s, ip, since), IP_FAILURE_LIMIT, now)) if w]
        if waits:
            return SignInResult(retry_after=max(waits))
        user = q.staff_by_email(s, key)
        ok = _verify(user.password_hash if user else _dummy_hash(), password or "")
        ok = ok and user is not None and user.active
        q.record_attempt(s, key, ip, ok, now)
        q.prune_attempts(s, now - ATTEMPTS_KEPT)
        info = None
        if ok:
            if _hasher().check_needs_rehash(user.password_hash):
                user.password_hash = _hasher().hash(password)
            user.last_sign_in_at = now
            q.add_audit(s, staff_email=user.email, action=SIGN_IN, target=None, detail=None, ip=ip, now=now)
            info = StaffInfo(user.id, user.email, user.session_token)
        uow.commit()
        return SignInResult(staff=info)


def current_staff(db: Database, staff_id, token) -> StaffInfo | None:
    """The signed-in staff member for a session's (id, token), or None when it no longer holds."""
    if not isinstance(staff_id, int) or not isinstance(token, str):
        return None
    with db.reader() as uow:
        user = q.staff_by_id(uow.session, staff_id)
        if user is None or not user.active or not hmac.compare_digest(user.session_token, token):
            return None
        return StaffInfo(user.id, user.email, user.session_token)


def sign_out(db: Database, staff: StaffInfo, ip: str | None, now: datetime) -> None:
    """Ends every session of this login (a copied cookie stops working too) and notes it."""
    with db.uow() as uow:
        user = q.staff_by_id(uow.session, staff.id)
        if user is not None:
            user.session_token = secrets.token_hex(32)
        q.add_audit(uow.session, staff_email=staff.email, action=SIGN_OUT, target=None, detail=None, ip=ip, now=now)
        uow.commit()


# --- audit log --------------------------------------------------------------------------------------


def audit(db: Database, staff: StaffInfo, action: str, target: str | None, detail: str | None, ip: str | None,
          now: datetime) -> None:
    with db.uow() as uow:
        q.add_audit(uow.session, staff_email=staff.email, action=action, target=target, detail=detail, ip=ip, now=now)
        uow.commit()


def audit_entries(db: Database, limit: int = 100, before_id: int | None = None) -> list:
    with db.reader() as uow:
        entries = q.audit_page(uow.session, limit, before_id)
        uow.session.expunge_all()
        return entries


# --- dashboard --------------------------------------------------------------------------------------

CHANNELS = ("sms", "telegram")
DAYS_SHOWN = 30


def start_of_day(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(timezone.utc).date(), time(0), tzinfo=timezone.utc)


@dataclass
class CampaignStats:
    slug: str
    title: str
    goal: int
    active: bool
    total: int = 0
    today: int = 0
    by_channel: list[tuple[str, int]] = field(default_factory=list)
    by_language: list[tuple[str, int]] = field(default_factory=list)
    by_state: list[tuple[str, int]] = field(default_factory=list)
    by_day: list[tuple[date, int]] = field(default_factory=list)  # the last DAYS_SHOWN days, oldest first


def overview(rt: Runtime, now: datetime) -> list[CampaignStats]:
    """Every campaign's total (the maintained counter) and today's count (an indexed range count)."""
    today = start_of_day(now)
    with rt.db.reader() as uow:
        counts = repo.signature_counts(uow.session)
        out = []
        for c in rt.catalog.campaigns.values():
            total = counts.get(c.slug, 0)
            out.append(CampaignStats(c.slug, c.text("en").title, c.goal, c.active, total=total,
                                     today=q.count_since(uow.session, c.slug, today) if total else 0))
    return out


def _ranked(counter: Counter) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


def campaign_stats(rt: Runtime, slug: str, now: datetime, days: int = DAYS_SHOWN) -> CampaignStats | None:
    campaign = rt.catalog.campaigns.get(slug)
    if campaign is None:
        return None
    today = start_of_day(now)
    first = today - timedelta(days=days - 1)
    with rt.db.reader() as uow:
        s = uow.session
        groups = q.breakdown(s, slug)
        day_starts = [first + timedelta(days=i) for i in range(days)]
        per_day = q.counts_per_day(s, slug, day_starts, today + timedelta(days=1))
        today_count = q.count_since(s, slug, today)
    by_channel: Counter[str] = Counter()
    by_language: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    for channel, language, state, n in groups:
        by_channel[channel] += n
        by_language[language] += n
        by_state[state] += n
    channels = [(ch, by_channel.pop(ch, 0)) for ch in CHANNELS] + sorted(by_channel.items())
    channels.sort(key=lambda kv: -kv[1])
    return CampaignStats(
        slug, campaign.text("en").title, campaign.goal, campaign.active,
        total=sum(n for _, n in channels), today=today_count, by_channel=channels,
        by_language=_ranked(by_language), by_state=_ranked(by_state),
        by_day=[(d.date(), n) for d, n in zip(day_starts, per_day)],
    )


# --- member lookup ----------------------------------------------------------------------------------

_PHONE_PUNCT = re.compile(r"[\s().\-]")


def address_candidates(query: str) -> list[tuple[str, str]]:
    """Where a typed phone number or Telegram id may be stored: [(channel, address), ...].

    "(312) 555-0101", "312-555-0101", "13125550101" and "+13125550101" all mean +13125550101 (a
    10-digit number is taken as US/Canada); a run of digits may also be a Telegram user id.
    """
    raw = (query or "").strip()
    if not raw or len(raw) > 64:
        return []
    if raw.startswith("sim:"):  # a simulator conversation, as the simulator stores it
        return [("sms", raw), ("telegram", raw)]
    compact = _PHONE_PUNCT.sub("", raw)
    out: list[tuple[str, str]] = []
    if re.fullmatch(r"\+[1-9][0-9]{6,14}", compact):
        out.append(("sms", compact))
    elif re.fullmatch(r"[0-9]{1,20}", compact):
        if len(compact) == 10:
            out.append(("sms", "+1" + compact))
        elif 7 <= len(compact) <= 15 and compact[0] != "0":
            out.append(("sms", "+" + compact))
        if raw.isdigit():
            out.append(("telegram", compact))
    return out


@dataclass
class MemberHistory:
    member: object
    consent: list
    signatures: list
    deliveries: list["DeliveryLine"]  # broadcast messages made for them, newest first
    explanation: list[str]


@dataclass(frozen=True)
class DeliveryLine:
    """One broadcast message made for a member, and what became of it."""

    broadcast_id: int
    campaign: str
    channel: str
    status: str  # pending | held | sending | sent | delivered | failed | skipped | unknown
    when: datetime | None  # sent, or last changed, or (not sent yet) due
    error_code: str | None
    text: str  # what they read (or will read)
    created_by: str


def find_members(rt: Runtime, query: str) -> list:
    candidates = address_candidates(query)
    if not candidates:
        return []
    with rt.db.reader() as uow:
        found = q.members_at(uow.session, candidates)
        uow.session.expunge_all()  # keep the loaded values after the session closes
        return found


def _when(t: datetime | None) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if t else "never"


def explain(member, consent: list, signatures: list, catalog) -> list[str]:
    """Plain sentences answering "why am I getting these texts?" and "did my signature count?"."""
    lines: list[str] = []
    if member.simulated:
        lines.append("This is a simulator conversation: it is never counted, exported or sent broadcasts.")
    opt_ins = [e for e in consent if e.kind == "opt_in"]
    if opt_ins:
        first = opt_ins[0]
        lines.append(f"First opted in on {_when(first.created_at)} by sending “{first.cause}”"
                     + (f" (campaign {first.campaign})." if first.campaign else "."))
    else:
        lines.append(f"First wrote on {_when(member.created_at)}; no opt-in is recorded.")
    if member.opted_out_at is not None:
        outs = [e for e in consent if e.kind == "opt_out"]
        cause = f" (“{outs[-1].cause}”)" if outs else ""
        lines.append(f"Opted out on {_when(member.opted_out_at)}{cause}: firma sends them nothing more, on any "
                     f"campaign, unless they opt in again (START).")
    elif member.unreachable_at is not None:
        lines.append(f"Unreachable since {_when(member.unreachable_at)} (for example the Telegram bot was blocked): "
                     "no broadcasts until they write again.")
    else:
        lines.append("Subscribed: broadcasts to the signers of the campaigns below reach them. Texting STOP "
                     "(or /stop on Telegram) ends all messages.")
    for sig in signatures:
        title = catalog.campaigns[sig.campaign].text("en").title if sig.campaign in catalog.campaigns else sig.campaign
        counted = "not counted (simulated)" if sig.simulated else "counted"
        lines.append(f"Signed “{title}” on {_when(sig.signed_at)} as {sig.name}, {sig.city}, {sig.state}: {counted}.")
    if not signatures:
        lines.append("No signature is recorded for this member.")
    return lines


def member_history(rt: Runtime, member_id: int) -> MemberHistory | None:
    with rt.db.reader() as uow:
        member = q.member(uow.session, member_id)
        if member is None:
            return None
        consent = q.member_consent(uow.session, member_id)
        signatures = q.member_signatures(uow.session, member_id)
        deliveries = [_delivery_line(rt, d, b) for d, b in q.member_deliveries(uow.session, member_id)]
        uow.session.expunge_all()
    lines = explain(member, consent, signatures, rt.catalog)
    if deliveries:
        lines.append(f"{len(deliveries)} broadcast message{'s' if len(deliveries) != 1 else ''} made for them "
                     f"(the latest from broadcast #{deliveries[0].broadcast_id}, to signers of "
                     f"{deliveries[0].campaign}): see “Broadcast messages sent” below.")
    return MemberHistory(member, consent, signatures, deliveries, lines)


def _delivery_line(rt: Runtime, d, b) -> DeliveryLine:
    from bots import broadcast_plan as plan
    from bots.broadcasts import stop_notice, template_for

    template, text_lang = template_for(b, d.language)
    if d.channel == "sms":
        notice = stop_notice(rt.catalog, b.campaign, text_lang) if b.campaign in rt.catalog.campaigns else None
        text = plan.render_sms(template, d.name, notice)
    else:
        text = plan.render_telegram(template, d.name)
    return DeliveryLine(b.id, b.campaign, d.channel, d.status, d.sent_at or d.updated_at or d.due_at,
                        d.error_code, text, b.created_by)


# --- broadcasts -------------------------------------------------------------------------------------


def last_worker_send(rt: Runtime) -> datetime | None:
    """When a broadcast worker last sent (its latest reserved send slot), or None if none ever did.
    Workers keep no heartbeat, so an idle worker leaves no trace: this says when one last worked."""
    with rt.db.reader() as uow:
        slot = q.last_send_slot(uow.session)
    return datetime.fromtimestamp(slot, timezone.utc) if slot else None


DUPLICATE_WINDOW = timedelta(minutes=10)


def recent_duplicate(rt: Runtime, req, now: datetime) -> tuple[int, datetime] | None:
    """(id, created_at) of a broadcast with the same texts and filters that the same sender made in
    the last DUPLICATE_WINDOW (a double submit or a resubmitted form), else None. ``req`` is a
    validated bots.broadcasts.BroadcastRequest."""
    with rt.db.reader() as uow:
        b = q.recent_same_broadcast(uow.session, created_by=req.created_by, campaign=req.campaign,
                                    message_en=req.message_en, message_es=req.message_es, channel=req.channel,
                                    state=req.state, zip_prefix=req.zip_prefix, signed_since=req.signed_since,
                                    since=now - DUPLICATE_WINDOW)
        return (b.id, b.created_at) if b is not None else None
