"""Settings an operator gets wrong are refused at start with the variable named: a public URL
without a scheme, and phone numbers read with phonenumbers (national spellings accepted)."""

from __future__ import annotations

import pytest

from config.settings import Settings, SettingsError


@pytest.mark.parametrize("url", ["sms.example.org", "sms.example.org/firma", "ftp://sms.example.org", "https://"])
def test_a_public_url_without_a_scheme_and_host_is_refused(url):
    with pytest.raises(SettingsError, match="FIRMA_PUBLIC_URL"):
        Settings.from_env({"FIRMA_PUBLIC_URL": url})


def test_a_public_url_with_a_scheme_is_kept():
    assert Settings.from_env({"FIRMA_PUBLIC_URL": "https://sms.example.org/"}).public_url == "https://sms.example.org"
    assert Settings.from_env({"FIRMA_PUBLIC_URL": "http://127.0.0.1:8000"}).public_url == "http://127.0.0.1:8000"


@pytest.mark.parametrize("raw", ["+1 312 555", "555-01", "+0 312 555 0100", "12345678901234"])
def test_an_sms_number_that_is_no_number_is_refused(raw):
    with pytest.raises(SettingsError, match="FIRMA_SMS_NUMBER"):
        Settings.from_env({"FIRMA_SMS_NUMBER": raw})


@pytest.mark.parametrize("raw", ["56565", "(312) 555-0100", "+1 312 555 0100", "+44 20 7946 0958"])
def test_short_codes_and_numbers_in_any_spelling_are_kept_as_printed(raw):
    assert Settings.from_env({"FIRMA_SMS_NUMBER": raw}).sms_number == raw


def test_the_from_number_is_read_as_e164():
    assert Settings.from_env({"TWILIO_FROM_NUMBER": "(312) 555-0100"}).twilio_from_number == "+13125550100"
    with pytest.raises(SettingsError, match="TWILIO_FROM_NUMBER"):
        Settings.from_env({"TWILIO_FROM_NUMBER": "312 555"})


def test_a_whatsapp_sender_must_be_a_possible_number():
    assert Settings.from_env({"TWILIO_WHATSAPP_FROM": "whatsapp:+13125550100"}).twilio_whatsapp_from == \
        "whatsapp:+13125550100"
    with pytest.raises(SettingsError, match="TWILIO_WHATSAPP_FROM"):
        Settings.from_env({"TWILIO_WHATSAPP_FROM": "whatsapp:+1312555"})
