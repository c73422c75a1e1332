"""The signature export: CSV per interface.md, streamed row by row (flat memory at a million rows)."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from datetime import timezone
from typing import Iterator

from bots.runtime import Runtime
from storage import repository as repo

COLUMNS = ["signed_at", "campaign", "channel", "name", "zip", "city", "state", "language", "opted_out"]
CONTACT_COLUMN = "contact"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_CHARS = frozenset(_FORMULA_START)
_PLAIN_NUMBER = re.compile(r"\+[0-9]{7,15}")  # an E.164 contact: digits only, nothing a spreadsheet can run
# A first character that calls for a closer look (neutralise): a formula starter, a space, or (tested
# in _row as above "~") anything outside ASCII, such as a fullwidth ＝ or an invisible mark before '='.
_SUSPECT = _FORMULA_CHARS | {" "}


def _formula_start(cell: str) -> str:
    """The character a spreadsheet would read first: past spaces and invisible format characters,
    in its compatibility form (fullwidth ＝ and small ﹦ read as '=')."""
    for ch in cell:
        if ch in _FORMULA_CHARS:
            return ch
        if not (ch.isspace() or unicodedata.category(ch) == "Cf"):
            return unicodedata.normalize("NFKC", ch)[:1]
    return ""


def neutralise(cell: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe (OWASP's advice)."""
    if _formula_start(cell) in _FORMULA_CHARS and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def _row(row: tuple, include_contact: bool) -> list[str]:
    signed_at, campaign, channel, name, zip_code, city, state, language, opted_out, address = row
    # signed_at comes as the driver gives it (storage.repository.export_query): aware on PostgreSQL, in
    # the session's zone; naive on SQLite, where it is stored in UTC. campaign, channel and language are
    # our own codes, never formulas; the rest came from outside and is neutralised (the test of the
    # first character inline: this runs a million times for a million signatures).
    utc = signed_at.replace(tzinfo=timezone.utc) if signed_at.tzinfo is None else signed_at.astimezone(timezone.utc)
    f = _SUSPECT
    cells = [
        utc.isoformat(timespec="seconds")[:19] + "Z", campaign, channel,
        neutralise(name) if name[:1] in f or name[:1] > "~" else name,
        neutralise(zip_code) if zip_code[:1] in f or zip_code[:1] > "~" else zip_code,
        neutralise(city) if city[:1] in f or city[:1] > "~" else city,
        neutralise(state) if state[:1] in f or state[:1] > "~" else state,
        language, "true" if opted_out else "false",
    ]
    if include_contact:
        cells.append(neutralise(address))
    return cells


def export_lines(rt: Runtime, campaign: str, include_contact: bool = False) -> Iterator[str]:
    """CSV text in chunks: a header line, then one line per signature (RFC 4180, CRLF line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS + ([CONTACT_COLUMN] if include_contact else []))
    yield _drain(buffer)
    with rt.db.reader() as uow:
        for i, row in enumerate(repo.stream_export(uow.session, campaign), 1):
            writer.writerow(_row(row, include_contact))
            if i % 2000 == 0:
                yield _drain(buffer)
        rest = _drain(buffer)
        if rest:
            yield rest


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def signatures_page(rt: Runtime, campaign: str, after: int, limit: int,
                    include_contact: bool = False) -> tuple[list[dict], int | None]:
    """One page of the signatures as the export's columns (JSON values: opted_out a boolean, no
    spreadsheet neutralising), and the cursor of the next page or None."""
    with rt.db.reader() as uow:
        rows, next_cursor = repo.signatures_page(uow.session, campaign, after, limit)
    out = []
    for signed_at, campaign_, channel, name, zip_code, city, state, language, opted_out, address in rows:
        utc = signed_at.replace(tzinfo=timezone.utc) if signed_at.tzinfo is None else signed_at.astimezone(timezone.utc)
        item = {"signed_at": utc.isoformat(timespec="seconds")[:19] + "Z", "campaign": campaign_, "channel": channel,
                "name": name, "zip": zip_code, "city": city, "state": state, "language": language,
                "opted_out": bool(opted_out)}
        if include_contact:
            item[CONTACT_COLUMN] = address
        out.append(item)
    return out, next_cursor
