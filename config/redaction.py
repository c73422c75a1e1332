"""Keep phone numbers and secrets out of the logs.

``install(secrets)`` (called by the app factory and the CLI) makes every log record, from any logger
and for any handler, pass through ``Redactor``: phone numbers keep only their last four digits
(``+13125550101`` -> ``+*******0101``), the configured secrets and anything shaped like a Telegram bot
token or a password in a database URL become ``[redacted]``. The message is rendered and redacted
when the record is made, exception tracebacks too (a database error quotes the statement's
parameters, which hold phone numbers), so no handler added later can print the raw text.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Iterable

REDACTED = "[redacted]"

# E.164 numbers (also inside "sim:+1555..." addresses and URL-encoded "%2B1555..."), and bare runs of
# 7 to 15 digits (a number without its "+", a Telegram user or chat id, which can be as short as 7
# digits): all but the last four digits masked.
_PHONE = re.compile(r"(?<![\w])(\+|%2B)?(\d{3,11})(\d{4})(?!\d)")
# North American numbers as people write them, "(312) 555-0102", "312.555.0102", "+1 312 555 0102":
# not one run of digits, so the pattern above misses them (an error quoting what someone typed).
_SPACED_PHONE = re.compile(r"(?<![\w+])(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}(?![\w])")
# Numbers from other countries as people write them, "+52 55 1234 5678", "+502 2345-6789": a "+",
# the country code, then groups; 8 to 15 digits in all (fewer is a time zone offset, "+0100").
_INTL_PHONE = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}(?![\w])")
_BOT_TOKEN = re.compile(r"(?<!\d)\d{5,12}:[A-Za-z0-9_-]{30,}")
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)


def mask_phone(text: str) -> str:
    """'+13125550101' -> '+*******0101', '111222333' -> '*****2333'; runs of fewer than 7 digits are left alone."""

    def repl(m: re.Match) -> str:
        prefix = m.group(1) or ""
        return prefix + "*" * len(m.group(2)) + m.group(3)

    def all_but_four(m: re.Match) -> str:
        return re.sub(r"\d", "*", m.group(0)[:-4]) + m.group(0)[-4:]

    def international(m: re.Match) -> str:
        return all_but_four(m) if 8 <= sum(c.isdigit() for c in m.group(0)) <= 15 else m.group(0)

    text = _SPACED_PHONE.sub(all_but_four, text)
    text = _INTL_PHONE.sub(international, text)
    return _PHONE.sub(repl, text)


class Redactor(logging.Filter):
    """A logging filter that rewrites the record's message (and traceback) without phones or secrets."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str | None]) -> None:
        with self._lock:
            # Short values would mask ordinary words; real secrets are long.
            self._secrets |= {s for s in secrets if s and len(s) >= 8}

    def redact(self, text: str) -> str:
        return mask_phone(self.redact_secrets(text))

    def redact_secrets(self, text: str) -> str:
        """Secrets only: for messages to the operator, who may need the number they typed."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        text = _BOT_TOKEN.sub(REDACTED, text)
        return _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_firma_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        record._firma_redacted = True
        return True


_REDACTOR: Redactor | None = None
# Libraries whose DEBUG logs quote the body of each Bot API call (chat ids, the text sent, so names):
# kept at INFO, where they log only the URL (its bot token is redacted) and the status.
QUIET_LIBRARIES = ("telegram", "httpx", "httpcore")
_INSTALL_LOCK = threading.Lock()


def install(secrets: Iterable[str | None] = ()) -> Redactor:
    """Redact every log record of this process from now on (idempotent; secrets accumulate)."""
    global _REDACTOR
    with _INSTALL_LOCK:
        if _REDACTOR is None:
            redactor = Redactor()
            previous = logging.getLogRecordFactory()

            def factory(*args, **kwargs) -> logging.LogRecord:
                record = previous(*args, **kwargs)
                redactor.filter(record)
                return record

            logging.setLogRecordFactory(factory)
            _REDACTOR = redactor
            _redact_hooks(redactor)
        _REDACTOR.add_secrets(secrets)
        for name in QUIET_LIBRARIES:  # their DEBUG records dump whole requests: message texts and names
            library = logging.getLogger(name)
            if library.getEffectiveLevel() < logging.INFO:
                library.setLevel(logging.INFO)
        for handler in logging.getLogger().handlers:  # records made before install() still pass here
            if _REDACTOR not in handler.filters:
                handler.addFilter(_REDACTOR)
        return _REDACTOR


def _redact_hooks(redactor: Redactor) -> None:
    """Tracebacks Python prints itself, not through logging (an exception that ends a thread or the
    process, or one raised in a destructor), pass through the redactor too."""
    import sys
    import threading
    import traceback

    def write(text: str) -> None:
        try:
            sys.stderr.write(redactor.redact(text))
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - a closed stderr at exit: nothing more to say
            pass

    def excepthook(kind, value, tb):
        write("".join(traceback.format_exception(kind, value, tb)))

    def thread_hook(args):
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "a thread"
        write(f"Exception in {name}:\n" + "".join(traceback.format_exception(args.exc_type, args.exc_value,
                                                                            args.exc_traceback)))

    def unraisable_hook(unraisable):
        write(f"{unraisable.err_msg or 'Exception ignored in'}: {unraisable.object!r}\n" +
              "".join(traceback.format_exception(unraisable.exc_type, unraisable.exc_value,
                                                 unraisable.exc_traceback)))

    sys.excepthook = excepthook
    threading.excepthook = thread_hook
    sys.unraisablehook = unraisable_hook


def secrets_of(settings, database_password: str | None) -> list[str | None]:
    """The values in Settings that must never be logged. ``database_password``: the one in its
    database URL (storage.db.url_password: reading a URL as the database does is storage's)."""
    return [settings.twilio_auth_token, settings.telegram_bot_token, settings.telegram_webhook_secret,
            settings.secret_key, database_password]
