"""`firma telegram set-webhook` and `firma telegram poll` (interface.md, "CLI")."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import click

# The `firma` group's object (webhooks.cli.Context), reached through click rather than an import, so
# that `python3 -m webhooks.cli` (which adds these commands) does not import itself a second time.
pass_ctx = click.pass_obj

WEBHOOK_PATH = "/webhooks/telegram"
OFFICIAL_API_HOST = "api.telegram.org"
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what Telegram accepts as secret_token


def _gateway(obj):
    from bots.channels.telegram.gateway import Gateway

    settings = obj.settings
    if not settings.telegram_bot_token:
        raise click.ClickException("TELEGRAM_BOT_TOKEN is not set (BotFather gives it when you create the bot)")
    return Gateway(settings.telegram_bot_token, settings.telegram_api_url)


def handlers(rt, gateway):
    """What polling does with an update, as the webhook does: parse, the service function, the replies
    (none again for a redelivery); and with a chat that answered 403."""
    from bots import service
    from bots.channels.telegram import TELEGRAM

    def handle(data: dict):
        event = TELEGRAM.parse(data)
        outcome = service.handle_event(rt.db.uow(), event.payload(), rt.engine, rt.now(),
                                       forget_key=rt.settings.secret_key, timezone=rt.settings.timezone)
        return TELEGRAM.answer(event, outcome, rt.catalog, gateway.username, webhook=False)

    def blocked(chat_id) -> None:
        service.mark_unreachable(rt.db.uow(), TELEGRAM.name, str(chat_id), rt.now())

    return handle, blocked


@click.group("telegram")
def telegram_group():
    """The Telegram bot: register the webhook, or long-poll without a public URL."""


@telegram_group.command("set-webhook")
@click.option("--drop-pending-updates", is_flag=True, help="Discard the updates Telegram holds for the bot.")
@pass_ctx
def set_webhook(obj, drop_pending_updates: bool):
    """Register FIRMA_PUBLIC_URL/webhooks/telegram with TELEGRAM_WEBHOOK_SECRET."""
    from bots.channels import ProviderRefused
    from bots.channels.telegram import setup, updates
    from config.campaigns import CampaignFileError, load_catalog

    settings = obj.settings
    gateway = _gateway(obj)
    if not settings.public_url:
        raise click.ClickException("FIRMA_PUBLIC_URL is not set: the https address Telegram should call")
    official = urlsplit(settings.telegram_api_url).hostname == OFFICIAL_API_HOST
    if official and not settings.public_url.startswith("https://"):  # a self-hosted Bot API server takes http
        raise click.ClickException(f"FIRMA_PUBLIC_URL must start with https:// (Telegram requires it), not {settings.public_url}")
    secret = settings.telegram_webhook_secret
    if not secret:
        raise click.ClickException("TELEGRAM_WEBHOOK_SECRET is not set; for example: "
                                   "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    if not _SECRET.fullmatch(secret):
        raise click.ClickException("TELEGRAM_WEBHOOK_SECRET may hold only A-Z, a-z, 0-9, _ and - (1 to 256 characters)")
    url = settings.public_url + WEBHOOK_PATH
    try:
        catalog = load_catalog(settings.campaigns_path)
    except CampaignFileError as exc:
        raise click.ClickException(f"the campaign file has problems: {exc}") from None
    try:
        info = asyncio.run(setup.set_webhook(gateway, url, secret, drop_pending_updates, catalog))
    except ProviderRefused as exc:
        raise click.ClickException(f"Telegram refused: {exc}") from None
    click.echo(f"@{info.username} now sends its updates to {info.url}")
    click.echo(f"updates: {', '.join(updates.ALLOWED_UPDATES)}")
    click.echo(f"command menu: /{', /'.join(setup.MENU_COMMANDS)} ({', '.join(catalog.languages)})")
    click.echo("pending updates were dropped" if drop_pending_updates else
               f"pending updates: {info.pending_update_count}")


@telegram_group.command("poll")
@click.option("--timeout", default=25, show_default=True, type=click.IntRange(0, 50),
              help="Seconds each getUpdates call waits for news.")
@pass_ctx
def poll(obj, timeout: int):
    """Long-poll for updates (development without a public URL); deletes the webhook first. Ctrl-C stops."""
    from bots.channels import ProviderRefused
    from bots.channels.telegram import polling

    from bots.catalog import CatalogWatcher

    gateway = _gateway(obj)
    rt = obj.ready_runtime()
    handle, blocked = handlers(rt, gateway)
    try:
        with CatalogWatcher(rt):  # campaign edits reach the bot while it polls
            asyncio.run(polling.poll(gateway, handle, blocked, say=click.echo, timeout=timeout))
    except KeyboardInterrupt:
        pass
    except ProviderRefused as exc:
        raise click.ClickException(f"Telegram refused: {exc}") from None
    finally:
        rt.db.dispose()
    click.echo("Stopped polling.")
