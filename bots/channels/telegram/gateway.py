"""Making Bot API calls in order, through python-telegram-bot's ``Bot``: the replies a webhook
cannot put in its response body, and polling's. Failures are reported, not raised: a 429 waits, a
5xx is tried once more, a 403 says the chat blocked the bot (the caller marks it unreachable)."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import AsyncIterator, Sequence

import certifi
from telegram import (
    Bot,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)
from telegram.error import Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.request import HTTPXRequest

from bots.channels.telegram.replies import Action

log = logging.getLogger("firma.telegram")

MAX_RETRY_AFTER = 5  # seconds a reply may wait on a 429 before it is given up (logged)
SEND_TIMEOUT = 5.0  # seconds to connect, write or read one Bot API call (python-telegram-bot's default)
SERVER_ERROR_PAUSE = 0.5  # seconds before the one retry of a call that failed with a 5xx


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

