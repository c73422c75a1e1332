"""The Flask app factory: ``gunicorn 'webhooks:create_app()'``.

Blueprints, one per caller: Twilio, Telegram, the public API and health, the simulator, the staff
console. App-wide protection (sessions, CSRF, the /staff guard, security headers) is installed here.
Nothing is built at import time; each process builds its own Runtime here.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Mapping

from flask import Flask, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from bots.runtime import Runtime
from config import redaction
from storage.db import url_password
from storage.uow import UNAVAILABLE

log = logging.getLogger("firma")

MAX_REQUEST_BYTES = 256 * 1024  # a Twilio or Telegram request is a few kilobytes


def runtime() -> Runtime:
    return current_app.extensions["firma"]


class DatabaseId(IntegerConverter):
    """``<int:...>`` in every route: a number a database id column can hold (64-bit), else no match."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", 2 ** 63 - 1)
        super().__init__(map, *args, **kwargs)


def redact_logs(settings) -> None:
    """No phone number or secret in any log line of this process (the app's and the CLI's): the
    settings' secrets, and the password in the database URL as the database reads it."""
    redaction.install(redaction.secrets_of(settings, url_password(settings.database_url)))


def _settings_or_one_line(read):
    """The settings; under gunicorn, a setting it cannot use stops it with the one line that says what
    to change (gunicorn prints an AppImportError as is and halts, where any other error is a traceback
    from every worker it boots)."""
    from config.settings import SettingsError

    try:
        return read()
    except SettingsError as exc:
        if "gunicorn" not in sys.modules:
            raise
        from gunicorn.errors import AppImportError

        raise AppImportError(f"firma cannot start: {exc}") from None


def create_app(config: Mapping[str, Any] | None = None, rt: Runtime | None = None) -> Flask:
    """The app on ``rt``, or on a Runtime built here from the environment (gunicorn). An app that
    built its own Runtime, or is given CATALOG_WATCH=True (`firma serve`), keeps its catalog current
    with a watcher thread (bots/catalog.py): campaign edits from any process reach it in seconds."""
    app = Flask(__name__)
    app.url_map.converters["int"] = DatabaseId  # /staff/members/<2**70> is a 404, not an overflow in the driver
    watch = rt is None
    if rt is None:
        from config.settings import Settings
        from storage.uow import Database

        settings = _settings_or_one_line(Settings.from_env)
        rt = Runtime.build(settings, db=Database.for_requests(settings.database_url))  # no ping per request
    redact_logs(rt.settings)
    rt.zips.load()  # at start-up, not in the first request that names a ZIP (firma export skips it)
    app.extensions["firma"] = rt
    app.config.update(
        SECRET_KEY=rt.settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        SIMULATOR_OPEN=False,  # `firma serve` (development) opens it to anyone; otherwise staff only
        JSON_SORT_KEYS=False,
    )
    if config:
        app.config.update(config)
    if app.config.get("CATALOG_WATCH", watch):
        from bots.catalog import CatalogWatcher

        app.extensions["firma_catalog_watcher"] = CatalogWatcher(rt).start()
    if rt.settings.trusted_proxies:
        # Behind nginx or a load balancer: the client's address (the staff sign-in limit per address,
        # the audit log) and scheme come from the headers the proxies set, trusting only as many
        # X-Forwarded-For entries as there are proxies (a client cannot forge its way past them).
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = rt.settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)
    if rt.settings.secret_key_generated and not app.config.get("TESTING"):
        log.warning("FIRMA_SECRET_KEY is not set: using a random key, so staff sessions end at restart "
                    "(fine for development, not for production)")

    from webhooks import (api_staff, auth, public, security, simulator, staff, staff_broadcasts, staff_campaigns,
                          staff_inbox, staff_team, telegram, twilio)

    auth.install(app)  # sessions, CSRF and the /staff guard, before any blueprint's view runs
    for blueprint in (twilio.bp, telegram.bp, public.bp, simulator.bp, staff.bp, staff_broadcasts.bp,
                      staff_campaigns.bp, staff_inbox.bp, staff_team.bp, api_staff.bp):
        app.register_blueprint(blueprint)
    _register_errors(app)
    security.install(app)  # nosniff, no framing, CSP on pages
    return app


def _register_errors(app: Flask) -> None:
    def wants_json() -> bool:
        return request.path.startswith(("/api/", "/webhooks/telegram", "/simulator/"))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if wants_json():
            return jsonify(error=exc.description or exc.name), exc.code
        return f"{exc.code} {exc.name}: {exc.description}\n", exc.code, {"Content-Type": "text/plain; charset=utf-8"}

    def database_down(exc: DBAPIError):
        # The provider retries (Telegram) or falls back (Twilio's fallback URL); nothing was committed.
        log.error("database unavailable: %s", exc.__class__.__name__)
        body = "503 Service Unavailable: the database is not answering; try again shortly\n"
        if wants_json():
            return jsonify(error="database unavailable"), 503, {"Retry-After": "5"}
        return body, 503, {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "5"}

    for error in UNAVAILABLE:  # every pooled connection busy (PoolTimeout) gets the same answer
        app.register_error_handler(error, database_down)
