"""The inbound benchmark's durable floor: the least any correct SMS webhook must do, served by gunicorn
exactly like the real app (``gunicorn 'bench.durable_app:create_app()'``).

It checks the Twilio signature with twilio's ``RequestValidator``, writes the MessageSid with one
``INSERT … ON CONFLICT DO NOTHING`` and COMMIT on the same database (firma's engine: SQLite with its
pragmas and writer queue, or PostgreSQL straight, prepares on), and answers constant TwiML. firma's
ratio to it says what the conversation itself costs beyond durability; the bare Flask baseline says
what the web stack costs.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from flask import Flask, Response, abort, request
from sqlalchemy.dialects import postgresql, sqlite
from twilio.request_validator import RequestValidator

from bench.baseline_app import TWIML
from storage.db import make_engine
from storage.models import ProcessedMessage


def create_app() -> Flask:
    app = Flask(__name__)
    engine = make_engine(os.environ["FIRMA_DATABASE_URL"], pooler="none", pool_pre_ping=False)
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    claim = insert(ProcessedMessage).on_conflict_do_nothing(index_elements=["channel", "provider_id"])
    validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
    public = os.environ["FIRMA_PUBLIC_URL"].rstrip("/")

    @app.post("/webhooks/twilio/sms")
    def inbound_sms():
        form = request.form
        if not validator.validate(public + request.path, form, request.headers.get("X-Twilio-Signature", "")):
            abort(403)
        if not form.get("MessageSid") or not form.get("From"):
            abort(400)
        with engine.begin() as conn:
            conn.execute(claim, {"channel": "sms", "provider_id": form["MessageSid"],
                                 "received_at": datetime.now(timezone.utc)})
        return Response(TWIML, mimetype="application/xml")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
