"""The ways to sign (bots.signup), the settings they read, and the delivery's short names."""

from __future__ import annotations

import re

import pytest

from bots import signup
from bots.channels.telegram import TELEGRAM
from bots.delivery import short_name
from config.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def asked_bot(monkeypatch):
    """getMe answers "AskedBot" (the Telegram stand-in is not needed for the wording)."""
    monkeypatch.setattr(type(TELEGRAM), "bot_username",
                        lambda self, settings: settings.telegram_bot_username or ("AskedBot" if settings.telegram_bot_token else None))


def ways(catalog, language="en", **env):
    settings = Settings.from_env(env)
    return signup.ways(settings, catalog, catalog.campaigns["end-scomm"], language)


def test_nothing_configured_offers_nothing(catalog):
    assert ways(catalog) == []


def test_each_channel_link_and_wording(catalog):
    found = ways(catalog, FIRMA_SMS_NUMBER="+1 (312) 555-0100", TWILIO_WHATSAPP_FROM="whatsapp:+13125550100",
                 TELEGRAM_BOT_USERNAME="@PresenteBot")
    assert [(w.channel, w.uri) for w in found] == [
        ("sms", "sms:+13125550100?body=SCOMM"), ("whatsapp", "https://wa.me/13125550100?text=SCOMM"),
        ("telegram", "https://t.me/PresenteBot?start=end-scomm")]
    assert found[0].instruction == "Text SCOMM to +1 (312) 555-0100"  # the number as the organization prints it
    # the WhatsApp sender is set as E.164: printed grouped, as people read and type it
    assert found[1].instruction == "Send SCOMM on WhatsApp to +1 312-555-0100"
    es = ways(catalog, "es", FIRMA_SMS_NUMBER="56565")
    assert (es[0].uri, es[0].instruction, es[0].label) == ("sms:56565?body=FIRMA", "Envía FIRMA al 56565", "Mensaje de texto")


def test_telegram_username_is_asked_only_without_the_setting(catalog):
    asked = ways(catalog, TELEGRAM_BOT_TOKEN="1:x")
    assert asked[0].uri == "https://t.me/AskedBot?start=end-scomm"

def test_a_bot_whose_username_is_unknown_is_left_out_or_refused(catalog, monkeypatch):
    monkeypatch.setattr(type(TELEGRAM), "bot_username", lambda self, settings: None)  # getMe failed
    settings = Settings.from_env({"TELEGRAM_BOT_TOKEN": "1:x"})
    assert signup.ways(settings, catalog, catalog.campaigns["end-scomm"], "en") == []  # the public page
    with pytest.raises(signup.ProviderRefused, match="set TELEGRAM_BOT_USERNAME"):  # the flyer
        signup.ways(settings, catalog, catalog.campaigns["end-scomm"], "en", strict=True)


@pytest.mark.parametrize("name, value, words", [
    ("FIRMA_SMS_NUMBER", "call us", "FIRMA_SMS_NUMBER must be a short code or a phone number"),
    ("TWILIO_WHATSAPP_FROM", "+13125550100", "TWILIO_WHATSAPP_FROM must look like whatsapp:+13125550100"),
    ("TELEGRAM_BOT_USERNAME", "t.me/bot", "TELEGRAM_BOT_USERNAME must be the bot's username"),
    ("FIRMA_TIMEZONE", "Mars/Olympus", "FIRMA_TIMEZONE must be a time zone name"),
])
def test_bad_settings_name_the_variable(name, value, words):
    with pytest.raises(SettingsError, match=re.escape(words)):
        Settings.from_env({name: value})


@pytest.mark.parametrize("name, short", [
    ("Ana María Núñez", "Ana N."), ("José García-López", "José G."), ("Cher", "Cher"),
    ("María de la Cruz", "María C."), ("ana ñandú", "ana Ñ."), ("Li 'Wei'", "Li W."),
])
def test_short_names_are_first_name_and_last_initial(name, short):
    assert short_name(name) == short
