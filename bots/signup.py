"""The ways to start signing a campaign, one per configured channel (each channel says its own:
Channel.signup), for the flyer and the public page, and their QR codes."""

from __future__ import annotations

import logging

from bots import channels
from bots.channels import ProviderRefused
from bots.channels.base import Signup
from config.campaigns import Campaign, Catalog
from config.settings import Settings

log = logging.getLogger("firma.signup")

Way = Signup


def ways(settings: Settings, catalog: Catalog, campaign: Campaign, language: str, strict: bool = False) -> list[Way]:
    """The configured ways to sign, in the registry's order (SMS first: it needs no app). A channel
    whose provider must be asked and does not answer is left out, or with ``strict`` (a printed
    flyer) ProviderRefused says why."""
    found = []
    for channel in channels.channels():
        try:
            way = channel.signup(settings, catalog, campaign, language)
        except ProviderRefused as exc:
            if strict:
                raise
            log.warning("%s left out of the ways to sign: %s", channel.label, exc)
            continue
        if way is not None:
            found.append(way)
    return found


def qr(uri: str):
    """The QR code of a link (segno; error correction M survives a creased or smudged flyer)."""
    import segno

    return segno.make(uri, error="m", micro=False)
