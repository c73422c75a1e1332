"""Twilio's webhooks: verify the signature, parse, call the service, answer TwiML."""

from __future__ import annotations

import logging
import threading
import time

from flask import Blueprint, Response, abort, current_app, request

from bots import broadcasts, service
from bots.channels import twilio_messaging as twilio
from storage.uow import retry_on_disconnect
from webhooks import runtime

bp = Blueprint("twilio", __name__, url_prefix="/webhooks/twilio")
log = logging.getLogger("firma.twilio")


def signed_url() -> str:
    """The URL Twilio signed: FIRMA_PUBLIC_URL + path (+ query), or the request's own URL."""
    base = runtime().settings.public_url
    if not base:
        return request.url
    query = request.query_string.decode("latin-1")
    return base + request.path + (f"?{query}" if query else "")


def verified_form():
    """The form, once X-Twilio-Signature matches it; 503 without credentials, 403 on a bad signature."""
    token = runtime().settings.twilio_auth_token
    if not token:
        abort(503, "Twilio is not configured: set TWILIO_AUTH_TOKEN")
    if request.mimetype != "application/x-www-form-urlencoded":
        abort(403, "not a Twilio request")
    form = request.form
    url = signed_url()
    if not twilio.signature_ok(token, url, form, request.headers.get("X-Twilio-Signature"),
                            request.headers.get("X-Twilio-Webhooks-Signature-Settings")):
        _warn_mismatch(url)
        abort(403, "invalid Twilio signature")
    return form


MISMATCH_WARNING_EVERY_S = 60.0


def _warn_mismatch(url: str) -> None:
    """One warning a minute per process (a forger, or every message of a misconfigured host, would
    otherwise fill the log), naming what the operator needs to fix a wrong FIRMA_PUBLIC_URL."""
    state = current_app.extensions.setdefault("firma.signature_mismatch", {"at": None, "since": 0,
                                                                             "lock": threading.Lock()})
    now = time.monotonic()
    with state["lock"]:
        if state["at"] is not None and now - state["at"] < MISMATCH_WARNING_EVERY_S:
            state["since"] += 1
            return
        state["at"], skipped, state["since"] = now, state["since"], 0
    seen = "; ".join(f"{k}: {v}" for k, v in request.headers.items() if k.lower().startswith("x-forwarded-")) or "none"
    log.warning("a Twilio signature did not match (403): checked against %s; X-Forwarded-* headers seen: %s; "
                "Host: %s.%s If Twilio calls another address, set FIRMA_PUBLIC_URL to it (scheme, host, port); "
                "behind a proxy, see FIRMA_TRUSTED_PROXIES", url, seen, request.host,
                f" ({skipped} more since the last warning)" if skipped else "")


@bp.post("/sms")
@bp.post("/whatsapp")
def inbound_sms():
    """An inbound message on any channel Twilio carries: its ``From`` says which (a Messaging Service
    has one inbound URL for all its senders), whichever path it came in on."""
    form = verified_form()
    try:
        channel = twilio.inbound_carrier(form)
        inbound = channel.parse_inbound(form)
    except twilio.BadPayload as exc:
        abort(400, str(exc))
    rt = runtime()
    outcome = retry_on_disconnect(lambda: service.handle_inbound(rt.db.uow(), inbound, rt.engine, rt.now(),
                                                                 forget_key=rt.settings.secret_key,
                                                                 timezone=rt.settings.timezone))
    return Response(channel.respond(outcome.messages), mimetype="application/xml")


@bp.post("/status")
def message_status():
    """Twilio status callbacks for broadcast messages: delivered / failed, and 21610 opts out."""
    form = verified_form()
    try:
        fields = twilio.parse_status(form)
    except ValueError as exc:
        abort(400, str(exc))
    rt = runtime()
    broadcasts.record_status(rt.db.uow(), now=rt.now(), **fields)
    return Response("", status=204)
