"""Broadcast planning that needs no database and no network: texts, quiet hours, retry policy.

Everything here is a plain function of its arguments, so the worker, the CLI and the staff console
agree on what a recipient reads and when they may read it.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.settings import QuietHours

PLACEHOLDERS = ("name", "first_name")
SAMPLE_NAME = "Guadalupe Hernandez"  # a typical full name, for the segment estimate before sending
# A number whose ZIP and area code give no time zone is held unless BOTH coasts are awake.
FALLBACK_ZONES = ("America/New_York", "America/Los_Angeles")
MAX_ATTEMPTS = 5  # provider calls per delivery for 5xx / connection errors, then it fails
_STOP = re.compile(r"\bSTOP\b", re.IGNORECASE)


class BroadcastError(ValueError):
    """A broadcast cannot be made as asked; the text says why, in words for staff."""


def has_control_character(text: str) -> bool:
    """A control character other than a line break or a tab: nothing a member should read, and a NUL
    cannot even be stored by PostgreSQL."""
    return any(unicodedata.category(c) in ("Cc", "Cs") and c not in "\r\n\t" for c in text)


def check_template(text: str | None, what: str = "--message") -> str:
    """The message, stripped, once its placeholders are ones we know ({name}, {first_name})."""
    text = (text or "").strip()
    if not text:
        raise BroadcastError(f"{what} is empty")
    if has_control_character(text):
        raise BroadcastError(f"{what} has a control character (pasted from elsewhere?); take it out")
    try:
        parts = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise BroadcastError(f"{what} has a stray brace ({exc}); write {{{{ or }}}} for a literal brace") from None
    # Placeholders are staff-facing words, not Python's format language: {name:x}, {name!r},
    # {name[0]} or a width would crash or surprise at send time.
    bad = []
    for f, spec, conv in parts:
        written = "{" + f + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
        if f not in PLACEHOLDERS or spec or conv:
            bad.append(written)
    if bad:
        raise BroadcastError(f"{what} uses {', '.join(dict.fromkeys(bad))}; only {{name}} and {{first_name}} can be "
                             "filled in, written exactly so (nothing else inside the braces)")
    return text


def first_name(name: str) -> str:
    parts = (name or "").split()
    return parts[0] if parts else ""


_FILL = re.compile(r"\{\{|\}\}|\{(name|first_name)\}")


def personalise(template: str, name: str) -> str:
    """{name} and {first_name} filled in, {{ and }} as single braces, anything else left as written
    (a broadcast stored before check_template refused format specs still sends)."""
    name = (name or "").strip()
    values = {"name": name or "friend", "first_name": first_name(name) or "friend"}
    return _FILL.sub(lambda m: values[m.group(1)] if m.group(1) else m.group(0)[0], template)


def with_stop_notice(template: str, name: str, stop_notice: str | None) -> str:
    """Placeholders filled, and the STOP notice appended when the text does not say STOP already."""
    text = personalise(template, name)
    if stop_notice and not _STOP.search(text):
        text = f"{text.rstrip()} {stop_notice}"
    return text


@dataclass(frozen=True)
class TextCheck:
    language: str
    channel: str
    sample: str  # rendered for SAMPLE_NAME
    encoding: str  # GSM-7 | UCS-2 for segmented channels (SMS); "text" otherwise
    segments: int  # segments for the sample (1 where a channel does not count them)
    characters: int


# --- quiet hours ---------------------------------------------------------------------------------

@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _opens_in(zone: ZoneInfo, now: datetime, quiet: QuietHours) -> datetime | None:
    local = now.astimezone(zone)
    if not quiet.contains(local.time()):
        return None
    opening = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if opening <= local:
        opening = (local + timedelta(days=1)).replace(hour=quiet.end.hour, minute=quiet.end.minute,
                                                      second=0, microsecond=0)
    # Re-attach the zone so a DST change between now and the opening gives the right UTC instant.
    opening = datetime(opening.year, opening.month, opening.day, opening.hour, opening.minute, tzinfo=zone)
    return opening.astimezone(timezone.utc)


def quiet_until(tz_name: str | None, now: datetime, quiet: QuietHours | None) -> datetime | None:
    """None when an SMS may go to someone in ``tz_name`` at ``now``; else when their window opens (UTC).

    An unknown zone counts as quiet while it is quiet on either coast (FALLBACK_ZONES)."""
    if quiet is None:
        return None
    zone = _zone(tz_name) if tz_name else None
    if zone is not None:
        return _opens_in(zone, now, quiet)
    t = now
    for _ in range(4):  # the windows of both coasts overlap, so this settles in two rounds
        later = [u for u in (_opens_in(_zone(z), t, quiet) for z in FALLBACK_ZONES) if u is not None]
        if not later:
            return None if t == now else t
        t = max(later)
    return t


def area_code(address: str) -> str | None:
    """The area code of a North American E.164 number (+1 and ten digits), else None."""
    if len(address) == 12 and address.startswith("+1") and address[1:].isdigit():
        return address[2:5]
    return None


def backoff(attempts: int) -> timedelta:
    """Wait before the next try after ``attempts`` failed provider calls: 1, 2, 4, 8 ... 60 s."""
    return timedelta(seconds=min(60, 2 ** max(0, attempts - 1)))


# --- what a provider call came to ---------------------------------------------------------------

SENT, FAILED, RETRY, PAUSE, UNKNOWN, OPTED_OUT, UNREACHABLE, OUTSIDE_WINDOW = (
    "sent", "failed", "retry", "pause", "unknown", "opted_out", "unreachable", "outside_window")


@dataclass(frozen=True)
class SendResult:
    """The outcome of one provider call, in the worker's terms (the channel modules translate)."""

    # SENT | FAILED | RETRY | PAUSE | UNKNOWN | OPTED_OUT | UNREACHABLE | OUTSIDE_WINDOW (free text
    # refused after the channel's reply window: only a template may go)
    kind: str
    provider_id: str | None = None
    error_code: str | None = None
    retry_after: float | None = None  # PAUSE: seconds the whole channel waits
    cause: str | None = None  # OPTED_OUT: the consent event's cause ("twilio:21610")
