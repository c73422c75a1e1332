"""Sending broadcast messages through the Telegram Bot API with python-telegram-bot's ``Bot``, and
what each Bot API error means for the delivery. One TelegramSender per worker event loop (a Bot
must not be shared across loops)."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from telegram import Bot
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.request import HTTPXRequest

from bots.broadcast_plan import FAILED, PAUSE, RETRY, SENT, UNKNOWN, UNREACHABLE, SendResult
from bots.channels.base import CREDENTIALS_PAUSE_S, NotConfigured, ProviderUnavailable
from bots.channels.telegram.updates import CHANNEL
from config.settings import Settings


REFUSED = "Telegram rejected TELEGRAM_BOT_TOKEN (check it with @BotFather)"


def _why(exc: BaseException, api_url: str) -> str:
    if isinstance(exc, InvalidToken):
        return REFUSED
    if isinstance(exc, (NetworkError, OSError)):
        return f"Telegram's Bot API at {api_url} cannot be reached ({exc.__class__.__name__})"
    return f"Telegram's Bot API at {api_url} did not answer getMe ({exc.__class__.__name__})"


class TelegramSender:
    channel = CHANNEL

    def __init__(self, settings: Settings, concurrency: int = 200, timeout: float = 15.0):
        if not settings.telegram_bot_token:
            raise NotConfigured("Telegram broadcasts need TELEGRAM_BOT_TOKEN")
        self.settings = settings
        self.concurrency = concurrency
        self.timeout = timeout
        self._bot: Bot | None = None

    async def __aenter__(self) -> "TelegramSender":
        request = HTTPXRequest(connection_pool_size=self.concurrency, read_timeout=self.timeout,
                               write_timeout=self.timeout, connect_timeout=self.timeout, pool_timeout=self.timeout)
        self._bot = Bot(self.settings.telegram_bot_token, base_url=f"{self.settings.telegram_api_url}/bot",
                        request=request)
        try:
            await self._bot.initialize()  # getMe: checks the token
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self._bot.shutdown()
            self._bot = None
            # Never the library's message: InvalidToken quotes the token.
            raise ProviderUnavailable(_why(exc, self.settings.telegram_api_url)) from None
        return self

    async def __aexit__(self, *exc) -> None:
        if self._bot is not None:
            await self._bot.shutdown()

    async def send(self, to: str, body: str) -> SendResult:
        try:
            chat_id: int | str = int(to)
        except ValueError:
            chat_id = to
        try:
            msg = await self._bot.send_message(chat_id=chat_id, text=body)
        except RetryAfter as exc:
            wait = exc.retry_after
            seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            return SendResult(PAUSE, error_code="429", retry_after=seconds)
        except InvalidToken:  # revoked while we run: nothing can go out until it is replaced
            return SendResult(PAUSE, error_code="401", retry_after=CREDENTIALS_PAUSE_S, cause=REFUSED)
        except Forbidden:  # blocked by the user, or the account is deactivated
            return SendResult(UNREACHABLE, error_code="403")
        except BadRequest as exc:
            return SendResult(FAILED, error_code=f"400:{exc.message}"[:32])
        except TimedOut:  # the request may have been delivered: not resent
            return SendResult(UNKNOWN, error_code="timeout")
        except NetworkError as exc:  # 5xx and connection errors
            return SendResult(RETRY, error_code=f"net:{exc.message}"[:32])
        except TelegramError as exc:
            return SendResult(FAILED, error_code=str(exc)[:32])
        return SendResult(SENT, provider_id=str(msg.message_id))
