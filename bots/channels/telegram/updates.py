"""Telegram's Bot API updates, read into firma's values: a conversation message (an engine
``Inbound``), a shared contact, the bot blocked or unblocked, a group post, or something to ignore.

Each update is read with python-telegram-bot's own types (``Update.de_json``) and its fields are
checked, so nothing else in firma knows Telegram's field names. Updates are authenticated by the
webhook's secret (or come from getUpdates), so an update the Bot API sends is read tolerantly.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from telegram import Update

from bots.channels import phones
from bots.channels.base import MAX_DEPTH, too_deep
from bots.engine import Inbound
from bots.events import ContactShared, GroupPost, Reachability

log = logging.getLogger("firma.telegram")

CHANNEL = "telegram"
COMMANDS = {"start": "start", "stop": "stop", "help": "help", "language": "language", "idioma": "language"}
# The update kinds read here; set-webhook and poll ask Telegram for these only.
ALLOWED_UPDATES = ["message", "edited_message", "channel_post", "edited_channel_post", "callback_query",
                   "my_chat_member"]
LANGUAGE_BUTTON = "lang:"
CAMPAIGN_BUTTON = "start:"

# Event kinds
MESSAGE = "message"  # a conversation message for the engine (text, /command, media, button press)
CONTACT = "contact"  # a shared phone number
MEMBER_STATUS = "member_status"  # my_chat_member in a private chat: blocked or unblocked
GROUP = "group"  # a post in a group, supergroup or channel
IGNORED = "ignored"  # edited messages, other bots, kinds we do not use: 200 and no effect


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


class BadUpdate(ValueError):
    """The body is not a Telegram update (for a 400 with this reason)."""


@dataclass(frozen=True)
class Event:
    update_id: int
    kind: str
    chat_id: int | None = None
    inbound: Inbound | None = None
    phone: str | None = None  # CONTACT: E.164, or None when it cannot be read
    own_contact: bool = False  # CONTACT: the sender shared their own number
    reachable: bool | None = None  # MEMBER_STATUS
    callback_query_id: str | None = None  # a button press to answer
    from_button: bool = False
    note: str = ""  # why an update is ignored (logs)

    def payload(self) -> Inbound | ContactShared | Reachability | GroupPost | None:
        """What the service functions are given (None: nothing to do)."""
        if self.kind == MESSAGE:
            return self.inbound
        if self.kind == CONTACT:
            return ContactShared(self.inbound, self.phone, self.own_contact)
        if self.kind == MEMBER_STATUS:
            return Reachability(CHANNEL, self.inbound.address, self.inbound.provider_id, bool(self.reachable))
        if self.kind == GROUP:
            return GroupPost(CHANNEL, str(self.chat_id), str(self.update_id))
        return None


def button_inbound(data: str | None, address: str, provider_id: str | None = None,
                   language_hint: str | None = None, simulated: bool = False) -> Inbound | None:
    """The value of an inline button (callback_data) -> the engine message it stands for, or None."""
    for prefix, command, limit in ((LANGUAGE_BUTTON, "language", 8), (CAMPAIGN_BUTTON, "start", 64)):
        if data and data.startswith(prefix) and len(data) > len(prefix):
            return Inbound(channel=CHANNEL, address=address, provider_id=provider_id, language_hint=language_hint,
                           command=command, argument=data[len(prefix):][:limit], simulated=simulated)
    return None


def text_inbound(text: str, address: str, provider_id: str | None = None, language_hint: str | None = None,
                 media: bool = False, simulated: bool = False) -> Inbound:
    """A private text (or caption) -> Inbound; /commands become engine commands. An unknown /command
    gets the help rather than being taken as a name or a ZIP."""
    command, argument = None, None
    if text.strip().startswith("/"):
        command, argument = parse_command(text) or ("help", None)
    return Inbound(channel=CHANNEL, address=address, text=text, provider_id=provider_id,
                   language_hint=language_hint, command=command, argument=argument, media=media,
                   simulated=simulated)


_MAX_ID = 2 ** 63 - 1  # Telegram's ids fit in 64 bits (the Bot API promises 52 significant bits)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_unicode(value):
    """JSON may spell a lone surrogate ("\\ud800"), which no database can store: each becomes U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {_valid_unicode(k): _valid_unicode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_valid_unicode(v) for v in value]
    return value


