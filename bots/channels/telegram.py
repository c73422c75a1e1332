"""The Telegram channel: Bot API updates <-> engine values, and sending.

With bots/channels/sms.py, the only modules that import the telegram library.
"""

from __future__ import annotations

CHANNEL = "telegram"
COMMANDS = {"start": "start", "stop": "stop", "help": "help", "language": "language", "idioma": "language"}


def parse_command(text: str) -> tuple[str, str | None] | None:
    """'/start end-scomm' -> ('start', 'end-scomm'); '/help@firma_bot' -> ('help', None); else None."""
    text = (text or "").strip()
    if not text.startswith("/"):
        return None
    head, _, rest = text[1:].partition(" ")
    name = head.split("@", 1)[0].lower()
    command = COMMANDS.get(name)
    if command is None:
        return None
    return command, (rest.strip() or None)
