"""Phone numbers, read with ``phonenumbers`` wherever firma reads one: inbound senders, numbers staff
type, numbers a Telegram user shares. Stored and compared as E.164 ("+13125550101")."""

from __future__ import annotations

import phonenumbers

# The programme is a US one: a number typed without a country code is read as a US number.
HOME_REGION = "US"
# Regions a shared contact may be linked from (the SMS programme reaches these).
LINKABLE_REGIONS = ("US", "PR")


def e164(text: str | None, *, valid: bool = False) -> str | None:
    """``text`` as E.164, or None when it cannot be a phone number. National US spellings
    ("(312) 555-0102", "312.555.0102", "13125550102") and international ones ("+44 20 7946 0958")
    are read; with ``valid`` the number must also be one that is assigned in its region's plan
    (phonenumbers' is_valid_number), else only possible (right length for its country)."""
    text = (text or "").strip()
    if not text or len(text) > 40:
        return None
    try:
        number = phonenumbers.parse(text, HOME_REGION)
    except phonenumbers.NumberParseException:
        return None
    ok = phonenumbers.is_valid_number(number) if valid else phonenumbers.is_possible_number(number)
    if not ok:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def for_print(e164_number: str) -> str:
    """An E.164 number as people read and type it from a flyer or a page: "+1 312-555-0100"."""
    try:
        number = phonenumbers.parse(e164_number, None)
    except phonenumbers.NumberParseException:
        return e164_number
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def linkable(raw: str | None) -> str | None:
    """A number a Telegram user shared -> E.164, or None when it is not a valid number of a region the
    programme reaches. Telegram sends the digits without '+', so both readings are tried."""
    raw = (raw or "").strip()
    if not raw:
        return None
    for text, region in ((raw if raw.startswith("+") else "+" + raw, None), (raw, HOME_REGION)):
        try:
            number = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number) and phonenumbers.region_code_for_number(number) in LINKABLE_REGIONS:
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None

