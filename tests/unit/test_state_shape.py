"""The conversation state is defined once in storage (ConversationState) and mapped by name to the
engine's State: a field kept in one and missing from the other would be silently dropped."""

from dataclasses import fields

from bots import service
from bots.engine import State
from storage import inbound as hot


def test_every_stored_field_but_the_acknowledgement_day_is_the_engines():
    assert set(hot.STATE_FIELDS) - set(service._KEPT) == {"acked_on"}  # the engine has acked_today
    assert set(service._KEPT) <= {f.name for f in fields(State)}


def test_the_conversation_columns_are_the_tables():
    from storage.models import Conversation

    assert set(hot.CONVERSATION_FIELDS) <= set(Conversation.__table__.c.keys())
    assert set(hot.STATE_FIELDS[:3]) == {"language", "opted_out", "disclosed"}
