"""Long-polling getUpdates (``firma telegram poll``, for development without a public URL): the same
updates the webhook gets, handed to ``handle`` one at a time, its replies made through the Bot API.

What an update means is not decided here: ``handle(update)`` (the CLI's: parse, the service
function, the replies) returns the calls to make; ``blocked(chat_id)`` records a chat that answered
403. A database that is unavailable leaves the update unconfirmed, so Telegram hands it over again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Sequence

from telegram.error import NetworkError, TelegramError

from bots.channels.base import ProviderRefused
from bots.channels.telegram.gateway import Gateway, perform
from bots.channels.telegram.replies import Action
from bots.channels.telegram.updates import ALLOWED_UPDATES, BadUpdate
from storage.uow import unavailable

log = logging.getLogger("firma.telegram")


async def poll(gateway: Gateway, handle: Callable[[dict], Sequence[Action]], blocked: Callable[[int], None], *,
               say=print, max_polls: int | None = None, timeout: int = 25, retry_pause: float = 2.0) -> int:
    """Delete the webhook (Telegram serves one or the other), then poll. Stops after ``max_polls``
    polls, or when cancelled (Ctrl-C), confirming what was handled. Returns the count handled;
    ProviderRefused when Telegram refuses the bot (a wrong token)."""
    try:
        return await _poll(gateway, handle, blocked, say, max_polls, timeout, retry_pause)
    except TelegramError as exc:
        raise ProviderRefused(str(exc)) from None


async def _poll(gateway, handle, blocked, say, max_polls, timeout, retry_pause) -> int:
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
                        actions = handle(update.to_dict())
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
                            blocked(chat_id)
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