# Older Bot API shapes (RapidPro's courier tests still send them) lack fields python-telegram-bot now
# requires. The update is authenticated, so it is read with those defaults, keeping only the fields
# firma uses; what was missing or left out is logged.
_MESSAGE_FIELDS = ("message_id", "date", "chat", "from", "text", "caption", "contact", "entities", "sender_chat",
                   "edit_date")


def _person(u, what: str, notes: list[str]):
    if not isinstance(u, dict):
        return u
    u = dict(u)
    for key, default in (("is_bot", False), ("first_name", "")):
        if key not in u:
            u[key] = default
            notes.append(f"{what}.{key} missing")
    return u


def _tolerant(kind: str, obj, notes: list[str]):
    if not isinstance(obj, dict):
        return obj
    if kind == "callback_query":
        q = {k: v for k, v in obj.items() if k in ("id", "from", "data", "chat_instance")}
        q["from"] = _person(q.get("from"), "callback_query.from", notes)
        q.setdefault("chat_instance", "")
        return q
    if kind == "my_chat_member":
        m = dict(obj)
        m["from"] = _person(m.get("from"), "my_chat_member.from", notes)
        m.setdefault("date", 0)
        for key in ("old_chat_member", "new_chat_member"):
            member = m.get(key)
            if isinstance(member, dict):
                m[key] = {**member, "user": _person(member.get("user", m["from"]), f"my_chat_member.{key}.user", notes)}
        m.setdefault("old_chat_member", {"status": "left", "user": m["from"]})
        return m
    m = {k: v for k, v in obj.items() if k in _MESSAGE_FIELDS}
    dropped = sorted(set(obj) - set(m))
    if dropped:
        notes.append(f"{kind} fields not read: {', '.join(dropped)}")
    m.setdefault("message_id", 0)
    m.setdefault("date", 0)
    if "from" in m:
        m["from"] = _person(m["from"], f"{kind}.from", notes)
    if isinstance(m.get("contact"), dict) and "first_name" not in m["contact"]:
        m["contact"] = {**m["contact"], "first_name": ""}
    return m


_PARSE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, OSError)


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -_MAX_ID <= value <= _MAX_ID


def _check(update: Update) -> None:
    """python-telegram-bot's de_json does not check types: the fields used here must have Telegram's."""
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise BadUpdate(f"{what} has the wrong type")

    def text(value, what: str) -> None:
        need(value is None or isinstance(value, str), what)

    def user(u, what: str) -> None:
        if u is not None:
            need(_is_id(u.id), f"{what}.id")
            text(u.language_code, f"{what}.language_code")

    def chat(c, what: str) -> None:
        need(c is not None and _is_id(c.id) and isinstance(c.type, str), what)

    if update.callback_query is not None:
        q = update.callback_query
        need(q.from_user is not None, "callback_query.from")
        user(q.from_user, "callback_query.from")
        need(isinstance(q.id, (str, int)) and not isinstance(q.id, bool), "callback_query.id")
        text(q.data, "callback_query.data")
    if update.my_chat_member is not None:
        m = update.my_chat_member
        chat(m.chat, "my_chat_member.chat")
        need(m.from_user is not None, "my_chat_member.from")
        user(m.from_user, "my_chat_member.from")
        need(m.new_chat_member is not None and isinstance(m.new_chat_member.status, str),
             "my_chat_member.new_chat_member")
    for what, message in (("message", update.message), ("channel_post", update.channel_post)):
        if message is None:
            continue
        chat(message.chat, f"{what}.chat")
        user(message.from_user, f"{what}.from")
        text(message.text, f"{what}.text")
        text(message.caption, f"{what}.caption")
        if message.contact is not None:
            text(message.contact.phone_number, f"{what}.contact.phone_number")
            need(message.contact.user_id is None or _is_id(message.contact.user_id), f"{what}.contact.user_id")


