"""Staff logins: accounts, roles, passwords (argon2id), signing in with throttling, signing out.

Each function opens its own unit of work; the web layer and the CLI only translate.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bots.audit import SIGN_IN, SIGN_OUT
from storage import staff_queries as q
from storage.models import StaffUser
from storage.uow import Database

# Sign-in throttling: failures in a sliding window, counted in the database (several processes).
THROTTLE_WINDOW = timedelta(minutes=15)
# Failures count per account AND address: an attacker elsewhere cannot lock the owner out. Once an
# account has this many failures from addresses it never signed in from, such addresses may try only
# once per UNKNOWN_ADDRESS_SPACING between them (slowed, not locked: the owner on a new network waits
# a minute at most); the addresses it signed in from before are not slowed.
ACCOUNT_FAILURE_LIMIT = 5  # per account and address, reset by a successful sign-in from there
UNKNOWN_ADDRESS_SPACING = timedelta(minutes=1)
IP_FAILURE_LIMIT = 20  # per client address, across accounts
ATTEMPTS_KEPT = timedelta(days=1)

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")  # no control characters


# Roles, each allowed what the one after it is and more: admins manage staff and campaigns and see
# contact data (phone numbers, Telegram ids); organizers send broadcasts, answer the inbox, export and
# deliver without contact data; viewers see dashboards and counts.
ADMIN, ORGANIZER, VIEWER = "admin", "organizer", "viewer"
ROLES = (ADMIN, ORGANIZER, VIEWER)
_RANK = {VIEWER: 0, ORGANIZER: 1, ADMIN: 2}


def allows(role: str, needed: str) -> bool:
    """Whether a staff member with ``role`` may do what needs ``needed``."""
    return _RANK.get(role, -1) >= _RANK[needed]


class StaffError(ValueError):
    """A staff account request that cannot be done; the message says why, for a person."""


@dataclass(frozen=True)
class StaffInfo:
    id: int
    email: str
    session_token: str
    role: str = VIEWER

    def can(self, needed: str) -> bool:
        return allows(self.role, needed)

    @property
    def sees_contacts(self) -> bool:
        """Phone numbers and Telegram ids are for admins only: pages, exports, the API."""
        return self.can(ADMIN)


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


def check_role(role: str) -> str:
    role = (role or "").strip().lower()
    if role not in ROLES:
        raise StaffError(f"{role!r} is not a role: use {', '.join(ROLES)}")
    return role


def _info(user: StaffUser) -> StaffInfo:
    return StaffInfo(user.id, user.email, user.session_token, user.role)


def add_staff(db: Database, email: str, password: str, now: datetime, role: str | None = None) -> StaffInfo:
    """A new login; without a role, the first login is an admin and later ones are organizers."""
    email = normalize_email(email)
    role = check_role(role) if role is not None else None
    check_password(password)
    with db.uow() as uow:
        if q.staff_by_email(uow.session, email) is not None:
            raise StaffError(f"{email} already has a login (use `firma staff set-password` to change it)")
        if role is None:
            role = ORGANIZER if q.staff_exists(uow.session) else ADMIN
        user = StaffUser(email=email, password_hash=_hasher().hash(password), session_token=secrets.token_hex(32),
                         active=True, created_at=now, role=role)
        uow.session.add(user)
        uow.commit()
        return _info(user)


def set_role(db: Database, email: str, role: str) -> tuple[str, str]:
    """Give a login another role; (old, new). The last active admin cannot stop being one (nobody
    would be left to manage staff from the console)."""
    email = normalize_email(email)
    role = check_role(role)
    with db.uow() as uow:
        user = q.staff_by_email(uow.session, email, lock=True)
        if user is None:
            raise StaffError(f"{email} has no login")
        old = user.role
        if old == ADMIN and role != ADMIN and user.active and q.active_admins(uow.session) <= 1:
            raise StaffError(f"{email} is the only active admin: make another login an admin first")
        user.role = role
        uow.commit()
        return old, role


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
        tokens = q.token_use(uow.session)
        return [{"email": u.email, "role": u.role, "active": u.active, "created_at": u.created_at,
                 "last_sign_in_at": u.last_sign_in_at, "tokens": tokens.get(u.id, (0, None))[0],
                 "token_last_used_at": tokens.get(u.id, (0, None))[1]} for u in q.all_staff(uow.session)]


# --- signing in and out ------------------------------------------------------------------------------


def _retry_after(failures: list[datetime], limit: int, now: datetime) -> int | None:
    if len(failures) < limit:
        return None
    frees_at = failures[-limit] + THROTTLE_WINDOW  # when the oldest counted failure leaves the window
    return max(1, int((frees_at - now).total_seconds()) + 1)


def sign_in(db: Database, email: str, password: str, ip: str, now: datetime) -> SignInResult:
    """Check a sign-in. Throttled requests are refused before the password is looked at.

    The attempt is recorded as a failure before the password is checked (and marked a success after),
    in the same transaction as the count, serialised per account and address: however many guesses
    arrive at once, no more than the limit are checked."""
    key = (email or "").strip().lower()[:254]
    ip = (ip or "unknown")[:64]
    since = now - THROTTLE_WINDOW
    with db.uow() as uow:
        s = uow.session
        q.lock_sign_in(s, key, ip)
        waits = [w for w in (_retry_after(q.failures_for_pair(s, key, ip, since), ACCOUNT_FAILURE_LIMIT, now),
                             _retry_after(q.failures_for_ip(s, ip, since), IP_FAILURE_LIMIT, now)) if w]
        if not q.is_known_address(s, key, ip):
            strangers = q.failures_from_unknown_addresses(s, key, since)
            if len(strangers) >= ACCOUNT_FAILURE_LIMIT:
                wait = (strangers[-1] + UNKNOWN_ADDRESS_SPACING - now).total_seconds()
                if wait > 0:
                    waits.append(int(wait) + (wait % 1 > 0))
        if waits:
            return SignInResult(retry_after=max(waits))
        attempt = q.record_attempt(s, key, ip, False, now)
        q.prune_attempts(s, now - ATTEMPTS_KEPT)
        user = q.staff_by_email(s, key)
        user_id, password_hash, active = (user.id, user.password_hash, user.active) if user else (None, None, False)
        uow.commit()
    ok = _verify(password_hash or _dummy_hash(), password or "") and active
    if not ok:
        return SignInResult()
    with db.uow() as uow:
        s = uow.session
        user = q.staff_by_id(s, user_id)
        if user is None or not user.active:
            return SignInResult()
        q.attempt_succeeded(s, attempt)
        if _hasher().check_needs_rehash(user.password_hash):
            user.password_hash = _hasher().hash(password)
        user.last_sign_in_at = now
        q.add_audit(s, staff_email=user.email, action=SIGN_IN, target=None, detail=None, ip=ip, now=now)
        info = _info(user)
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
        return _info(user)


def sign_out(db: Database, staff: StaffInfo, ip: str | None, now: datetime) -> None:
    """Ends every session of this login (a copied cookie stops working too) and notes it."""
    with db.uow() as uow:
        user = q.staff_by_id(uow.session, staff.id)
        if user is not None:
            user.session_token = secrets.token_hex(32)
        q.add_audit(uow.session, staff_email=staff.email, action=SIGN_OUT, target=None, detail=None, ip=ip, now=now)
        uow.commit()
