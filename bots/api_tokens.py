"""API tokens for /api/staff/: made on the server (`firma staff token`), shown once, stored as a
SHA-256 (a token is 256 random bits, so a slow password hash would buy nothing), acting with their
staff member's role. A disabled login's tokens stop working; `revoke-tokens` deletes them."""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from bots.staff_accounts import StaffError, StaffInfo, _info, normalize_email
from storage import staff_queries as q
from storage.models import ApiToken
from storage.uow import Database

PREFIX = "firma_"  # recognisable in a leaked file or a secret scanner
MAX_LABEL = 100
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often (reads stay reads)


@dataclass(frozen=True)
class TokenUser:
    staff: StaffInfo
    label: str

    @property
    def who(self) -> str:
        """How the audit log names a change made with this token."""
        return f"api:{self.label} ({self.staff.email})"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(db: Database, email: str, label: str | None, now: datetime) -> tuple[str, str]:
    """A new token for ``email``: (the token, shown once and never again; its label)."""
    email = normalize_email(email)
    # printed by the CLI and written to the audit log with every call: no escape sequence, bell or
    # direction override (Unicode categories Cc, Cf) survives, only the words
    label = "".join(ch for ch in (label or "") if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf"))
    label = " ".join(label.split())[:MAX_LABEL]
    with db.uow() as uow:
        user = q.staff_by_email(uow.session, email)
        if user is None:
            raise StaffError(f"{email} has no login (use `firma staff add`)")
        if not user.active:
            raise StaffError(f"{email} is disabled: enable it with `firma staff set-password` first")
        label = label or f"{email} {now:%Y-%m-%d %H:%M}"
        token = PREFIX + secrets.token_urlsafe(32)
        uow.session.add(ApiToken(staff_id=user.id, label=label, token_hash=_digest(token), created_at=now))
        uow.commit()
        return token, label


def revoke_tokens(db: Database, email: str) -> int:
    """Delete every token of ``email``; how many there were."""
    email = normalize_email(email)
    with db.uow() as uow:
        user = q.staff_by_email(uow.session, email)
        if user is None:
            raise StaffError(f"{email} has no login")
        n = q.delete_tokens(uow.session, user.id)
        uow.commit()
        return n


def token_user(db: Database, token: str | None, now: datetime) -> TokenUser | None:
    """The staff member (and the token's label) a bearer token acts for; None for a missing, unknown
    or revoked token, or a disabled login."""
    if not token or not token.startswith(PREFIX) or len(token) > 200:
        return None
    with db.uow() as uow:
        found = q.token_and_staff(uow.session, _digest(token))
        if found is None:
            return None
        tok, user = found
        if not user.active:
            return None
        result = TokenUser(_info(user), tok.label)
        if tok.last_used_at is None or now - tok.last_used_at >= TOUCH_EVERY:
            tok.last_used_at = now
            uow.commit()
        return result
