"""Registering the webhook with Telegram (``firma telegram set-webhook``): the URL, the secret, the
update kinds read here, and the command menu in each language."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import BotCommand
from telegram.error import TelegramError

from bots.channels.base import ProviderRefused
from bots.channels.telegram.gateway import Gateway
from bots.channels.telegram.replies import VARIANT
from bots.channels.telegram.updates import ALLOWED_UPDATES

MENU_COMMANDS = ("start", "help", "stop", "language")


@dataclass
class WebhookInfo:
    username: str
    url: str
    pending_update_count: int


async def set_webhook(gateway: Gateway, url: str, secret: str, drop_pending_updates: bool = False,
                      catalog=None) -> WebhookInfo:
    """setWebhook with the secret and the update kinds read here, and (given the catalog) the command
    menu in each language (setMyCommands); returns what Telegram now has. ProviderRefused when
    Telegram refuses (a wrong token, a URL it will not call)."""
    try:
        return await _set_webhook(gateway, url, secret, drop_pending_updates, catalog)
    except TelegramError as exc:
        raise ProviderRefused(str(exc)) from None


async def _set_webhook(gateway: Gateway, url: str, secret: str, drop_pending_updates: bool, catalog) -> WebhookInfo:
    async with gateway.session(get_me=True) as bot:
        await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES,
                              drop_pending_updates=drop_pending_updates)
        for lang in (catalog.languages if catalog else ()):
            commands = [BotCommand(name, catalog.template(f"command_{name}", lang, VARIANT)) for name in MENU_COMMANDS]
            await bot.set_my_commands(commands, language_code=None if lang == catalog.languages[0] else lang)
        info = await bot.get_webhook_info()
        return WebhookInfo(bot.username, info.url, info.pending_update_count)
