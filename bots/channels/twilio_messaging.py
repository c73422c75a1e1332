"""Twilio's Messaging API: what the channels Twilio carries share (the signature check, the inbound
form, TwiML, status callbacks, the REST sender and its errors). Each channel module (sms.py) says
what is its own: its sender address, its texts, its policy.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Mapping

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from bots.broadcast_plan import FAILED, OPTED_OUT, PAUSE, RETRY, SENT, UNKNOWN, SendResult
from bots.channels.base import CREDENTIALS_PAUSE_S, Channel, NotConfigured
from config.settings import Settings

STATUS_PATH = "/webhooks/twilio/status"
MAX_BODY = 1600  # Twilio's own limit for one inbound message
UNSUBSCRIBED = 21610  # "Attempt to send to unsubscribed recipient": the number sent STOP to us
TOO_MANY_REQUESTS = 20429
_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")


class BadPayload(ValueError):
    """The request is not a Twilio message we can read; the text says what is wrong (for a 400)."""


# --- inbound ------------------------------------------------------------------------------------------


def signature_ok(auth_token: str, url: str, params, signature: str | None, settings_header: str | None = None) -> bool:
    """Twilio's own check (twilio.RequestValidator) of X-Twilio-Signature for ``url`` and form ``params``."""
    if not signature:
        return False
    return RequestValidator(auth_token).validate(url, _Params(params), signature,
                                                 algorithm=get_signature_algorithm(settings_header))


class _Params:
    """A form as twilio's validator reads it best: it asks each parameter's values of ``getall`` first,
    then ``getlist``, then ``[]``, catching AttributeError in between; a Flask form has ``getlist``,
    so it paid two exceptions per parameter, twice per request (half the check's time)."""

    __slots__ = ("_form", "getall")

    def __init__(self, form):
        self._form = form
        self.getall = getattr(form, "getlist", None) or (lambda name: [form[name]])

    def __iter__(self):
        return iter(self._form)

    def __len__(self) -> int:
        return len(self._form)


def one(form: Mapping, name: str) -> str | None:
    """The single value of form field ``name`` (None when absent); BadPayload when it is repeated."""
    getlist = getattr(form, "getlist", None)
    values = getlist(name) if getlist else ([form[name]] if name in form else [])
    if len(values) > 1:
        raise BadPayload(f"{name} is given {len(values)} times")
    return values[0] if values else None


def message_fields(form: Mapping) -> tuple[str, str, str, bool, str | None]:
    """(MessageSid, From, Body, has media, OptOutType) of an inbound message; BadPayload when the
    required ones are missing or malformed. ``From`` is returned as sent (the channel reads it)."""
    sid = one(form, "MessageSid") or one(form, "SmsSid")
    sender = (one(form, "From") or "").strip()
    if not sid:
        raise BadPayload("MessageSid is missing")
    if not _SID.fullmatch(sid):
        raise BadPayload("MessageSid is not a Twilio message SID")
    if not sender:
        raise BadPayload("From is missing")
    body = one(form, "Body") or ""
    try:
        media = int(one(form, "NumMedia") or 0) > 0
    except ValueError:
        raise BadPayload("NumMedia is not a number") from None
    return sid, sender, body[:MAX_BODY], media, (one(form, "OptOutType") or None)


def carrier(address: str | None) -> Channel | None:
    """The Twilio-carried channel of an address as Twilio writes it ("+1312...": SMS,
    "whatsapp:+1312...": WhatsApp): the registered channel with the longest ``twilio_prefix`` it
    starts with. One webhook serves them all, as one Messaging Service has one inbound URL."""
    from bots import channels

    found = None
    for channel in channels.channels():
        prefix = getattr(channel, "twilio_prefix", None)
        if prefix is not None and (address or "").startswith(prefix) and \
                (found is None or len(prefix) > len(found.twilio_prefix)):
            found = channel
    return found


def inbound_carrier(form: Mapping) -> Channel:
    """The channel an inbound message came on, from its ``From``; BadPayload when it is none we carry."""
    channel = carrier((one(form, "From") or "").strip())
    if channel is None:
        raise BadPayload("From is not an address firma reads")
    return channel


def twiml(messages: list[str]) -> str:
    """The replies as TwiML, one <Message> each (twilio's MessagingResponse does the escaping)."""
    response = MessagingResponse()
    for text in messages:
        response.message(text)
    return str(response)


