"""What a channel hands the service functions: a conversation message (bots.engine.Inbound), or one
of the other things a provider reports about a member or a chat. Plain values, no provider's names."""

from __future__ import annotations

from dataclasses import dataclass

from bots.engine import Inbound


@dataclass(frozen=True)
class ContactShared:
    """A member shared a phone number (Telegram's contact button): link the chat to that number."""

    inbound: Inbound  # who shared it: channel, address, provider id, language hint
    phone: str | None  # E.164, or None when it could not be read
    own: bool  # the sender shared their own number (only that is linked)


@dataclass(frozen=True)
class Reachability:
    """The member blocked (False) or unblocked (True) us."""

    channel: str
    address: str
    provider_id: str | None
    reachable: bool


@dataclass(frozen=True)
class GroupPost:
    """A post in a group or a broadcast channel, where firma takes no signatures."""

    channel: str
    chat_id: str
    provider_id: str | None


Event = Inbound | ContactShared | Reachability | GroupPost
