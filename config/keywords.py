"""The reserved keywords of interface.md and the one normalisation every keyword match uses.

They live in config because the campaign file is validated against them (a campaign may not claim
STOP or HELP), and the engine matches member texts with the same function.
"""

from __future__ import annotations

import re
import unicodedata

OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "PARAR", "ALTO", "CANCELAR"})
OPT_IN = frozenset({"START", "UNSTOP", "YES"})
HELP = frozenset({"HELP", "INFO", "AYUDA"})
LANGUAGE = {"ESPANOL": "es", "ENGLISH": "en"}  # ESPAÑOL folds to ESPANOL

RESERVED = OPT_OUT | OPT_IN | HELP | frozenset(LANGUAGE)

# Characters that carry no meaning in a keyword but arrive from phones and keyboards.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u00ad"))
_EDGE = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)
_SPACES = re.compile(r"\s+")


def fold(text: str) -> str:
    """Upper-case, accent-free, invisible-free text with single spaces: 'Español!' -> 'ESPANOL!'."""
    text = unicodedata.normalize("NFKD", text.translate(_INVISIBLE))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _SPACES.sub(" ", text).strip().upper()


def normalize_keyword(text: str) -> str:
    """The keyword a text would be, ignoring case, accents, surrounding spaces and punctuation.

    ' scomm! ' -> 'SCOMM';  '¡Firma!' -> 'FIRMA';  'Español' -> 'ESPANOL'.
    """
    return _EDGE.sub("", fold(text))
