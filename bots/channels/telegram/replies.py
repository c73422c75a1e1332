"""Telegram replies: the service's outcome as Bot API calls (``Action`` values), with the buttons
and keyboards a conversation offers. The webhook answers one call in its response body; the
gateway (gateway.py) makes the others."""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bots.channels.telegram.updates import CAMPAIGN_BUTTON, CONTACT, GROUP, IGNORED, LANGUAGE_BUTTON, MESSAGE, Event
from bots.engine import Inbound, Reply
from bots.render import render_text

log = logging.getLogger("firma.telegram")

VARIANT = "telegram"  # the catalog's Telegram wording: keys ending in ".telegram"


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
    return html.escape(render_text(Reply(key, params), language, catalog, VARIANT), quote=False)


def language_keyboard(catalog) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(catalog.template("language_name", lang, VARIANT),
                                                       callback_data=LANGUAGE_BUTTON + lang)
                                  for lang in catalog.languages]])


def contact_keyboard(language: str, catalog) -> ReplyKeyboardMarkup:
    button = KeyboardButton(catalog.template("share_phone_button", language, VARIANT), request_contact=True)
    return ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)


def reply_markup(inbound: Inbound, outcome, catalog, from_button: bool = False):
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


def conversation_actions(chat_id, inbound: Inbound, outcome, catalog,
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


def actions(event: Event, outcome, catalog, username=None, webhook: bool = True) -> list[Action]:
    """The Bot API calls that answer ``event``, given what the service made of it (``outcome``; None
    when the event asked nothing of the service), in order. ``username()`` gives the bot's username
    (for the note to a group). ``webhook=False`` (polling): a redelivered update gets no reply again,
    as nothing was lost."""
    result: list[Action] = []
    if event.kind == MESSAGE:
        result = conversation_actions(event.chat_id, event.inbound, outcome, catalog, event.from_button,
                                      answer_lost=webhook)
    elif event.kind == CONTACT:
        result = [] if outcome.duplicate and not webhook else \
            [send_message(event.chat_id, text, ReplyKeyboardRemove()) for text in outcome.messages]
    elif event.kind == GROUP and outcome.first_group_post:
        name = username() if username else None
        if name is None:
            log.warning("group post %s: the bot's username is unknown, no note sent", event.update_id)
        else:
            result = [send_message(event.chat_id, group_note(catalog, name))]
    elif event.kind == IGNORED:
        log.info("update %s ignored: %s", event.update_id, event.note)
    if event.callback_query_id:
        result.append(answer_callback(event.callback_query_id))
    return result
