"""The Telegram channel: Bot API updates <-> engine values, replies as Bot API methods, and sending.

With bots/channels/sms.py, the only modules that import the telegram library.

In: ``parse_update(data)`` reads one update with python-telegram-bot's own types
(``Update.de_json``) into an ``Event``: a conversation message (an engine ``Inbound``), a shared
contact, a change of the bot's membership in a private chat, a group or channel post, or something to
ignore. Nothing else in firma knows Telegram's field names.

Through: ``handle_update(rt, data, gateway)`` calls the service function for the event (one
transaction, update_id claimed in it) and returns the replies as ``Action`` values.

Out: the webhook answers one action in its response body (``Action.webhook_body``) so the hot path
makes no outbound call; ``Gateway.perform`` sends actions through python-telegram-bot's ``Bot``
(several replies, polling mode). No ``Application``/``ConversationHandler``: state stays in the database.
"""

from __future__ import annotations

import asyncio
import functools
import html
import logging
import re
import ssl
import threading
import warnings
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import AsyncIterator, Sequence

import certifi
import phonenumbers
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    LinkPreviewOptions,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.warnings import PTBDeprecationWarning
from telegram.request import HTTPXRequest

from bots import service
from bots.engine import Inbound
from bots.render import render_text
from storage.uow import unavailable

log = logging.getLogger("firma.telegram")

CHANNEL = "telegram"
COMMANDS = {"start": "start", "stop": "stop", "help": "help", "language": "language", "idioma": "language"}
# The update kinds handle_update uses; set-webhook and poll ask Telegram for these only.
ALLOWED_UPDATES = ["message", "edited_message", "channel_post", "edited_channel_post", "callback_query",
                   "my_chat_member"]
LANGUAGE_BUTTON = "lang:"
CAMPAIGN_BUTTON = "start:"
MAX_RETRY_AFTER = 5  # seconds a reply may wait on a 429 before it is given up (logged)
SEND_TIMEOUT = 5.0  # seconds to connect, write or read one Bot API call (python-telegram-bot's default)
SERVER_ERROR_PAUSE = 0.5  # seconds before the one retry of a call that failed with a 5xx

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


def normalize_phone(raw: str | None) -> str | None:
    """A shared phone number -> E.164 (Telegram sends digits without '+'), or None when not a valid
    US number (the SMS program is US-only)."""
    raw = (raw or "").strip()
    if not raw:
        return None
    for text, region in ((raw if raw.startswith("+") else "+" + raw, None), (raw, "US")):
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number) and phonenumbers.region_code_for_number(number) in ("US", "PR"):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


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
    try:
        update = Update.de_json({"update_id": update_id, kinds[0]: _valid_unicode(data[kinds[0]])}, None)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, OSError) as exc:
        raise BadUpdate(f"the update does not parse ({exc.__class__.__name__})") from None
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
                     phone=normalize_phone(contact.phone_number), own_contact=contact.user_id == user.id)
    text = message.text if message.text is not None else (message.caption or "")
    inbound = text_inbound(text, address, pid, hint, media=message.text is None)
    return Event(update_id, MESSAGE, chat_id=message.chat.id, inbound=inbound)


# --- replies -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One Bot API call: the same value goes in a webhook response body or through ``Bot``."""

    method: str  # sendMessage | answerCallbackQuery
    params: dict

    def webhook_body(self) -> dict:
        return {"method": self.method, **self.params}

    @property
    def chat_id(self):
        return self.params.get("chat_id")


def send_message(chat_id, text: str, markup=None) -> Action:
    params = {"chat_id": chat_id, "text": text, "parse_mode": "HTML",
              "link_preview_options": {"is_disabled": True}}
    if markup is not None:
        params["reply_markup"] = markup.to_dict()
    return Action("sendMessage", params)


def answer_callback(query_id: str) -> Action:
    return Action("answerCallbackQuery", {"callback_query_id": query_id})


def _text(key: str, language: str, catalog, **params) -> str:
    from bots.engine import Reply

    return html.escape(render_text(Reply(key, params), language, CHANNEL, catalog), quote=False)


def language_keyboard(catalog) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(catalog.template("language_name", lang, CHANNEL),
                                                       callback_data=LANGUAGE_BUTTON + lang)
                                  for lang in catalog.languages]])


def contact_keyboard(language: str, catalog) -> ReplyKeyboardMarkup:
    button = KeyboardButton(catalog.template("share_phone_button", language, CHANNEL), request_contact=True)
    return ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)


