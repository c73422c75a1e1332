"""The inbound bench's ceiling (``bench/inbound.py --ceiling``): firma's real SMS webhook (signature check,
form parsing, engine, rendering, TwiML) with the database taken out: ``bots.service.handle_inbound`` is
replaced by a step of the engine on state kept in the process's memory. Not a product (nothing is
stored, and a conversation's later messages that reach the other gunicorn worker find no state there
and get the short help instead); a measure of what firma's request costs without any database, so that
what the database costs can be told apart from the rest."""

from __future__ import annotations

from bots import channels, service
from bots.engine import State

_states: dict[tuple[str, str], State] = {}


def handle_inbound(uow, inbound, engine, now, **_options) -> service.Outcome:
    key = (inbound.channel, inbound.address)
    result = engine.step(_states.get(key) or State(), inbound)
    _states[key] = result.state
    messages = channels.get(inbound.channel).render(result.replies, result.state.language, engine.catalog)
    return service.Outcome(messages, result.state.language)


def create_app():
    from webhooks import create_app as firma_app

    service.handle_inbound = handle_inbound
    return firma_app()
