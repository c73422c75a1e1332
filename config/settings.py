"""Settings read from the environment when asked, never at import time."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import Mapping

CONFIG_DIR = Path(__file__).resolve().parent
SHIPPED_CAMPAIGNS = CONFIG_DIR / "campaigns.toml"
TEXTS_DIR = CONFIG_DIR / "texts"
SHIPPED_OPT_OUTS = CONFIG_DIR / "opt_outs.toml"


class SettingsError(ValueError):
    """A setting has a value firma cannot use; the message names the variable."""


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def contains(self, t: time) -> bool:
        """True when local time ``t`` falls inside the quiet window (which may wrap midnight)."""
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end


def parse_quiet_hours(value: str) -> QuietHours | None:
    value = value.strip()
    if value.lower() in ("off", "none", ""):
        return None
    m = re.fullmatch(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", value)
    if not m:
        raise SettingsError(f"FIRMA_QUIET_HOURS must look like 20:00-09:00 or 'off', not {value!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if not (0 <= h1 < 24 and 0 <= h2 < 24 and 0 <= m1 < 60 and 0 <= m2 < 60):
        raise SettingsError(f"FIRMA_QUIET_HOURS has an impossible time: {value!r}")
    if (h1, m1) == (h2, m2):
        raise SettingsError("FIRMA_QUIET_HOURS start and end are the same; use 'off' to disable")
    return QuietHours(time(h1, m1), time(h2, m2))


def _rate(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of messages per second, not {raw!r}") from None
    if not value > 0:
        raise SettingsError(f"{name} must be greater than zero")
    return value


def _proxies(raw: str) -> int:
    raw = raw.strip()
    if not raw:
        return 0
    if not raw.isdigit() or int(raw) > 10:
        raise SettingsError(f"FIRMA_TRUSTED_PROXIES must be the number of reverse proxies in front (0 to 10), "
                            f"not {raw!r}")
    return int(raw)


def _phone(raw: str) -> str | None:
    """``raw`` as E.164 when phonenumbers reads it as a possible number (US spellings without a country
    code are read as US numbers), else None."""
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _sms_number(raw: str | None) -> str | None:
    """A short code (56565) or a phone number, kept as the organization prints it (+1 312-555-0100)."""
    if raw is None:
        return None
    if not (re.fullmatch(r"[0-9]{5,6}", raw) or _phone(raw)):  # US short codes are 5 or 6 digits
        raise SettingsError(f"FIRMA_SMS_NUMBER must be a short code or a phone number, like 56565 or "
                            f"+1 312 555 0100, not {raw!r}")
    return raw


def _from_number(raw: str | None) -> str | None:
    if raw is None:
        return None
    number = _phone(raw)
    if number is None:
        raise SettingsError(f"TWILIO_FROM_NUMBER must be a phone number, like +13125550100, not {raw!r}")
    return number


def _whatsapp_from(raw: str | None) -> str | None:
    if raw is None:
        return None
    number = raw.removeprefix("whatsapp:")
    if not raw.startswith("whatsapp:+") or _phone(number) != number:
        raise SettingsError(f"TWILIO_WHATSAPP_FROM must look like whatsapp:+13125550100, not {raw!r}")
    return raw


def _public_url(raw: str | None) -> str | None:
    """The base URL the providers call: Twilio signs the full URL, scheme included, so a value without
    one can never match a signature."""
    from urllib.parse import urlsplit

    if raw is None:
        return None
    url = raw.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(f"FIRMA_PUBLIC_URL must be the URL the providers call, with its scheme, like "
                            f"https://sms.example.org, not {raw!r}")
    return url


def _bot_username(raw: str | None) -> str | None:
    if raw is None:
        return None
    name = raw.removeprefix("@")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{3,31}", name):
        raise SettingsError(f"TELEGRAM_BOT_USERNAME must be the bot's username, like FirmaBot, not {raw!r}")
    return name


def _timezone(raw: str | None) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if raw is None:
        return "America/New_York"
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"FIRMA_TIMEZONE must be a time zone name like America/Chicago, not {raw!r}") from None
    return raw


POOLERS = ("none", "session", "transaction", "transaction-prepared")


def database_pooler(env: Mapping[str, str] | None = None) -> str:
    """FIRMA_DATABASE_POOLER: what stands between firma and PostgreSQL (docs/deployment.md).
    ``none``: PostgreSQL itself. ``transaction``: a pooler in transaction mode (PgBouncer's
    ``pool_mode = transaction``, Supabase's port 6543, Heroku's and DigitalOcean's pools), which may
    run each transaction on another server connection: firma keeps nothing on a server connection
    between transactions, server-side prepared statements included. ``transaction-prepared``: the
    same, for a pooler that keeps prepared statements across its server connections (PgBouncer 1.21
    or later with ``max_prepared_statements``): prepares stay. ``session``: a pooler in session mode;
    prepares stay, settings are made per transaction."""
    env = os.environ if env is None else env
    raw = env.get("FIRMA_DATABASE_POOLER", "").strip().lower() or "none"
    if raw not in POOLERS:
        hint = " (PgBouncer's statement mode breaks transactions: use transaction mode)" if raw == "statement" else ""
        raise SettingsError(f"FIRMA_DATABASE_POOLER must be one of {', '.join(POOLERS)}, not {raw!r}{hint}")
    return raw


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///firma.db"
    campaigns_path: Path = SHIPPED_CAMPAIGNS
    public_url: str | None = None
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    secret_key_generated: bool = True
    quiet_hours: QuietHours | None = QuietHours(time(20, 0), time(9, 0))
    sms_rate: float = 1.0
    telegram_rate: float = 30.0
    whatsapp_rate: float = 10.0
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    twilio_messaging_service_sid: str | None = None
    twilio_from_number: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    telegram_bot_token: str | None = field(default=None, repr=False)
    telegram_webhook_secret: str | None = field(default=None, repr=False)
    telegram_api_url: str = "https://api.telegram.org"
    trusted_proxies: int = 0  # reverse proxies in front that set X-Forwarded-For / -Proto
    sms_number: str | None = None  # the number or short code members text, as printed (flyer, public page)
    twilio_whatsapp_from: str | None = None  # whatsapp:+1...; WhatsApp is configured when set
    telegram_bot_username: str | None = None  # for t.me deep links; else asked of getMe
    timezone: str = "America/New_York"  # the organization's time zone (dates in deliveries)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env

        def opt(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        secret = opt("FIRMA_SECRET_KEY")
        database_pooler(env)  # a value firma cannot use stops the command here; engines read it (storage.db)
        return cls(
            database_url=opt("FIRMA_DATABASE_URL") or "sqlite:///firma.db",
            campaigns_path=Path(opt("FIRMA_CAMPAIGNS") or SHIPPED_CAMPAIGNS),
            public_url=_public_url(opt("FIRMA_PUBLIC_URL")),
            secret_key=secret or secrets.token_hex(32),
            secret_key_generated=secret is None,
            quiet_hours=parse_quiet_hours(env.get("FIRMA_QUIET_HOURS", "20:00-09:00")),
            sms_rate=_rate(env, "FIRMA_SMS_RATE", 1.0),
            telegram_rate=_rate(env, "FIRMA_TELEGRAM_RATE", 30.0),
            whatsapp_rate=_rate(env, "FIRMA_WHATSAPP_RATE", 10.0),
            twilio_account_sid=opt("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=opt("TWILIO_AUTH_TOKEN"),
            twilio_messaging_service_sid=opt("TWILIO_MESSAGING_SERVICE_SID"),
            twilio_from_number=_from_number(opt("TWILIO_FROM_NUMBER")),
            twilio_api_url=(opt("TWILIO_API_URL") or "https://api.twilio.com").rstrip("/"),
            telegram_bot_token=opt("TELEGRAM_BOT_TOKEN"),
            telegram_webhook_secret=opt("TELEGRAM_WEBHOOK_SECRET"),
            telegram_api_url=(opt("TELEGRAM_API_URL") or "https://api.telegram.org").rstrip("/"),
            trusted_proxies=_proxies(env.get("FIRMA_TRUSTED_PROXIES", "")),
            sms_number=_sms_number(opt("FIRMA_SMS_NUMBER")),
            twilio_whatsapp_from=_whatsapp_from(opt("TWILIO_WHATSAPP_FROM")),
            telegram_bot_username=_bot_username(opt("TELEGRAM_BOT_USERNAME")),
            timezone=_timezone(opt("FIRMA_TIMEZONE")),
        )

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)
