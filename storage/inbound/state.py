"""The conversation state's one definition: what is kept of a member's conversation between two
messages, and the member as the inbound hot path reads it."""

from __future__ import annotations

from dataclasses import dataclass, fields

from storage.models import Member


@dataclass(kw_only=True)
class ConversationState:
    """What is kept of a member's conversation between two messages, field by field: the engine's State
    less what is derived from other rows (bots.service maps the two by these names). The first three
    are the member row's, the rest the conversation row's columns of the same names."""

    language: str = "en"
    opted_out: bool = False
    disclosed: bool = False
    campaign: str | None = None
    step: str = "idle"
    pending_name: str | None = None
    invalid_count: int = 0
    acked_on: str | None = None  # the day the inbox last acknowledged their own words


STATE_FIELDS = tuple(f.name for f in fields(ConversationState))
CONVERSATION_FIELDS = STATE_FIELDS[3:]  # the conversations table's columns, by name


@dataclass(kw_only=True)
class MemberState(ConversationState):
    """The locked member, their conversation, their person's signed campaigns and latest signature."""

    id: int
    simulated: bool
    person_id: int | None
    signed: frozenset[str] = frozenset()
    # the person's latest signature (of any of their chats): what a second campaign offers to sign with
    last_signature: tuple[str, str, str, str, str, str | None] | None = None  # campaign, name, zip, city, state, tz


# The member row as lock_state reads it, by MemberState's field names (then the conversation's columns).
_MEMBER_COLUMNS = {"id": Member.id, "simulated": Member.simulated, "person_id": Member.person_id,
                   "language": Member.language, "opted_out": Member.opted_out_at.is_not(None),
                   "disclosed": Member.disclosed_at.is_not(None)}
_FLAGS = ("simulated", "opted_out", "disclosed")  # SQLite reads them as 0 and 1