def reply_markup(inbound: Inbound, outcome: service.Outcome, catalog, from_button: bool = False):
    """Buttons for the last message of a conversation reply: after a bare /start, the other active
    petitions (when there are several; the default one has started); English/Español after /start and
    /language; after signing, the optional "share my phone number" keyboard (not in the simulator)."""
    if outcome.signed and not inbound.simulated:
        return contact_keyboard(outcome.language, catalog)
    if from_button or inbound.command not in ("start", "language"):
        return None
    rows = []
    if inbound.command == "start" and not inbound.argument and len(catalog.active_campaigns) > 1:
        rows += [[InlineKeyboardButton(c.text(outcome.language).title, callback_data=CAMPAIGN_BUTTON + c.slug)]
                 for c in catalog.active_campaigns if c.slug != catalog.organization.default_campaign]
    if len(catalog.languages) > 1:
        rows += language_keyboard(catalog).inline_keyboard
    return InlineKeyboardMarkup(rows) if rows else None


def inline_buttons(markup) -> list[dict[str, str]]:
    """Inline buttons as [{"text", "data"}] (the simulator draws them)."""
    if not isinstance(markup, InlineKeyboardMarkup):
        return []
    return [{"text": b.text, "data": b.callback_data} for row in markup.inline_keyboard for b in row]


def conversation_actions(chat_id, inbound: Inbound, outcome: service.Outcome, catalog,
                         from_button: bool = False, answer_lost: bool = True) -> list[Action]:
    messages = list(outcome.messages)
    if outcome.duplicate:
        if not answer_lost:  # polling: every reply went through the Bot API the first time
            return []
        # A redelivery: Telegram lost our answer. One stored reply went in that lost response body, so
        # it is given again, as it was (its buttons too); several went through the Bot API before we
        # answered, so none is resent.
        if len(messages) != 1:
            return []
    if not messages:
        return []
    markup = reply_markup(inbound, outcome, catalog, from_button)
    if isinstance(markup, ReplyKeyboardMarkup):
        messages[-1] += "\n\n" + _text("share_phone_hint", outcome.language, catalog)
    return [send_message(chat_id, text, markup if i == len(messages) - 1 else None)
            for i, text in enumerate(messages)]


def deep_link(username: str, slug: str) -> str:
    return f"https://t.me/{username}?start={slug}"


def group_note(catalog, username: str) -> str:
    link = deep_link(username, catalog.organization.default_campaign)
    return "\n\n".join(f"{_text('group_private', lang, catalog)} {link}" for lang in catalog.languages)


def handle_update(rt, data, gateway: "Gateway | None" = None, webhook: bool = True) -> list[Action]:
    """Parse one update and apply it (one transaction); the replies to make, in order.
    Raises BadUpdate for what is not an update. Used by the webhook and by polling alike
    (``webhook=False``: a redelivered update gets no reply again, as nothing was lost)."""
    event = parse_update(data)
    actions: list[Action] = []
    uow = rt.db.uow
    if event.kind == MESSAGE:
        outcome = service.handle_inbound(uow(), event.inbound, rt.engine, rt.now(), forget_key=rt.settings.secret_key)
        actions = conversation_actions(event.chat_id, event.inbound, outcome, rt.catalog, event.from_button,
                                       answer_lost=webhook)
    elif event.kind == CONTACT:
        outcome = service.handle_contact(uow(), event.inbound, event.phone, event.own_contact, rt.engine, rt.now(),
                                         forget_key=rt.settings.secret_key)
        actions = [] if outcome.duplicate and not webhook else \
            [send_message(event.chat_id, text, ReplyKeyboardRemove()) for text in outcome.messages]
    elif event.kind == MEMBER_STATUS:
        service.handle_reachability(uow(), CHANNEL, event.inbound.address, event.inbound.provider_id,
                                    event.reachable, rt.now())
    elif event.kind == GROUP:
        username = gateway.username() if gateway else None
        if username is None:
            log.warning("group post %s: the bot's username is unknown, no note sent", event.update_id)
        elif service.handle_group_post(uow(), CHANNEL, str(event.chat_id), str(event.update_id), rt.now()):
            actions = [send_message(event.chat_id, group_note(rt.catalog, username))]
    else:
        log.info("update %s ignored: %s", event.update_id, event.note)
    if event.callback_query_id:
        actions.append(answer_callback(event.callback_query_id))
    return actions


# --- sending -------------------------------------------------------------------------------------


@dataclass
class Delivery:
    sent: int = 0
    blocked: set = field(default_factory=set)  # chat ids that answered 403
    failed: int = 0


