"""The SMS channel, through Twilio: a member texts from a phone number; replies are plain text folded
to GSM-7 (a Spanish message costs what an English one does); broadcasts keep quiet hours, carry the
STOP notice and are priced per segment."""

from __future__ import annotations

import re
from typing import Mapping, Sequence
from urllib.parse import quote

from bots import broadcast_plan as plan
from bots.channels import phones, twilio_messaging as twilio
from bots.channels.base import Signup, Simulated
from bots.engine import Inbound, Reply
from bots.render import compose
from config import gsm
from config.campaigns import Campaign, Catalog
from config.settings import Settings

MAX_SEGMENTS = 10  # Twilio refuses bodies over 1600 characters; ten segments is already a lot


class Sms:
    name = "sms"
    label = "SMS"
    text_variant = None
    language_hint = False
    commands = False
    phone_numbers = True
    quiet_hours = True
    provider_ids_unique = True
    segmented = True
    status_callbacks = True
    rate_variable = "FIRMA_SMS_RATE"
    twilio_prefix = ""  # Twilio writes an SMS number bare: "+13125550101"
    reply_window = None

    def rate(self, settings: Settings) -> float:
        return settings.sms_rate

    def sender(self, settings: Settings, concurrency: int = 200) -> twilio.TwilioSender:
        twilio.check_credentials(settings, "SMS broadcasts", [
            ("TWILIO_MESSAGING_SERVICE_SID", settings.twilio_messaging_service_sid),
            ("TWILIO_FROM_NUMBER", settings.twilio_from_number)])
        origin = ({"messaging_service_sid": settings.twilio_messaging_service_sid}
                  if settings.twilio_messaging_service_sid else {"from_": settings.twilio_from_number})
        return twilio.TwilioSender(self.name, settings, origin, concurrency)

    def parse_address(self, text: str) -> str | None:
        return phones.e164(text)

    def display_address(self, address: str) -> str:
        return address

    # --- inbound ---------------------------------------------------------------------------------

    def parse_inbound(self, form: Mapping, simulated: bool = False) -> Inbound:
        """Twilio's inbound SMS parameters -> Inbound; twilio_messaging.BadPayload when malformed."""
        sid, sender, body, media, opt = twilio.message_fields(form)
        address = phones.e164(sender)
        if address is None or not sender.startswith("+"):
            raise twilio.BadPayload("From is not an E.164 phone number")
        return Inbound(channel=self.name, address=address, text=body, provider_id=sid, provider_opt=opt,
                       media=media, simulated=simulated)

    def respond(self, messages: list[str]) -> str:
        return twilio.twiml(messages)

    def classify_error(self, status: int, code: int | None) -> plan.SendResult:
        return twilio.classify_error(status, code)

    # --- texts -----------------------------------------------------------------------------------

    def render(self, replies: Sequence[Reply], language: str, catalog: Catalog) -> list[str]:
        return [gsm.to_gsm(m) for m in compose(replies, language, catalog, variant=self.text_variant,
                                                full_intro=False, separator=" ")]

    def broadcast_text(self, template: str, name: str, stop_notice: str | None) -> str:
        return gsm.to_gsm(plan.with_stop_notice(template, name, stop_notice))

    def check_broadcast(self, template: str, language: str, stop_notice: str | None) -> plan.TextCheck:
        sample = self.broadcast_text(template, plan.SAMPLE_NAME, stop_notice)
        enc, n = gsm.segments(sample)
        if n > MAX_SEGMENTS:
            raise plan.BroadcastError(f"the {language} SMS takes {n} segments ({len(sample)} characters); "
                                      f"the most is {MAX_SEGMENTS}")
        return plan.TextCheck(language, self.name, sample, enc, n, len(sample))

    def signup(self, settings: Settings, catalog: Catalog, campaign: Campaign, language: str) -> Signup | None:
        number = settings.sms_number  # as the organization prints it: "56565", "(312) 555-0100"
        if not number:
            return None
        keyword = campaign.keyword(language)
        org = catalog.organization
        # A printed call to action for SMS carries the programme's disclosure (carriers audit it).
        disclosure = catalog.template("disclosure", language).format_map({
            "program": org.program.get(language) or org.program["en"],
            "frequency": org.frequency.get(language) or org.frequency["en"]})
        return Signup(self.name, catalog.phrase("channel_sms", language),
                      catalog.phrase("signup_sms", language, keyword=keyword, number=number),
                      f"sms:{re.sub(r'[^0-9+]', '', number)}?body={quote(keyword)}",
                      catalog.phrase("page_open_sms", language), keyword, number,
                      headline=catalog.phrase("flyer_text_to", language, keyword=keyword, number=number),
                      fine_print=disclosure)

    # --- the simulator ---------------------------------------------------------------------------

    def simulate(self, address: str, text: str, language: str | None, button: str | None) -> Inbound:
        if button is not None:
            raise ValueError("SMS has no buttons")
        return Inbound(channel=self.name, address=address, text=text, simulated=True)

    def simulated_reply(self, inbound: Inbound, outcome, catalog: Catalog, from_button: bool = False) -> Simulated:
        return Simulated(outcome.messages, outcome.language)


SMS = Sms()
