"""Telegram's webhook: check the secret, parse, call the service, answer in the response when one
call is enough.

Several replies are all sent through the Bot API, in order, before answering: Telegram only acts on
a response body after we have answered, so putting the first reply there and sending the rest would
deliver them out of order. A pending button answer (answerCallbackQuery) still goes in the body.
"""

from __future__ import annotations

import hmac
import json

from flask import Blueprint, abort, current_app, jsonify, request

from bots import service
from bots.channels.telegram import TELEGRAM, updates
from bots.channels.telegram.gateway import Gateway
from webhooks import runtime

bp = Blueprint("telegram", __name__, url_prefix="/webhooks/telegram")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def gateway() -> Gateway:
    """One per app (it only caches the bot's username); each send makes its own Bot."""
    settings = runtime().settings
    gw = current_app.extensions.get("firma.telegram")
    if gw is None or gw.token != settings.telegram_bot_token:
        gw = Gateway(settings.telegram_bot_token, settings.telegram_api_url)
        current_app.extensions["firma.telegram"] = gw
    return gw


def check_secret() -> None:
    """503 until the bot is configured; 403 unless the secret header matches, before the body is read."""
    settings = runtime().settings
    if not settings.telegram_bot_token:
        abort(503, "Telegram is not configured: set TELEGRAM_BOT_TOKEN")
    if not settings.telegram_webhook_secret:
        abort(503, "Telegram is not configured: set TELEGRAM_WEBHOOK_SECRET")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), settings.telegram_webhook_secret.encode("utf-8")):
        abort(403, "invalid or missing secret token")


@bp.post("")
def update():
    check_secret()
    try:
        data = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):
        abort(400, "the body is not JSON")
    try:
        event = TELEGRAM.parse(data)
    except updates.BadUpdate as exc:
        abort(400, str(exc))
    rt = runtime()
    gw = gateway()
    outcome = service.handle_event(rt.db.uow(), event.payload(), rt.engine, rt.now(),
                                   forget_key=rt.settings.secret_key, timezone=rt.settings.timezone)
    actions = TELEGRAM.answer(event, outcome, rt.catalog, gw.username)
    if not actions:
        return "", 200
    if len(actions) == 1:
        return jsonify(actions[0].webhook_body())
    body = actions.pop() if actions[-1].method == "answerCallbackQuery" else None
    for chat_id in gw.perform(actions).blocked:  # a 403 says the chat blocked the bot
        service.mark_unreachable(rt.db.uow(), TELEGRAM.name, str(chat_id), rt.now())
    return (jsonify(body.webhook_body()), 200) if body else ("", 200)
