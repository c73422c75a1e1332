"""The browser simulator: chat with the bot on any channel (SMS, WhatsApp, Telegram), no provider needed.

Messages go through the same engine, service and storage as real ones; the members it creates are
flagged ``simulated`` and left out of counts, exports and broadcasts.
"""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from bots import channels, service
from bots.channels.base import SIMULATED_PREFIX, too_deep
from webhooks import runtime

bp = Blueprint("simulator", __name__, url_prefix="/simulator")
_ADDRESS = re.compile(r"[+0-9A-Za-z_-]{1,32}")
MAX_TEXT = 1600
_SURROGATE = re.compile("[\ud800-\udfff]")


def simulator_allowed() -> bool:
    if current_app.config.get("SIMULATOR_OPEN"):
        return True
    check = current_app.config.get("STAFF_SIGNED_IN")  # set by the staff blueprint when it is registered
    return bool(check and check())


@bp.before_request
def guard():
    if not simulator_allowed():
        abort(403, "the simulator is open to signed-in staff only")


@bp.get("")
@bp.get("/")
def page():
    catalog = runtime().catalog
    default = catalog.default_campaign
    return render_template("simulator.html", campaigns=catalog.active_campaigns, channels=channels.channels(),
                           keywords=" or ".join(default.spelled.get(w, w) for w in default.keywords))


@bp.post("/send")
def send():
    if not request.is_json:
        abort(415, "send JSON: {\"channel\", \"address\", \"text\"}")
    try:
        data = request.get_json(silent=True)
    except RecursionError:
        data = None
    if isinstance(data, dict) and too_deep(data):
        abort(400, "the body nests too deeply")
    if not isinstance(data, dict):
        abort(400, "the body is not a JSON object")
    name, address, text = data.get("channel"), data.get("address"), data.get("text", "")
    language = data.get("language")
    if not isinstance(name, str) or name not in channels.names():
        abort(400, f"channel must be one of {', '.join(repr(n) for n in channels.names())}")
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        abort(400, "address must be a phone number or a user id (letters, digits, + - _)")
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        abort(400, f"text must be a string of at most {MAX_TEXT} characters")
    if _SURROGATE.search(text):  # JSON can spell "\ud800"; no database can store it
        abort(400, "text is not valid Unicode (a lone surrogate)")
    if language is not None and not isinstance(language, str):
        abort(400, "language must be a string like 'es'")
    button = data.get("button")
    if button is not None and not isinstance(button, str):
        abort(400, "button is a button's data string")
    channel = channels.get(name)
    try:
        inbound = channel.simulate(SIMULATED_PREFIX + address, text, language, button)
    except ValueError as exc:
        abort(400, str(exc))
    rt = runtime()
    outcome = service.handle_inbound(rt.db.uow(), inbound, rt.engine, rt.now(), timezone=rt.settings.timezone)
    reply = channel.simulated_reply(inbound, outcome, rt.catalog, from_button=button is not None)
    return jsonify(messages=reply.messages, language=reply.language, html=reply.html, buttons=reply.buttons or [],
                   note=None if reply.messages or reply.buttons else _silence(outcome))


def _silence(outcome) -> str:
    """Why a message got no reply, for the person trying the bot (a real member is told nothing)."""
    if outcome.throttled:
        return f"no reply: over {service.INBOUND_LIMIT_PER_MINUTE} messages a minute from this sender"
    if outcome.opted_out:
        return "no reply: this member has opted out (START, HELP or a keyword gets an answer)"
    return "no reply"
