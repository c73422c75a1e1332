"""The channels firma speaks, in one registry: the services, the worker, the console and the CLI ask
it, and never test a channel's name themselves.

A channel is one adapter module (its class implements bots.channels.base.Channel) and one line in
``ADAPTERS`` below. docs/architecture.md says how to add one.
"""

from __future__ import annotations

import importlib
import threading

from bots.channels.base import (SIMULATED_PREFIX, Channel, NotConfigured, ProviderRefused, ProviderUnavailable,
                                Sender, Simulated)

__all__ = ["Channel", "NotConfigured", "ProviderRefused", "ProviderUnavailable", "Sender", "Simulated", "get", "names", "channels", "label",
           "contact_candidates", "phone_home", "register", "unregister"]

# "module:attribute" of each channel, in the order staff see them. The first channel whose addresses
# are phone numbers is where a phone number's person lives (a Telegram chat that shares its number
# is linked to that member).
ADAPTERS = ("bots.channels.sms:SMS", "bots.channels.whatsapp:WHATSAPP", "bots.channels.telegram:TELEGRAM")

_lock = threading.RLock()
_registry: dict[str, Channel] | None = None


def _channels() -> dict[str, Channel]:
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                found: dict[str, Channel] = {}
                for spec in ADAPTERS:
                    module, _, attribute = spec.partition(":")
                    channel = getattr(importlib.import_module(module), attribute)
                    found[channel.name] = channel
                _registry = found
    return _registry


def channels() -> tuple[Channel, ...]:
    return tuple(_channels().values())


def names() -> tuple[str, ...]:
    return tuple(_channels())


def get(name: str) -> Channel:
    """The channel called ``name``; KeyError for one firma does not speak."""
    return _channels()[name]


def label(name: str) -> str:
    """How staff read a channel's name ("SMS"); a name no channel has (old rows) as it is."""
    channel = _channels().get(name)
    return channel.label if channel is not None else name


def contact_candidates(text: str) -> list[tuple[str, str]]:
    """Where a contact typed by staff may be stored: [(channel, address), ...], each channel reading
    it its own way ("(312) 555-0101" is an SMS number; "13125550101" a number or a Telegram id)."""
    text = (text or "").strip()
    if not text or len(text) > 64:
        return []
    if text.startswith(SIMULATED_PREFIX):  # a simulator conversation, as the simulator stores it
        return [(channel.name, text) for channel in channels()]
    found = []
    for channel in channels():
        address = channel.parse_address(text)
        if address is not None and (channel.name, address) not in found:
            found.append((channel.name, address))
    return found


def phone_home() -> Channel:
    """The channel whose member stands for a phone number's person."""
    return next(c for c in channels() if c.phone_numbers)


def register(channel: Channel) -> None:
    """Add a channel at run time (a test's toy channel); its name must be new."""
    global _registry
    with _lock:
        current = dict(_channels())
        if channel.name in current:
            raise ValueError(f"a channel named {channel.name!r} is registered already")
        current[channel.name] = channel
        _registry = current


def unregister(name: str) -> None:
    global _registry
    with _lock:
        current = dict(_channels())
        current.pop(name, None)
        _registry = current