class Gateway:
    """Sends through python-telegram-bot's ``Bot`` at ``{api_url}/bot{token}``.

    Each ``perform`` makes its own Bot on its own event loop (a Bot is never shared across loops);
    polling keeps one Bot for its one loop (``session``). The bot's username (for deep links) is
    asked once (getMe) and kept.
    """

    def __init__(self, token: str, api_url: str = "https://api.telegram.org", timeout: float = SEND_TIMEOUT):
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._username: str | None = None
        self._lock = threading.Lock()

    @asynccontextmanager
    async def session(self, get_me: bool = False) -> AsyncIterator[Bot]:
        """A Bot with its own connections; ``get_me`` checks the token (Bot.initialize)."""
        request = HTTPXRequest(httpx_kwargs={"verify": _tls_context()}, connect_timeout=self.timeout,
                               read_timeout=self.timeout, write_timeout=self.timeout)
        updates_request = HTTPXRequest(httpx_kwargs={"verify": _tls_context()})
        bot = Bot(self.token, base_url=f"{self.api_url}/bot", request=request, get_updates_request=updates_request)
        if get_me:
            async with bot:
                self._username = bot.username
                yield bot
            return
        await request.initialize()
        await updates_request.initialize()
        try:
            yield bot
        finally:
            await request.shutdown()
            await updates_request.shutdown()

    def username(self) -> str | None:
        if self._username is None:
            with self._lock:
                if self._username is None:
                    try:
                        self._username = asyncio.run(self._get_username())
                    except TelegramError as exc:
                        log.warning("getMe failed: %s", exc)
        return self._username

    async def _get_username(self) -> str:
        async with self.session() as bot:
            return (await bot.get_me()).username

    def perform(self, actions: Sequence[Action]) -> Delivery:
        """Make these calls in order (blocking); 403s and other failures are reported, not raised."""
        if not actions:
            return Delivery()

        async def run() -> Delivery:
            async with self.session() as bot:
                return await perform(bot, actions)

        return asyncio.run(run())


@functools.lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: building one (loading the CA bundle) takes a few hundred
    milliseconds, which each short-lived Bot would otherwise pay twice."""
    return ssl.create_default_context(cafile=certifi.where())


async def perform(bot: Bot, actions: Sequence[Action]) -> Delivery:
    """Make the calls in order. A 429 waits (up to MAX_RETRY_AFTER) and a 5xx pauses, then each is
    tried once more; a timeout is not retried (the message may have arrived: a second try could send
    it twice). When a message of a reply is given up, the rest of that chat's reply is not sent either:
    a member never gets the third message without the second. A 403 marks the chat unreachable."""
    result = Delivery()
    abandoned: set = set()
    for action in actions:
        if action.chat_id is not None and action.chat_id in abandoned | result.blocked:
            result.failed += 1
            continue
        for attempt in (1, 2):
            try:
                await _call(bot, action)
                result.sent += 1
            except Forbidden as exc:
                log.info("chat %s cannot be reached: %s", action.chat_id, exc.message)
                result.blocked.add(action.chat_id)
            except RetryAfter as exc:
                wait = _seconds(exc)
                if attempt == 1 and wait <= MAX_RETRY_AFTER:
                    await asyncio.sleep(wait)
                    continue
                log.warning("%s to %s given up: flood control (retry after %ss)", action.method, action.chat_id, wait)
                result.failed += 1
                abandoned.add(action.chat_id)
            except TimedOut as exc:
                log.warning("%s to %s timed out (not retried, it may have arrived): %s", action.method,
                            action.chat_id, exc)
                result.failed += 1
                abandoned.add(action.chat_id)
            except NetworkError as exc:  # 5xx, connection refused or reset: nothing was delivered
                if attempt == 1:
                    await asyncio.sleep(SERVER_ERROR_PAUSE)
                    continue
                log.warning("%s to %s failed twice: %s", action.method, action.chat_id, exc)
                result.failed += 1
                abandoned.add(action.chat_id)
            except TelegramError as exc:
                log.warning("%s to %s failed: %s", action.method, action.chat_id, exc)
                result.failed += 1
                abandoned.add(action.chat_id)
            break
    return result


def _seconds(exc: RetryAfter) -> float:
    """retry_after in seconds, whether this python-telegram-bot gives an int or (v23) a timedelta."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def _call(bot: Bot, action: Action) -> None:
    params = dict(action.params)
    if action.method == "sendMessage":
        markup = params.pop("reply_markup", None)
        preview = params.pop("link_preview_options", None)
        await bot.send_message(**params, reply_markup=_markup_from_dict(markup),
                               link_preview_options=LinkPreviewOptions(**preview) if preview else None)
    elif action.method == "answerCallbackQuery":
        await bot.answer_callback_query(**params)
    else:  # pragma: no cover - handle_update makes only the two above
        await bot.do_api_request(action.method, api_kwargs=params)


