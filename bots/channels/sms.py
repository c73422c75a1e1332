"""The SMS channel (Twilio): inbound form <-> engine values, TwiML replies, signature checks.

With bots/channels/telegram.py, the only modules that import the twilio library.
"""

from __future__ import annotations

import re
from typing import Mapping

from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from bots.engine import Inbound

CHANNEL = "sms"
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
MAX_BODY = 1600  # Twilio's own limit for one inbound message


class BadPayload(ValueError):
    """The request is not a Twilio message we can read; the text says what is wrong (for a 400)."""


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


def _one(form: Mapping, name: str) -> str | None:
    getlist = getattr(form, "getlist", None)
    values = getlist(name) if getlist else ([form[name]] if name in form else [])
    if len(values) > 1:
        raise BadPayload(f"{name} is given {len(values)} times")
    return values[0] if values else None


def parse_inbound(form: Mapping, simulated: bool = False) -> Inbound:
    """Twilio's inbound message parameters -> Inbound. Raises BadPayload when required fields are wrong."""
    sid = _one(form, "MessageSid") or _one(form, "SmsSid")
    sender = (_one(form, "From") or "").strip()
    if not sid:
        raise BadPayload("MessageSid is missing")
    if not _SID.fullmatch(sid):
        raise BadPayload("MessageSid is not a Twilio message SID")
    if not sender:
        raise BadPayload("From is missing")
    if not _E164.fullmatch(sender):
        raise BadPayload("From is not an E.164 phone number")
    body = _one(form, "Body") or ""
    try:
        media = int(_one(form, "NumMedia") or 0) > 0
    except ValueError:
        raise BadPayload("NumMedia is not a number") from None
    return Inbound(channel=CHANNEL, address=sender, text=body[:MAX_BODY], provider_id=sid,
                   provider_opt=(_one(form, "OptOutType") or None), media=media, simulated=simulated)


def twiml(messages: list[str]) -> str:
    """The replies as TwiML, one <Message> each (twilio's MessagingResponse does the escaping)."""
    response = MessagingResponse()
    for text in messages:
        response.message(text)
    return str(response)
