"""How a member starts signing on each channel: whether the channel is configured, its label, the link
that opens the conversation with the keyword (also drawn as a QR code) and the "Text KEYWORD to
NUMBER" wording. One function per channel; the flyer and the public page only loop over ``ways``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import quote

from config.campaigns import Campaign, Catalog
from config.settings import Settings


@dataclass(frozen=True)
class Way:
    """One way to sign: ``uri`` opens the chat with the keyword ready (or the bot's start)."""

    channel: str
    label: str  # "Text message", "WhatsApp", "Telegram"
    instruction: str  # "Text SCOMM to 56565"
    uri: str
    open_label: str  # the public page's button: "Open my messages"
    keyword: str = ""
    number: str = ""  # as printed


def _digits(number: str) -> str:
    return re.sub(r"[^0-9+]", "", number)


def sms(settings: Settings, catalog: Catalog, campaign: Campaign, language: str) -> Way | None:
    number = settings.sms_number
    if not number:
        return None
    keyword = campaign.keyword(language)
    return Way("sms", catalog.phrase("channel_sms", language),
               catalog.phrase("signup_sms", language, keyword=keyword, number=number),
               f"sms:{_digits(number)}?body={quote(keyword)}", catalog.phrase("page_open_sms", language),
               keyword, number)


def whatsapp(settings: Settings, catalog: Catalog, campaign: Campaign, language: str) -> Way | None:
    sender = settings.twilio_whatsapp_from
    if not sender:
        return None
    keyword = campaign.keyword(language)
    e164 = sender.removeprefix("whatsapp:")
    return Way("whatsapp", catalog.phrase("channel_whatsapp", language),
               catalog.phrase("signup_whatsapp", language, keyword=keyword, number=e164),
               f"https://wa.me/{e164.lstrip('+')}?text={quote(keyword)}",
               catalog.phrase("page_open_whatsapp", language), keyword, e164)


def telegram(settings: Settings, catalog: Catalog, campaign: Campaign, language: str,
             bot_username: Callable[[], str | None]) -> Way | None:
    """``bot_username`` is asked only when TELEGRAM_BOT_USERNAME is unset (getMe, through the adapter)."""
    if not settings.telegram_bot_token and not settings.telegram_bot_username:
        return None
    bot = settings.telegram_bot_username or bot_username()
    if not bot:
        return None
    return Way("telegram", catalog.phrase("channel_telegram", language),
               catalog.phrase("signup_telegram", language, bot=bot),
               f"https://t.me/{bot}?start={quote(campaign.slug)}", catalog.phrase("page_open_telegram", language),
               "", "@" + bot)


def ways(settings: Settings, catalog: Catalog, campaign: Campaign, language: str,
         bot_username: Callable[[], str | None]) -> list[Way]:
    """The configured ways to sign, SMS first (the one that needs no app)."""
    found = [sms(settings, catalog, campaign, language), whatsapp(settings, catalog, campaign, language),
             telegram(settings, catalog, campaign, language, bot_username)]
    return [way for way in found if way is not None]


def telegram_username_lookup(settings: Settings) -> Callable[[], str | None]:
    """getMe through the Telegram adapter, for when TELEGRAM_BOT_USERNAME is not set."""
    def lookup() -> str | None:
        if not settings.telegram_bot_token:
            return None
        from bots.channels.telegram import Gateway

        return Gateway(settings.telegram_bot_token, settings.telegram_api_url).username()
    return lookup


def qr(uri: str):
    """The QR code of a link (segno; error correction M survives a creased or smudged flyer)."""
    import segno

    return segno.make(uri, error="m", micro=False)
