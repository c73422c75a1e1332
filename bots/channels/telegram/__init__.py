"""The Telegram channel, through the Bot API: a member chats with the organization's bot (/start,
buttons, an optional shared phone number); replies are HTML with the campaign's full statement;
broadcasts have no quiet hours and no per-message price.

The rooms: updates.py reads updates; replies.py writes the answers as Bot API calls; gateway.py makes
those calls; sender.py sends broadcasts; setup.py registers the webhook; polling.py long-polls.
No python-telegram-bot ``Application``/``ConversationHandler``: state stays in the database.
"""

from __future__ import annotations

import html
import os
import threading
from typing import Sequence
from urllib.parse import quote

# python-telegram-bot 22.2+ gives durations (RetryAfter.retry_after) as timedeltas when PTB_TIMEDELTA is set,
# and warns on every 429 otherwise; v23 makes timedeltas the only behaviour. Opt in before its first use:
# gateway.py and sender.py read timedeltas (and still ints, for older versions).
os.environ.setdefault("PTB_TIMEDELTA", "true")

from bots import broadcast_plan as plan  # noqa: E402
from bots.channels.base import ProviderRefused, Signup, Simulated
from bots.channels.telegram import replies, updates
from bots.channels.telegram.sender import TelegramSender
from bots.engine import Inbound, Reply
from bots.render import compose, split_long
from config.campaigns import Campaign, Catalog
from config.settings import Settings

MESSAGE_LIMIT = 4096  # characters in one Bot API message
_MAX_USER_ID = 2 ** 63 - 1


def _escape(reply: Reply, text: str) -> str:
    text = html.escape(text, quote=False)
    if reply.key == "campaign_intro":
        title, _, rest = text.partition("\n\n")
        text = f"<b>{title}</b>\n\n{rest}"
    return text


_usernames: dict[str, str] = {}  # the bot's username per token: asked of getMe once per process
_usernames_lock = threading.Lock()


class Telegram:
    name = updates.CHANNEL
    label = "Telegram"
    text_variant = replies.VARIANT
    language_hint = True
    commands = True
    phone_numbers = False
    quiet_hours = False
    provider_ids_unique = False
    segmented = False
    status_callbacks = False
    rate_variable = "FIRMA_TELEGRAM_RATE"

    def rate(self, settings: Settings) -> float:
        return settings.telegram_rate

    def sender(self, settings: Settings, concurrency: int = 200) -> TelegramSender:
        return TelegramSender(settings, concurrency)

    def parse_address(self, text: str) -> str | None:
        """A Telegram user id: digits only."""
        text = (text or "").strip()
        if text.isascii() and text.isdigit() and 0 < int(text) <= _MAX_USER_ID:
            return str(int(text))
        return None

    def display_address(self, address: str) -> str:
        return address

    # --- inbound and answers -------------------------------------------------------------------------

    def parse(self, data) -> updates.Event:
        """One update (decoded JSON) -> Event; updates.BadUpdate for what is not an update."""
        return updates.parse_update(data)

    def answer(self, event: updates.Event, outcome, catalog: Catalog, username=None,
               webhook: bool = True) -> list[replies.Action]:
        return replies.actions(event, outcome, catalog, username, webhook)

    # --- texts ---------------------------------------------------------------------------------------

    def render(self, replies_: Sequence[Reply], language: str, catalog: Catalog) -> list[str]:
        messages = compose(replies_, language, catalog, variant=self.text_variant, full_intro=True,
                           separator="\n\n", escape=_escape)
        return [part for m in messages for part in split_long(m, MESSAGE_LIMIT)]

    def broadcast_text(self, template: str, name: str, stop_notice: str | None) -> str:
        # Sent without parse_mode, so a name arrives exactly as typed; /stop is in the menu, no notice.
        return plan.personalise(template, name)

    def check_broadcast(self, template: str, language: str, stop_notice: str | None) -> plan.TextCheck:
        sample = self.broadcast_text(template, plan.SAMPLE_NAME, stop_notice)
        if len(sample) > MESSAGE_LIMIT - 200:  # leave room for a long name
            raise plan.BroadcastError(f"the {language} Telegram text has {len(sample)} characters; the most is "
                                      f"{MESSAGE_LIMIT - 200}")
        return plan.TextCheck(language, self.name, sample, "text", 1, len(sample))

    def bot_username(self, settings: Settings) -> str | None:
        """TELEGRAM_BOT_USERNAME, else the bot's own answer to getMe (asked once per process)."""
        if settings.telegram_bot_username:
            return settings.telegram_bot_username
        token = settings.telegram_bot_token
        if not token:
            return None
        with _usernames_lock:
            if token not in _usernames:
                from bots.channels.telegram.gateway import Gateway

                name = Gateway(token, settings.telegram_api_url).username()
                if name:
                    _usernames[token] = name
            return _usernames.get(token)

    def signup(self, settings: Settings, catalog: Catalog, campaign: Campaign, language: str) -> Signup | None:
        if not settings.telegram_bot_token and not settings.telegram_bot_username:
            return None
        bot = self.bot_username(settings)
        if not bot:
            raise ProviderRefused("Telegram did not tell the bot's username (getMe failed); "
                                  "set TELEGRAM_BOT_USERNAME or check TELEGRAM_BOT_TOKEN")
        return Signup(self.name, catalog.phrase("channel_telegram", language),
                      catalog.phrase("signup_telegram", language, bot=bot),
                      f"https://t.me/{bot}?start={quote(campaign.slug)}",
                      catalog.phrase("page_open_telegram", language), "", "@" + bot)

    # --- the simulator -------------------------------------------------------------------------------

    def simulate(self, address: str, text: str, language: str | None, button: str | None) -> Inbound:
        """The same values a real update becomes: a pressed button is a callback query."""
        if button is not None:
            inbound = updates.button_inbound(button, address, language_hint=language, simulated=True)
            if inbound is None:
                raise ValueError("unknown button")
            return inbound
        return updates.text_inbound(text, address, language_hint=language, simulated=True)

    def simulated_reply(self, inbound: Inbound, outcome, catalog: Catalog, from_button: bool = False) -> Simulated:
        markup = replies.reply_markup(inbound, outcome, catalog, from_button=from_button)
        return Simulated(outcome.messages, outcome.language, html=True, buttons=replies.inline_buttons(markup))


TELEGRAM = Telegram()
