"""What every channel is: the interface the services, the worker, the console and the CLI use.

A channel is a value (one object per channel, listed in the registry, bots/channels/__init__.py):
its name and label; how its addresses are read and shown; how conversation replies and broadcast
texts are written for it; its sender and its rate; its policy (quiet hours, where a phone number
makes one person). What differs between channels is data and these few functions, so nothing
outside this package tests a channel's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

from bots.broadcast_plan import SendResult

if TYPE_CHECKING:
    from bots.broadcast_plan import TextCheck
    from bots.engine import Inbound, Reply
    from config.campaigns import Campaign, Catalog
    from config.settings import Settings


# The simulator's addresses: "sim:" and what the user typed, on any channel (never a real contact).
SIMULATED_PREFIX = "sim:"


MAX_DEPTH = 32  # providers' payloads nest a dozen levels at most; deeper is not one of theirs


def too_deep(value, limit: int = MAX_DEPTH) -> bool:
    """True when ``value`` (decoded JSON) nests deeper than ``limit``: checked without recursion, so a
    body nested a thousand levels cannot exhaust the stack of what reads it next."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class NotConfigured(RuntimeError):
    """A channel's provider settings are missing; the message names the variables."""


class ProviderRefused(RuntimeError):
    """The provider refused a call (a wrong token, a URL it will not take); the message is its reason."""


class ProviderUnavailable(RuntimeError):
    """A sender cannot start: the provider refused its credentials or cannot be reached. The message
    is one line naming the settings to check, never a secret; the worker pauses that channel."""


# How long a channel waits after the provider refused its credentials, before trying again.
CREDENTIALS_PAUSE_S = 60.0


@runtime_checkable
class Sender(Protocol):
    """Sends one text to one address; one per worker event loop (``async with``)."""

    channel: str

    async def __aenter__(self) -> "Sender": ...

    async def __aexit__(self, *exc) -> None: ...

    async def send(self, to: str, body: str) -> SendResult: ...


@dataclass(frozen=True)
class Signup:
    """One way to start signing on a channel, for posters, flyers and the public page: ``uri`` opens
    the chat with the keyword ready (or the bot's start), and is drawn as a QR code."""

    channel: str
    label: str  # "Text message", "WhatsApp", "Telegram"
    instruction: str  # "Text SCOMM to 56565"
    uri: str
    open_label: str  # the public page's button: "Open my messages"
    keyword: str = ""
    number: str = ""  # as printed
    headline: str = ""  # a poster's big line, when it differs from the instruction
    fine_print: str | None = None  # what must be printed beside the call to action (SMS: the disclosure)


@dataclass(frozen=True)
class Simulated:
    """A simulator reply: the messages, whether they are HTML, and any buttons to draw."""

    messages: list[str]
    language: str
    html: bool = False
    buttons: list[dict[str, str]] | None = None


@runtime_checkable
class Channel(Protocol):
    name: str  # as stored in the database and typed in the CLI: "sms"
    label: str  # as staff read it: "SMS"
    # The catalog's own wording for this channel: config/texts keys ending in ".<text_variant>"
    # replace the plain ones (None: the plain keys).
    text_variant: str | None
    language_hint: bool  # the member's app tells their language (the first message's hint)
    commands: bool  # members use /commands and buttons rather than keywords
    phone_numbers: bool  # addresses are E.164 numbers (one person per number; area codes give time zones)
    quiet_hours: bool  # broadcasts wait for the recipient's local day (FIRMA_QUIET_HOURS)
    segmented: bool  # priced per segment (the preview estimates segments)
    status_callbacks: bool  # the provider reports delivery later (Twilio's status callbacks)
    rate_variable: str  # the environment variable of its broadcast rate
    # Optional, read with getattr where used (a channel without them has none of these needs):
    # - reply_window (timedelta): free text reaches a member only this long after their last message;
    #   outside it the broadcast's approved template goes (the sender's send_template(to, sid,
    #   template_variables(name))), or nothing, counted as outside the window (WhatsApp: 24 hours);
    # - twilio_prefix (str): Twilio carries it and writes its addresses with this prefix ("" for SMS,
    #   "whatsapp:"); such a channel also has parse_inbound(form), respond(messages) and
    #   classify_error(status, code), and shares the Twilio webhook and status callback.
    # The provider's message ids are never reused (Twilio's MessageSid): they are kept, without the
    # replies, long after the replies are purged, so that a captured signed request replayed later is
    # refused. Telegram's update_id restarts at random after a quiet week: those go with the replies.
    provider_ids_unique: bool

    def rate(self, settings: Settings) -> float:
        """Broadcast messages per second, all workers together."""

    def sender(self, settings: Settings, concurrency: int) -> Sender:
        """The broadcast sender; NotConfigured names what is missing."""

    def parse_address(self, text: str) -> str | None:
        """A contact typed by staff (any usual spelling) as stored, or None when it cannot be one."""

    def display_address(self, address: str) -> str:
        """An address as staff read it."""

    def render(self, replies: Sequence[Reply], language: str, catalog: Catalog) -> list[str]:
        """The conversation's replies as the messages to send, in order."""

    def broadcast_text(self, template: str, name: str, stop_notice: str | None) -> str:
        """A broadcast as one recipient reads it."""

    def check_broadcast(self, template: str, language: str, stop_notice: str | None) -> TextCheck:
        """A broadcast text checked for this channel (BroadcastError when it cannot be sent)."""

    def signup(self, settings: Settings, catalog: Catalog, campaign: Campaign, language: str) -> Signup | None:
        """How a member starts signing ``campaign`` here (None: not configured); ProviderRefused when
        the provider must be asked and does not answer."""

    def simulate(self, address: str, text: str, language: str | None, button: str | None) -> Inbound:
        """The message a simulator user typed (or the button pressed), as a real one would arrive."""

    def simulated_reply(self, inbound: Inbound, outcome, catalog: Catalog, from_button: bool = False) -> Simulated:
        """What the simulator shows for the service's outcome."""