def parse_status(form: Mapping) -> dict:
    """A Twilio status callback's fields, with the channel and address of its recipient; ValueError
    when it is not one."""
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not _MESSAGE_SID.fullmatch(sid):
        raise ValueError("MessageSid is missing or not a Twilio message SID")
    if not status:
        raise ValueError("MessageStatus is missing")
    code = (form.get("ErrorCode") or "").strip() or None
    if code is not None and not (code.isascii() and code.isdigit() and len(code) <= 10):
        raise ValueError("ErrorCode is not a Twilio error code")
    to = (form.get("To") or "").strip() or None
    channel = carrier(to or "")
    if channel is None:
        raise ValueError("To is not an address firma sends to")
    effect = channel.classify_error(400, int(code)).kind if code is not None else None
    return {"message_sid": sid, "status": status, "error_code": code,
            "to": to.removeprefix(channel.twilio_prefix) if to else None, "channel": channel.name, "effect": effect}


# --- sending -------------------------------------------------------------------------------------------


def check_credentials(settings: Settings, what: str, sender_settings: list[tuple[str, str | None]]) -> None:
    """NotConfigured naming every missing variable: the account's credentials and the sender's."""
    missing = [name for name, value in (("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                                        ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token)) if not value]
    if not any(value for _, value in sender_settings):
        missing.append(" or ".join(name for name, _ in sender_settings))
    if missing:
        raise NotConfigured(f"{what} need " + ", ".join(missing))


class TwilioSender:
    """Sends through Twilio's REST API with the twilio library's asyncio client. One per worker event
    loop: ``async with TwilioSender(...) as sender: await sender.send(to, body)``. ``origin`` is the
    sender's parameters (a Messaging Service, or a From number)."""

    prefix = ""  # what Twilio's To needs before the E.164 number ("whatsapp:")

    def __init__(self, channel: str, settings: Settings, origin: dict[str, str], concurrency: int = 200,
                 timeout: float = 15.0):
        self.channel = channel
        self.settings = settings
        self.concurrency = concurrency
        self.timeout = timeout
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None
        self._origin = dict(origin)
        if settings.public_url:
            self._origin["status_callback"] = settings.public_url + STATUS_PATH

    async def __aenter__(self) -> "TwilioSender":
        # The library logs every request at INFO; a broadcast makes millions: keep its log to warnings.
        quiet = logging.getLogger("firma.twilio.http")
        quiet.setLevel(logging.WARNING)
        self._http = AsyncTwilioHttpClient(timeout=self.timeout, logger=quiet)
        # The library's session allows 100 connections; give it as many as we keep calls in flight.
        await self._http.session.close()
        self._http.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.concurrency))
        self._client = Client(self.settings.twilio_account_sid, self.settings.twilio_auth_token,
                              http_client=self._http)
        self._client.api.base_url = self.settings.twilio_api_url
        return self

    async def __aexit__(self, *exc) -> None:
        if self._http is not None:
            await self._http.close()

    async def send(self, to: str, body: str) -> SendResult:
        return await self._create(to=self.prefix + to, body=body)

    @staticmethod
    def classify(status: int, code: int | None) -> SendResult:
        return classify_error(status, code)

    async def _create(self, **params) -> SendResult:
        try:
            msg = await self._client.messages.create_async(**params, **self._origin)
        except TwilioRestException as exc:
            return self.classify(exc.status, exc.code)
        except aiohttp.ClientConnectorError as exc:  # never reached Twilio: safe to try again
            return SendResult(RETRY, error_code=f"connect:{exc.__class__.__name__}"[:32])
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            # The request may have reached Twilio: we cannot know if it was sent, so it is not resent.
            return SendResult(UNKNOWN, error_code=f"net:{exc.__class__.__name__}"[:32])
        return SendResult(SENT, provider_id=msg.sid)


AUTHENTICATE = 20003  # a wrong account SID or auth token


def classify_error(status: int, code: int | None) -> SendResult:
    if status == 401 or code == AUTHENTICATE:  # no message can go out: pause the channel, fail nothing
        return SendResult(PAUSE, error_code=str(code or status), retry_after=CREDENTIALS_PAUSE_S,
                          cause="Twilio refused TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN (check them in the Twilio Console)")
    if code == UNSUBSCRIBED:
        return SendResult(OPTED_OUT, error_code=str(UNSUBSCRIBED), cause=f"twilio:{UNSUBSCRIBED}")
    if status >= 500 or status == 429 or code == TOO_MANY_REQUESTS:
        return SendResult(RETRY, error_code=str(code or status))
    return SendResult(FAILED, error_code=str(code or status))
