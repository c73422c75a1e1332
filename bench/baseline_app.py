"""The inbound benchmark's baseline: a bare Flask endpoint that parses the same form as the SMS
webhook and answers constant TwiML (and, for the data-scale bench, a campaign counter's constant JSON). Served by gunicorn exactly like the real app:
``gunicorn 'bench.baseline_app:create_app()'``."""

from __future__ import annotations

from flask import Flask, Response, abort, request

TWIML = ('<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks! Now reply with your '
         '5-digit ZIP code.</Message></Response>')


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhooks/twilio/sms")
    def inbound_sms():
        form = request.form
        if not form.get("MessageSid") or not form.get("From"):
            abort(400)
        return Response(TWIML, mimetype="application/xml")

    @app.get("/api/campaigns/<slug>")
    def campaign(slug: str):  # the data-scale bench's baseline: constant JSON, no database
        return {"slug": slug, "title": "End S-Comm Now", "signatures": 1000000, "goal": 100000}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
