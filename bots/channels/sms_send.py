"""Sending broadcast SMS through Twilio's REST API with the twilio library's asyncio client.

The sending side of the SMS channel (bots/channels/sms.py is the receiving side). One SmsSender per
worker event loop: ``async with SmsSender(settings, concurrency) as sender: await sender.send(...)``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Mapping

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bots.broadcast_plan import FAILED, OPTED_OUT, RETRY, SENT, UNKNOWN, SendResult
from config.settings import Settings

CHANNEL = "sms"
STATUS_PATH = "/webhooks/twilio/status"
UNSUBSCRIBED = 21610  # "Attempt to send to unsubscribed recipient": the number texted STOP to us
TOO_MANY_REQUESTS = 20429
_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")


class NotConfigured(RuntimeError):
    """Twilio credentials or a sender are missing; the message names the variables."""


def check_settings(settings: Settings) -> None:
    missing = [name for name, value in (("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                                        ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token)) if not value]
    if not (settings.twilio_messaging_service_sid or settings.twilio_from_number):
        missing.append("TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER")
    if missing:
        raise NotConfigured("SMS broadcasts need " + ", ".join(missing))


class SmsSender:
    channel = CHANNEL

    def __init__(self, settings: Settings, concurrency: int = 200, timeout: float = 15.0):
        check_settings(settings)
        self.settings = settings
        self.concurrency = concurrency
        self.timeout = timeout
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None
        self._sender: dict[str, str] = (
            {"messaging_service_sid": settings.twilio_messaging_service_sid}
            if settings.twilio_messaging_service_sid else {"from_": settings.twilio_from_number})
        if settings.public_url:
            self._sender["status_callback"] = settings.public_url + STATUS_PATH

    async def __aenter__(self) -> "SmsSender":
        # The library logs every request at INFO; a broadcast makes millions: keep its log to warnings.
        quiet = logging.getLogger("firma.sms_send.http")
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
        try:
            msg = await self._client.messages.create_async(to=to, body=body, **self._sender)
        except TwilioRestException as exc:
            return classify_error(exc.status, exc.code)
        except aiohttp.ClientConnectorError as exc:  # never reached Twilio: safe to try again
            return SendResult(RETRY, error_code=f"connect:{exc.__class__.__name__}"[:32])
        except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
            # The request may have reached Twilio: we cannot know if it was sent, so it is not resent.
            return SendResult(UNKNOWN, error_code=f"net:{exc.__class__.__name__}"[:32])
        return SendResult(SENT, provider_id=msg.sid)


def classify_error(status: int, code: int | None) -> SendResult:
    if code == UNSUBSCRIBED:
        return SendResult(OPTED_OUT, error_code=str(UNSUBSCRIBED))
    if status >= 500 or status == 429 or code == TOO_MANY_REQUESTS:
        return SendResult(RETRY, error_code=str(code or status))
    return SendResult(FAILED, error_code=str(code or status))


def parse_status(form: Mapping) -> dict:
    """A Twilio status callback's fields; ValueError when it is not one."""
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not _SID.fullmatch(sid):
        raise ValueError("MessageSid is missing or not a Twilio message SID")
    if not status:
        raise ValueError("MessageStatus is missing")
    code = (form.get("ErrorCode") or "").strip() or None
    if code is not None and not (code.isascii() and code.isdigit() and len(code) <= 10):
        raise ValueError("ErrorCode is not a Twilio error code")
    return {"message_sid": sid, "status": status, "error_code": code, "to": (form.get("To") or "").strip() or None}
