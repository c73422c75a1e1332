"""The reserved keywords of interface.md and the one normalisation every keyword match uses.

They live in config because the campaign file is validated against them (a campaign may not claim
STOP or HELP), and the engine matches member texts with the same function.
"""

from __future__ import annotations

import re
import unicodedata

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "PARAR", "ALTO", "CANCELAR"})
OPT_IN = frozenset({"START", "UNSTOP", "YES", "SI"})  # SÍ folds to SI
HELP = frozenset({"HELP", "INFO", "AYUDA"})
LANGUAGE = {"ESPANOL": "es", "ENGLISH": "en"}  # ESPAÑOL folds to ESPANOL
# Answers to "Sign as Ana López, 60601? Reply YES, or send your full name" (YES and SÍ are opt-in words
# otherwise; NO is a name's answer only there).
CONFIRM = frozenset({"YES", "SI"})
DECLINE = frozenset({"NO"})
# The reserved words that tell which language their writer speaks (STOP, INFO are everyone's): a
# stranger's first message in one of them is answered in that language.
SPOKEN_IN = {"PARAR": "es", "ALTO": "es", "CANCELAR": "es", "AYUDA": "es", "SI": "es"}

RESERVED = OPT_OUT | OPT_IN | HELP | frozenset(LANGUAGE)

_EDGE = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)
_SPACES = re.compile(r"\s+")


def fold(text: str) -> str:
    """Upper-case, accent-free, invisible-free text with single spaces: 'Español!' -> 'ESPANOL!'."""
    text = unicodedata.normalize("NFKD", text)
    if not text.isascii():  # accents, and the invisible format characters phones and keyboards add (Cf)
        text = "".join(ch for ch in text if not unicodedata.combining(ch) and unicodedata.category(ch) != "Cf")
    return _SPACES.sub(" ", text).strip().upper()


def normalize_keyword(text: str) -> str:
    """The keyword a text would be, ignoring case, accents, surrounding spaces and punctuation.

    ' scomm! ' -> 'SCOMM';  '¡Firma!' -> 'FIRMA';  'Español' -> 'ESPANOL'.
    """
    return _EDGE.sub("", fold(text))
