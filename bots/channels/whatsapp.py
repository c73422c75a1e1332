"""The WhatsApp channel, through Twilio's Messaging API: the same account, webhook, signature check
and REST sender as SMS (twilio_messaging.py), with WhatsApp's own rules. Addresses are E.164 numbers
(Twilio writes them "whatsapp:+1312..."), and the same number on SMS is the same person. Texts keep
their accents and may carry the campaign's full statement; the first contact gets a one-line opt-in
note; STOP is firma's to honour (WhatsApp has no carrier STOP). Free text reaches a member only
within 24 hours of their last message; after that only an approved template does (Content API).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Mapping, Sequence
from urllib.parse import quote

from bots import broadcast_plan as plan
from bots.channels import phones, twilio_messaging as twilio
from bots.channels.base import Signup, Simulated
from bots.engine import Inbound, Reply
from bots.render import compose, split_long
from config.campaigns import Campaign, Catalog
from config.settings import Settings

PREFIX = "whatsapp:"
MAX_BODY = 1600  # Twilio's limit for one WhatsApp body; longer replies go as several messages
# Twilio's WhatsApp error codes (https://www.twilio.com/docs/errors/<code>)
OUTSIDE_WINDOW = 63016  # free text outside the 24-hour window: a template is needed
NOT_ON_WHATSAPP = (63003, 63024)  # not a WhatsApp number / invalid recipient
RATE_LIMITED = (63018, 429, 20429)  # the sender's rate or Twilio's: the channel waits
PAUSE_SECONDS = 5.0
# What Twilio reports a WhatsApp message to be when it is not text (its MessageType).
NOT_TEXT = frozenset({"image", "audio", "video", "document", "sticker", "location", "contacts", "unsupported"})


class WhatsAppSender(twilio.TwilioSender):
    """Twilio's REST sender with "whatsapp:" addresses, WhatsApp's error codes, and templates."""

    prefix = PREFIX

    @staticmethod
    def classify(status: int, code: int | None) -> plan.SendResult:
        return classify_error(status, code)

    async def send_template(self, to: str, content_sid: str, variables: Mapping[str, str]) -> plan.SendResult:
        """An approved template (Content API): the only message WhatsApp takes outside the window."""
        return await self._create(to=self.prefix + to, content_sid=content_sid,
                                  content_variables=json.dumps(dict(variables), ensure_ascii=False))


def classify_error(status: int, code: int | None) -> plan.SendResult:
    if code == OUTSIDE_WINDOW:
        return plan.SendResult(plan.OUTSIDE_WINDOW, error_code=str(code))
    if code in NOT_ON_WHATSAPP:
        return plan.SendResult(plan.UNREACHABLE, error_code=str(code))
    if code in RATE_LIMITED or status == 429:
        return plan.SendResult(plan.PAUSE, error_code=str(code or status), retry_after=PAUSE_SECONDS)
    return twilio.classify_error(status, code)


class WhatsApp:
    name = "whatsapp"
    label = "WhatsApp"
    text_variant = "whatsapp"
    language_hint = False
    commands = False
    phone_numbers = True
    quiet_hours = True
    segmented = False
    status_callbacks = True
    provider_ids_unique = True  # a MessageSid, never reused: kept long after purge against replays
    rate_variable = "FIRMA_WHATSAPP_RATE"
    twilio_prefix = PREFIX
    reply_window = timedelta(hours=24)  # free text only this long after the member's last message

    def rate(self, settings: Settings) -> float:
        return settings.whatsapp_rate

    def sender(self, settings: Settings, concurrency: int = 200) -> WhatsAppSender:
        twilio.check_credentials(settings, "WhatsApp broadcasts", [("TWILIO_WHATSAPP_FROM",
                                                                    settings.twilio_whatsapp_from)])
        return WhatsAppSender(self.name, settings, {"from_": settings.twilio_whatsapp_from}, concurrency)

    def parse_address(self, text: str) -> str | None:
        return phones.e164((text or "").strip().removeprefix(PREFIX))

    def display_address(self, address: str) -> str:
        return address

    def classify_error(self, status: int, code: int | None) -> plan.SendResult:
        return classify_error(status, code)

    # --- inbound ---------------------------------------------------------------------------------

    def parse_inbound(self, form: Mapping, simulated: bool = False) -> Inbound:
        """Twilio's inbound WhatsApp parameters -> Inbound; twilio_messaging.BadPayload when malformed.

        A quick-reply button's ``ButtonPayload`` (set to a keyword in the template: FIRMA, STOP) is read
        before its ``Body``/``ButtonText`` (the button's words, in whatever language the template has).
        Images, voice notes, stickers and locations are not text: the conversation re-prompts."""
        sid, sender, body, media, opt = twilio.message_fields(form)
        number = sender.removeprefix(PREFIX)
        if not number.startswith("+"):
            # a business-scoped user id ("whatsapp:US.13491208655302741918") carries no phone number
            raise twilio.BadPayload("From is a WhatsApp user id without a phone number; firma needs the number")
        address = phones.e164(number)
        if address is None:
            raise twilio.BadPayload("From is not a WhatsApp phone number")
        payload = (twilio.one(form, "ButtonPayload") or "").strip()
        text = payload or body or (twilio.one(form, "ButtonText") or "")
        kind = (twilio.one(form, "MessageType") or "").strip().lower()
        located = bool(twilio.one(form, "Latitude"))
        return Inbound(channel=self.name, address=address, text=text[:twilio.MAX_BODY], provider_id=sid,
                       provider_opt=opt, media=media or located or kind in NOT_TEXT, simulated=simulated)

    def respond(self, messages: list[str]) -> str:
        return twilio.twiml(messages)

    # --- texts -----------------------------------------------------------------------------------

    def render(self, replies: Sequence[Reply], language: str, catalog: Catalog) -> list[str]:
        messages = compose(replies, language, catalog, variant=self.text_variant, full_intro=True, separator="\n\n")
        return [part for m in messages for part in split_long(m, MAX_BODY)]

    def broadcast_text(self, template: str, name: str, stop_notice: str | None) -> str:
        return plan.with_stop_notice(template, name, stop_notice)

    def check_broadcast(self, template: str, language: str, stop_notice: str | None) -> plan.TextCheck:
        sample = self.broadcast_text(template, plan.SAMPLE_NAME, stop_notice)
        if len(sample) > MAX_BODY:
            raise plan.BroadcastError(f"the {language} WhatsApp message has {len(sample)} characters; "
                                      f"the most is {MAX_BODY}")
        return plan.TextCheck(language, self.name, sample, "text", 1, len(sample))

    def template_variables(self, name: str) -> dict[str, str]:
        """The Content API variables of a broadcast template: {{1}} is the member's first name."""
        return {"1": plan.first_name(name) or "friend"}

    def signup(self, settings: Settings, catalog: Catalog, campaign: Campaign, language: str) -> Signup | None:
        if not settings.twilio_whatsapp_from:
            return None
        keyword = campaign.keyword(language)
        number = settings.twilio_whatsapp_from.removeprefix(PREFIX)
        printed = phones.for_print(number)
        return Signup(self.name, catalog.phrase("channel_whatsapp", language),
                      catalog.phrase("signup_whatsapp", language, keyword=keyword, number=printed),
                      f"https://wa.me/{re.sub(r'[^0-9]', '', number)}?text={quote(keyword)}",
                      catalog.phrase("page_open_whatsapp", language), keyword, printed)

    # --- the simulator ---------------------------------------------------------------------------

    def simulate(self, address: str, text: str, language: str | None, button: str | None) -> Inbound:
        if button is not None:
            raise ValueError("the WhatsApp simulator has no buttons")
        return Inbound(channel=self.name, address=address, text=text, simulated=True)

    def simulated_reply(self, inbound: Inbound, outcome, catalog: Catalog, from_button: bool = False) -> Simulated:
        return Simulated(outcome.messages, outcome.language)


WHATSAPP = WhatsApp()
