"""Signing test webhooks exactly as Twilio does: twilio's own RequestValidator computes the header."""

from __future__ import annotations

import itertools
import secrets
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_URL = "https://firma.example.org"
SMS_PATH = "/webhooks/twilio/sms"
_counter = itertools.count(1)


def new_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


def sign(params: dict | list, url: str = PUBLIC_URL + SMS_PATH, token: str = TOKEN) -> str:
    if isinstance(params, list):  # repeated keys
        from werkzeug.datastructures import MultiDict

        params = MultiDict(params)
    return RequestValidator(token).compute_signature(url, params)


def sms_params(sender: str, body: str, sid: str | None = None, **extra) -> dict:
    params = {
        "MessageSid": sid or new_sid(), "SmsSid": sid or "", "AccountSid": "AC" + "0" * 32,
        "MessagingServiceSid": "MG" + "1" * 32, "From": sender, "To": "+15005550006", "Body": body,
        "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received", "ApiVersion": "2010-04-01",
        "FromCountry": "US", "FromState": "IL", "FromCity": "CHICAGO", "FromZip": "60601",
    }
    params["SmsSid"] = params["MessageSid"]
    params.update(extra)
    return params


def post_sms(client, sender: str, body: str, sid: str | None = None, url: str = PUBLIC_URL + SMS_PATH,
             token: str = TOKEN, **extra):
    """POST a signed inbound SMS with a Flask test client; returns the response."""
    params = sms_params(sender, body, sid, **extra)
    return client.post(SMS_PATH, data=urlencode(params), content_type="application/x-www-form-urlencoded",
                       headers={"X-Twilio-Signature": sign(params, url, token)})


def messages(response) -> list[str]:
    """The <Message> texts of a TwiML response."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(response.data if hasattr(response, "data") else response)
    assert root.tag == "Response", root.tag
    return [m.text or "" for m in root.findall("Message")]


WHATSAPP_PATH = "/webhooks/twilio/whatsapp"
WHATSAPP_NUMBER = "whatsapp:+14155238886"  # the organization's WhatsApp sender (Twilio's sandbox number)


def whatsapp_params(phone: str, body: str, sid: str | None = None, profile: str = "Ana", **extra) -> dict:
    """An inbound WhatsApp message as Twilio posts it: ``From``/``To`` with "whatsapp:", ``WaId`` (the
    number's digits), ``ProfileName``, ``MessageType``, ``NumMedia``; extra fields (ButtonPayload,
    ButtonText, MediaUrl0, Latitude...) as given."""
    sid = sid or new_sid()
    params = {
        "SmsMessageSid": sid, "NumMedia": "0", "ProfileName": profile, "MessageType": "text",
        "SmsSid": sid, "WaId": phone.lstrip("+"), "SmsStatus": "received", "Body": body,
        "To": WHATSAPP_NUMBER, "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid,
        "AccountSid": "AC" + "0" * 32, "From": "whatsapp:" + phone, "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def post_whatsapp(client, phone: str, body: str, sid: str | None = None, path: str = WHATSAPP_PATH,
                  token: str = TOKEN, params: dict | None = None, **extra):
    """POST a signed inbound WhatsApp message (to ``path``: the WhatsApp or the SMS webhook)."""
    params = params or whatsapp_params(phone, body, sid, **extra)
    return client.post(path, data=urlencode(params), content_type="application/x-www-form-urlencoded",
                       headers={"X-Twilio-Signature": sign(params, PUBLIC_URL + path, token)})