def _markup_from_dict(data: dict | None):
    if not data:
        return None
    if "inline_keyboard" in data:
        return InlineKeyboardMarkup.de_json(data, None)
    if "keyboard" in data:
        return ReplyKeyboardMarkup.de_json(data, None)
    if data.get("remove_keyboard"):
        return ReplyKeyboardRemove()
    return None


def deliver(rt, gateway: Gateway, actions: Sequence[Action]) -> Delivery:
    """Send ``actions`` and record what the sending taught us: a 403 makes that member unreachable."""
    result = gateway.perform(actions)
    for chat_id in result.blocked:
        service.mark_unreachable(rt.db.uow(), CHANNEL, str(chat_id), rt.now())
    return result


# --- webhook registration and polling (the `firma telegram` commands) ------------------------------


@dataclass
class WebhookInfo:
    username: str
    url: str
    pending_update_count: int


MENU_COMMANDS = ("start", "help", "stop", "language")


async def set_webhook(gateway: Gateway, url: str, secret: str, drop_pending_updates: bool = False,
                      catalog=None) -> WebhookInfo:
    """setWebhook with the secret and the update kinds handled here, and (given the catalog) the command
    menu in each language (setMyCommands); returns what Telegram now has."""
    async with gateway.session(get_me=True) as bot:
        await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES,
                              drop_pending_updates=drop_pending_updates)
        for lang in (catalog.languages if catalog else ()):
            commands = [BotCommand(name, catalog.template(f"command_{name}", lang, CHANNEL)) for name in MENU_COMMANDS]
            await bot.set_my_commands(commands, language_code=None if lang == catalog.languages[0] else lang)
        info = await bot.get_webhook_info()
        return WebhookInfo(bot.username, info.url, info.pending_update_count)


async def poll(rt, gateway: Gateway, *, say=print, max_polls: int | None = None, timeout: int = 25,
               retry_pause: float = 2.0) -> int:
    """Long-poll getUpdates and feed each update to ``handle_update``, as the webhook does; replies go
    through the Bot API. Deletes the webhook first (Telegram serves one or the other). Stops after
    ``max_polls`` polls, or when cancelled (Ctrl-C), confirming what was handled. Returns the count."""
    from telegram.error import NetworkError

    handled, polls, offset = 0, 0, None
    async with gateway.session(get_me=True) as bot:
        had = (await bot.get_webhook_info()).url
        await bot.delete_webhook()
        say(f"Deleted the webhook{f' ({had})' if had else ''}: Telegram now holds updates for polling. "
            "Run `firma telegram set-webhook` to go back to the webhook.")
        say(f"Polling as @{bot.username}. Press Ctrl-C to stop.")
        try:
            while max_polls is None or polls < max_polls:
                polls += 1
                try:
                    updates = await bot.get_updates(offset=offset, timeout=timeout, allowed_updates=ALLOWED_UPDATES)
                except NetworkError as exc:  # includes timeouts; the next poll asks again
                    log.warning("getUpdates failed: %s", exc)
                    await asyncio.sleep(retry_pause)
                    continue
                for update in updates:
                    try:
                        actions = handle_update(rt, update.to_dict(), gateway, webhook=False)
                    except BadUpdate as exc:
                        offset = update.update_id + 1
                        log.warning("update %s skipped: %s", update.update_id, exc)
                        continue
                    except Exception as exc:
                        if not unavailable(exc):
                            raise
                        # Not confirmed: Telegram hands this update (and the rest) over again.
                        log.warning("the database is unavailable (%s): update %s is fetched again in %.0f s",
                                    exc.__class__.__name__, update.update_id, retry_pause)
                        await asyncio.sleep(retry_pause)
                        break
                    offset = update.update_id + 1
                    result = await perform(bot, actions)
                    for chat_id in result.blocked:
                        try:
                            service.mark_unreachable(rt.db.uow(), CHANNEL, str(chat_id), rt.now())
                        except Exception as exc:
                            if not unavailable(exc):
                                raise
                            log.warning("the database is unavailable: a chat that blocked the bot is marked "
                                        "when it is next answered")
                    handled += 1
        finally:
            if offset is not None:  # confirm the last updates, so a restart does not fetch them again
                try:
                    await asyncio.shield(bot.get_updates(offset=offset, timeout=0, limit=1))
                except (TelegramError, asyncio.CancelledError):
                    pass
    return handled