def parse_update(data) -> Event:
    """One Bot API update (the decoded JSON) -> Event. Raises BadUpdate for what is not an update."""
    if not isinstance(data, dict):
        raise BadUpdate("the update is not a JSON object")
    update_id = data.get("update_id")
    if not _is_id(update_id) or update_id < 0:
        raise BadUpdate("update_id is missing or not a non-negative 64-bit integer")
    kinds = [kind for kind in ALLOWED_UPDATES if data.get(kind) is not None]
    if not kinds:  # a kind we do not use (polls, reactions, ...): never parsed, so never "malformed"
        return Event(update_id, IGNORED, note="update kind not used")
    if too_deep(data):
        raise BadUpdate(f"the update nests deeper than {MAX_DEPTH} levels")
    body = _valid_unicode(data[kinds[0]])
    try:
        update = Update.de_json({"update_id": update_id, kinds[0]: body}, None)
    except _PARSE_ERRORS as exc:
        notes: list[str] = []
        try:
            update = Update.de_json({"update_id": update_id, kinds[0]: _tolerant(kinds[0], body, notes)}, None)
        except _PARSE_ERRORS:
            raise BadUpdate(f"the update does not parse ({exc.__class__.__name__})") from None
        log.info("update %s in an older Bot API shape, read tolerantly: %s", update_id,
                 "; ".join(notes) or exc.__class__.__name__)
    _check(update)
    pid = str(update_id)

    if update.callback_query is not None:
        query = update.callback_query
        user = query.from_user
        inbound = button_inbound(query.data, str(user.id), pid, user.language_code)
        if inbound is None:
            return Event(update_id, IGNORED, callback_query_id=query.id, note="unknown button")
        return Event(update_id, MESSAGE, chat_id=user.id, inbound=inbound, callback_query_id=query.id,
                     from_button=True)

    if update.my_chat_member is not None:
        change = update.my_chat_member
        if change.chat.type != "private":
            return Event(update_id, IGNORED, note="membership in a group")
        reachable = {"kicked": False, "member": True}.get(change.new_chat_member.status)
        if reachable is None:
            return Event(update_id, IGNORED, note=f"membership status {change.new_chat_member.status}")
        return Event(update_id, MEMBER_STATUS, chat_id=change.chat.id, reachable=reachable,
                     inbound=Inbound(channel=CHANNEL, address=str(change.from_user.id), provider_id=pid))

    if update.edited_message is not None or update.edited_channel_post is not None:
        return Event(update_id, IGNORED, note="edited message")

    if update.channel_post is not None:
        return Event(update_id, GROUP, chat_id=update.channel_post.chat.id)

    message = update.message
    if message is None:
        return Event(update_id, IGNORED, note="update kind not used")
    if message.chat.type != "private":
        return Event(update_id, GROUP, chat_id=message.chat.id)
    user = message.from_user
    if user is None or user.is_bot:
        return Event(update_id, IGNORED, note="not from a person")
    address, hint = str(user.id), user.language_code
    if message.contact is not None:
        contact = message.contact
        return Event(update_id, CONTACT, chat_id=message.chat.id,
                     inbound=Inbound(channel=CHANNEL, address=address, provider_id=pid, language_hint=hint),
                     phone=phones.linkable(contact.phone_number), own_contact=contact.user_id == user.id)
    text = message.text if message.text is not None else (message.caption or "")
    inbound = text_inbound(text, address, pid, hint, media=message.text is None)
    return Event(update_id, MESSAGE, chat_id=message.chat.id, inbound=inbound)

