"""Twilio's webhooks: verify the signature, parse, call the service, answer TwiML."""

from __future__ import annotations

from flask import Blueprint, Response, abort, request

from bots import broadcasts, service
from bots.channels import twilio_messaging as twilio
from bots.channels.sms import SMS
from storage.uow import retry_on_disconnect
from webhooks import runtime

bp = Blueprint("twilio", __name__, url_prefix="/webhooks/twilio")


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
        abort(503, "SMS is not configured: set TWILIO_AUTH_TOKEN")
    if request.mimetype != "application/x-www-form-urlencoded":
        abort(403, "not a Twilio request")
    form = request.form
    if not twilio.signature_ok(token, signed_url(), form, request.headers.get("X-Twilio-Signature"),
                            request.headers.get("X-Twilio-Webhooks-Signature-Settings")):
        abort(403, "invalid Twilio signature")
    return form


@bp.post("/sms")
def inbound_sms():
    form = verified_form()
    try:
        inbound = SMS.parse_inbound(form)
    except twilio.BadPayload as exc:
        abort(400, str(exc))
    rt = runtime()
    outcome = retry_on_disconnect(lambda: service.handle_inbound(rt.db.uow(), inbound, rt.engine, rt.now(),
                                                                 forget_key=rt.settings.secret_key,
                                                                 timezone=rt.settings.timezone))
    return Response(SMS.respond(outcome.messages), mimetype="application/xml")


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
