"""GSM-7 facts: which characters an SMS can carry cheaply, and how many segments a text costs.

The campaign file is validated with these (an SMS summary must fit two GSM-7 segments) and every
SMS is rendered through :func:`to_gsm`, so that Spanish written with proper accents still travels as
GSM-7 (``á`` becomes ``a``; ``é``, ``ñ``, ``¿`` and ``¡`` exist in GSM-7 and stay).
"""

from __future__ import annotations

import unicodedata

# 3GPP TS 23.038 default alphabet and its extension table (each extension character costs two septets).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")
GSM7 = GSM7_BASIC | GSM7_EXTENDED

# Look-alikes that phones, word processors and translators produce, mapped to GSM-7.
REPLACEMENTS = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "`": "'", "´": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "«": '"', "»": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
    "\u2026": "...", "\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u2009": " ", "\t": " ",
    "\u2022": "-", "•": "-", "\u00b7": "-",
    "á": "a", "í": "i", "ó": "o", "ú": "u", "Á": "A", "Í": "I", "Ó": "O", "Ú": "U",
    "â": "a", "ê": "e", "î": "i", "ô": "o", "û": "u", "ã": "a", "õ": "o", "ç": "c",
    "ë": "e", "ï": "i", "È": "E", "Ê": "E", "Ë": "E", "À": "A", "Â": "A", "Ì": "I", "Ò": "O", "Ù": "U",
}

SEGMENT = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


def to_gsm(text: str) -> str:
    """Replace look-alikes so that ``text`` travels as GSM-7 where it can; other text is left alone
    (a name in Chinese stays in Chinese, and that message goes as UCS-2)."""
    if GSM7.issuperset(text):  # most replies: nothing to replace (a set test, not a loop in Python)
        return text
    out = []
    for ch in text:
        if ch in GSM7_BASIC or ch in GSM7_EXTENDED:
            out.append(ch)
        elif ch in REPLACEMENTS:
            out.append(REPLACEMENTS[ch])
        else:
            base = unicodedata.normalize("NFKD", ch)
            stripped = "".join(c for c in base if not unicodedata.combining(c))
            out.append(stripped if stripped and all(c in GSM7_BASIC for c in stripped) else ch)
    return "".join(out)


def is_gsm7(text: str) -> bool:
    return GSM7.issuperset(text)


def encoding(text: str) -> str:
    return "GSM-7" if is_gsm7(text) else "UCS-2"


def segments(text: str) -> tuple[str, int]:
    """(encoding, number of SMS segments) for ``text`` as sent."""
    enc = encoding(text)
    if enc == "GSM-7":
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
    else:
        units = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)  # UTF-16 code units
    single, multi = SEGMENT[enc]
    if units <= single:
        return enc, 1 if units else 0
    return enc, -(-units // multi)
