"""The delivery package: the PDF an organization hands the petition's target and the press.

A cover (title, the petition's statement, the number of signatures, the first and last signing dates),
the count per state as a table with a bar per row, then the signers grouped by state (each state on
its own pages, its heading repeated on every page), with the name as chosen (``full``; ``short``:
first name and last initial; ``none``: no names, each city's count), city, state and date signed.
Every page has its number and the date the document was made.

The signers are the export's: never simulated members, each person once, erased members counted but
never listed; members who opted out of messages are still signers. Contact data is never read.
Pages are streamed (bots.pdf): a million signers take flat memory.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Iterator
from zoneinfo import ZoneInfo

from bots.pdf import BOLD, REGULAR, Font, FontMissing, Page, Writer, find_font
from bots.runtime import Runtime
from config.campaigns import LANGUAGES, Catalog
from config.settings import CONFIG_DIR
from storage import repository as repo

NAMES = ("full", "short", "none")
MARGIN = 54.0
FOOTER_Y = 32.0
GRAY, LIGHT, BAR = 0.35, 0.93, (0.16, 0.38, 0.62)


class DeliveryError(ValueError):
    """A delivery that cannot be made; the message says why in one line."""


@lru_cache(maxsize=1)
def state_names() -> dict[str, dict[str, str]]:
    """Postal code -> {language: name}, for every state and territory a ZIP code can be in."""
    with open(CONFIG_DIR / "states.toml", "rb") as fh:
        return tomllib.load(fh)


def state_name(code: str, language: str) -> str:
    names = state_names().get(code)
    return (names.get(language) or names["en"]) if names else code


@dataclass(frozen=True)
class Request:
    campaign: str
    state: str | None = None
    names: str = "full"
    language: str = "en"
    listed: int = 0  # the signers it lists, when it was checked (for the console: now or by a worker)

    @property
    def filename(self) -> str:
        """The console's download name (the state in it, for a folder of one file per state)."""
        return f"{self.campaign}{'-' + self.state.lower() if self.state else ''}-delivery.pdf"


def check(rt: Runtime, campaign: str, state: str | None = None, names: str = "full", language: str = "en") -> Request:
    """The request, once it can be made; DeliveryError with one line saying why not."""
    if campaign not in rt.catalog.campaigns:
        raise DeliveryError(f"no campaign {campaign!r}; the campaigns are: {', '.join(rt.catalog.campaigns)}")
    if names not in NAMES:
        raise DeliveryError(f"names must be one of {', '.join(NAMES)}, not {names!r}")
    if language not in LANGUAGES:
        raise DeliveryError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    if state is not None:
        state = state.strip().upper()
        if state not in state_names():
            raise DeliveryError(f"{state!r} is not a US state or territory code (like IL, CA or PR)")
    try:
        find_font(REGULAR), find_font(BOLD)
    except FontMissing as exc:
        raise DeliveryError(str(exc)) from None
    with rt.db.reader() as uow:
        summary = repo.delivery_summary(uow.session, campaign, state)
    if not summary:
        where = f" from {state}" if state else ""
        raise DeliveryError(f"campaign {campaign!r} has no signatures{where} to deliver yet")
    return Request(campaign, state, names, language, sum(n for _, n, *_ in summary))


def short_name(name: str) -> str:
    """First name and last initial: "Ana María Núñez" -> "Ana N."."""
    parts = name.split()
    if len(parts) < 2:
        return name
    last = next((c for c in parts[-1] if c.isalnum()), "")
    return f"{parts[0]} {last.upper()}." if last else parts[0]


class Labels:
    """The catalog's words for one language, and numbers and dates written as that language does."""

    def __init__(self, catalog: Catalog, language: str):
        self.catalog, self.language = catalog, language
        self.months = catalog.phrase("months", language).split(",")

    def __call__(self, key: str, **values) -> str:
        return self.catalog.phrase(key, self.language, **values)

    def long_date(self, day: date) -> str:
        return self("date_long", day=day.day, month=self.months[day.month - 1], year=day.year)

    def signatures(self, n: int) -> str:
        return self("signatures_one" if n == 1 else "signatures_other", count=f"{n:,}")


@dataclass
class Summary:
    states: list[tuple[str, int]]  # (code, signers), most first
    listed: int
    erased: int
    first: date
    last: date


def _local(zone: ZoneInfo):
    def to_date(signed_at: datetime) -> date:
        if signed_at.tzinfo is None:  # SQLite gives naive UTC
            signed_at = signed_at.replace(tzinfo=timezone.utc)
        return signed_at.astimezone(zone).date()
    return to_date


class Document:
    """Lays out pages on a Writer; ``flow`` pages (cover, table) share a cursor ``y``."""

    def __init__(self, writer: Writer, title: str, footer: str, labels: Labels):
        self.w = writer
        self.regular, self.bold = writer.fonts["regular"], writer.fonts["bold"]
        self.title, self.footer, self.labels = title, footer, labels
        self.width, self.height = writer.page_size
        self.right = self.width - MARGIN
        self.page: Page | None = None
        self.y = 0.0

    def new_page(self, header: str = "") -> Page:
        self.finish_page()
        page = self.w.new_page()
        number = self.w.page_count + 1
        label = self.labels("delivery_page", page=f"{number:,}")
        page.text(MARGIN, FOOTER_Y, self.footer, self.regular, 8, GRAY)
        page.text(self.right - 30, FOOTER_Y, label, self.regular, 8, GRAY, align="right")
        page.total_pages(self.right - 27, FOOTER_Y)
        page.line(MARGIN, FOOTER_Y + 12, self.right, FOOTER_Y + 12, 0.4, 0.75)
        if header:
            page.text(MARGIN, self.height - 36, self.title, self.regular, 8, GRAY)
            page.text(self.right, self.height - 36, header, self.regular, 8, GRAY, align="right")
        self.page = page
        self.y = self.height - MARGIN - (12 if header else 0)
        return page

    def finish_page(self) -> None:
        if self.page is not None:
            self.w.add_page(self.page)
            self.page = None

    def room(self, needed: float, header: str = "") -> Page:
        """The current page when ``needed`` points are left above the footer, else a new page."""
        if self.page is None or self.y - needed < MARGIN + 6:
            self.new_page(header)
        return self.page

    def paragraph(self, text: str, font: Font, size: float, leading: float, color: float = 0.0,
                  after: float = 0.0, header: str = "") -> None:
        for block in text.split("\n"):
            if not block.strip():
                self.y -= leading / 2
                continue
            for line in font.wrap(block.strip(), size, self.right - MARGIN):
                page = self.room(leading, header)
                self.y -= leading
                page.text(MARGIN, self.y + leading - size, line, font, size, color)
        self.y -= after


def _summary(session, req: Request, to_date) -> tuple[Summary, dict[int, str]]:
    later = repo.later_signatures(session, req.campaign)
    counts: dict[str, int] = {}
    first: datetime | None = None
    last: datetime | None = None
    for code, n, earliest, latest in repo.delivery_summary(session, req.campaign, req.state, later):
        counts[code] = n
        first = earliest if first is None else min(first, earliest)
        last = latest if last is None else max(last, latest)
    states = sorted(((code, n) for code, n in counts.items() if n > 0), key=lambda kv: (-kv[1], kv[0]))
    erased = 0 if req.state else repo.erased_signers(session, req.campaign)
    listed = sum(n for _, n in states)
    return Summary(states, listed, erased, to_date(first), to_date(last)), later


def render(rt: Runtime, req: Request) -> Iterator[bytes]:
    """The PDF, in chunks as its pages are finished (write them to a file or an HTTP response)."""
    catalog = rt.catalog
    campaign = catalog.campaigns[req.campaign]
    labels = Labels(catalog, req.language)
    zone = ZoneInfo(rt.settings.timezone)
    to_date = _local(zone)
    made = rt.now().astimezone(zone)
    title = campaign.text(req.language).title
    with rt.db.reader() as uow:
        session = uow.session
        if rt.db.dialect == "postgresql":  # the cover's counts and the list from one snapshot
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        summary, later = _summary(session, req, to_date)
        writer = Writer(total_size=8)
        doc = Document(writer, title, f"{title} · {labels('delivery_made', date=labels.long_date(made.date()))}",
                       labels)
        _cover(doc, rt, req, summary, made)
        yield writer.pending()
        rows = repo.stream_delivery(session, req.campaign, req.state, later)
        signers = _cities if req.names == "none" else _signers
        for _ in signers(doc, req, rows, summary, to_date):
            yield writer.pending()
        doc.finish_page()
    writer.close(title=f"{title}: {labels('delivery_heading')}", author=catalog.organization.name,
                 subject=labels.signatures(summary.listed + summary.erased), created=made)
    yield writer.pending()


def _cover(doc: Document, rt: Runtime, req: Request, s: Summary, made: datetime) -> None:
    labels, catalog = doc.labels, rt.catalog
    campaign = catalog.campaigns[req.campaign]
    text = campaign.text(req.language)
    page = doc.new_page()
    content = doc.right - MARGIN
    page.text(MARGIN, doc.y - 10, labels("delivery_heading").upper(), doc.bold, 10, BAR)
    doc.y -= 22
    for line in doc.bold.wrap(doc.title, 26, content):
        doc.y -= 31
        page.text(MARGIN, doc.y, line, doc.bold, 26)
    doc.y -= 20
    page.text(MARGIN, doc.y, labels("delivery_from", organization=catalog.organization.name), doc.regular, 11, GRAY)
    doc.y -= 26
    page.line(MARGIN, doc.y, doc.right, doc.y, 1.2, BAR)
    total = s.listed + s.erased
    doc.y -= 44
    width = page.text(MARGIN, doc.y, f"{total:,}", doc.bold, 40, BAR)
    word = labels.signatures(total).replace(f"{total:,}", "", 1).strip()
    page.text(MARGIN + width + 8, doc.y, word, doc.regular, 16)
    if req.state:
        doc.y -= 20
        page.text(MARGIN, doc.y, labels("delivery_in_state", count=f"{total:,}",
                                        state=state_name(req.state, req.language)), doc.regular, 12)
    doc.y -= 20
    dates = labels("delivery_date_one", first=labels.long_date(s.first)) if s.first == s.last else \
        labels("delivery_dates", first=labels.long_date(s.first), last=labels.long_date(s.last))
    page.text(MARGIN, doc.y, dates, doc.regular, 12)
    doc.y -= 16
    page.text(MARGIN, doc.y, labels("delivery_made", date=labels.long_date(made.date())), doc.regular, 10, GRAY)
    doc.y -= 34
    page.text(MARGIN, doc.y, labels("petition_heading"), doc.bold, 14)
    doc.y -= 8
    doc.paragraph(text.statement, doc.regular, 11, 15.5, after=10)
    note = labels(f"delivery_names_{req.names}")
    if s.erased:
        note += " " + labels("delivery_erased_one" if s.erased == 1 else "delivery_erased", count=f"{s.erased:,}")
    note += " " + labels("delivery_dates_zone", zone=rt.settings.timezone)
    doc.paragraph(note, doc.regular, 9, 12.5, GRAY, after=18)
    _state_table(doc, req, s)
    doc.finish_page()


def _state_table(doc: Document, req: Request, s: Summary) -> None:
    labels = doc.labels
    heading_cont = labels("delivery_by_state_continued")
    top = max(n for _, n in s.states)
    x_count, x_share, x_bar = MARGIN + 250, MARGIN + 310, MARGIN + 322
    bar_room = doc.right - x_bar

    def heading(text: str) -> None:
        page = doc.room(60)
        doc.y -= 16
        page.text(MARGIN, doc.y, text, doc.bold, 14)
        doc.y -= 20
        for x, key, align in ((MARGIN, "delivery_col_state", "left"), (x_count, "delivery_col_signatures", "right"),
                              (x_share, "delivery_col_share", "right")):
            page.text(x, doc.y, labels(key), doc.bold, 8.5, GRAY, align=align)
        doc.y -= 5
        page.line(MARGIN, doc.y, doc.right, doc.y, 0.5, 0.6)
        doc.y -= 2

    heading(labels("delivery_by_state"))
    for i, (code, n) in enumerate(s.states):
        if doc.y - 15 < MARGIN + 6:
            doc.new_page()
            heading(heading_cont)
        page = doc.page
        doc.y -= 15
        if i % 2:
            page.rect(MARGIN, doc.y - 4, doc.right - MARGIN, 15, LIGHT)
        name = doc.regular.wrap(f"{state_name(code, req.language)} ({code})", 10, x_count - MARGIN - 60, 1)[0]
        page.text(MARGIN, doc.y, name, doc.regular, 10)
        page.text(x_count, doc.y, f"{n:,}", doc.regular, 10, align="right")
        share = 100.0 * n / s.listed
        page.text(x_share, doc.y, f"{share:.1f}%" if share >= 0.1 else "<0.1%", doc.regular, 10, align="right")
        page.rect(x_bar, doc.y - 1.5, max(0.8, bar_room * n / top), 9, BAR)


# --- the signers -------------------------------------------------------------------------------------

NAME_X, CITY_X, STATE_X = MARGIN + 40, MARGIN + 250, MARGIN + 400
SIZE, LEADING = 9.0, 11.5


def _signers(doc: Document, req: Request, rows, s: Summary, to_date) -> Iterator[None]:
    """One page group per state: its heading, the column heads, then numbered rows; a page is written
    (and yielded) as soon as it is full. A million rows pass here: what repeats (cities, dates,
    y positions) is encoded and measured once."""
    labels, regular = doc.labels, doc.regular
    encode, width = regular.encode, regular.width
    right = doc.right
    name_room, city_room = CITY_X - NAME_X - 10, STATE_X - CITY_X - 10
    counts = dict(s.states)
    short = req.names == "short"
    heads = [(MARGIN + 26, labels("delivery_col_number"), "right"), (NAME_X, labels("delivery_col_name"), "left"),
             (CITY_X, labels("delivery_col_city"), "left"), (STATE_X, labels("delivery_col_state"), "left"),
             (right, labels("delivery_col_date"), "right")]
    name_x, city_x, state_x = f"{NAME_X:.2f}", f"{CITY_X:.2f}", f"{STATE_X:.2f}"
    ys: dict[float, str] = {}
    cities: dict[str, list[str]] = {}
    days: dict[float, tuple[str, str]] = {}  # by the quarter hour: every time zone's offset is a multiple
    state = None
    code_hex = ""
    number = 0
    items: list[str] = []
    shade = 0

    def start(code: str, continued: bool) -> None:
        nonlocal items, shade
        name = state_name(code, req.language)
        header = labels("delivery_continued" if continued else "delivery_state_heading", state=name, code=code)
        page = doc.new_page(header)
        if continued:
            doc.y -= 14
            page.text(MARGIN, doc.y, header, doc.bold, 12)
        else:
            doc.y -= 20
            heading = page.text(MARGIN, doc.y, header, doc.bold, 18)
            page.text(MARGIN + heading + 10, doc.y, labels.signatures(counts.get(code, 0)), regular, 11, GRAY)
        doc.y -= 20
        for x, text, align in heads:
            page.text(x, doc.y, text, doc.bold, 8, GRAY, align=align)
        doc.y -= 5
        page.line(MARGIN, doc.y, right, doc.y, 0.5, 0.6)
        doc.y -= 2
        items = []
        shade = 0

    def flush() -> None:
        doc.page.shown(regular, SIZE, items)
        doc.finish_page()

    for code, city, name, signed_at in rows:
        if code != state:
            if state is not None:
                flush()
                yield
            state, number, code_hex = code, 0, encode(code)
            start(code, False)
        number += 1
        name_lines = regular.wrap(short_name(name) if short else name, SIZE, name_room, 3)
        city_lines = cities.get(city)
        if city_lines is None:
            city_lines = cities[city] = [f"<{encode(line)}>" for line in regular.wrap(city, SIZE, city_room, 2)]
        lines = len(name_lines) if len(name_lines) >= len(city_lines) else len(city_lines)
        height = lines * LEADING + 2
        if doc.y - height < MARGIN + 6:
            flush()
            yield
            start(code, True)
        top = doc.y
        if shade:
            doc.page.rect(MARGIN, top - height, right - MARGIN, height, LIGHT)
        shade ^= 1
        y = top - LEADING + 2
        for i in range(lines):
            line_y = y - i * LEADING
            y_text = ys.get(line_y)
            if y_text is None:
                y_text = ys[line_y] = f"{line_y:.2f} Tm "
            if i < len(name_lines):
                items.append(f"{name_x} {y_text}<{encode(name_lines[i])}>")
            if i < len(city_lines):
                items.append(f"{city_x} {y_text}{city_lines[i]}")
            if i == 0:
                if signed_at.tzinfo is None:  # SQLite gives naive UTC
                    signed_at = signed_at.replace(tzinfo=timezone.utc)
                stamp = signed_at.timestamp() // 900
                day = days.get(stamp)
                if day is None:
                    text = to_date(signed_at).isoformat()
                    day = days[stamp] = (f"{right - width(text, SIZE):.2f} ", f"<{encode(text)}>")
                    if len(days) > 50000:  # bounded: memory stays flat however long the campaign ran
                        days.clear()
                text = f"{number:,}"
                items.append(f"{state_x} {y_text}<{code_hex}>")
                items.append(f"{day[0]}{y_text}{day[1]}")
                items.append(f"{MARGIN + 26 - width(text, SIZE):.2f} {y_text}<{encode(text)}>")
        doc.y = top - height
    if state is not None:
        flush()
        yield


def _cities(doc: Document, req: Request, rows, s: Summary, to_date) -> Iterator[None]:
    """``none``: no names; per state, each city and how many signed there, in one flowing list."""
    labels, regular = doc.labels, doc.regular
    counts = dict(s.states)
    city_room = doc.right - MARGIN - 120
    state, city, n = None, None, 0
    header = ""

    def state_heading(code: str, continued: bool = False) -> None:
        nonlocal header
        name = state_name(code, req.language)
        header = labels("delivery_continued" if continued else "delivery_state_heading", state=name, code=code)
        page = doc.room(80 if not continued else 0, header)
        doc.y -= 24
        width = page.text(MARGIN, doc.y, header, doc.bold, 14)
        if not continued:
            page.text(MARGIN + width + 10, doc.y, labels.signatures(counts.get(code, 0)), regular, 10, GRAY)
        doc.y -= 16
        page.text(MARGIN, doc.y, labels("delivery_col_city"), doc.bold, 8, GRAY)
        page.text(doc.right, doc.y, labels("delivery_col_signers"), doc.bold, 8, GRAY, align="right")
        doc.y -= 5
        page.line(MARGIN, doc.y, doc.right, doc.y, 0.5, 0.6)
        doc.y -= 2

    def emit(code: str, name: str, count: int) -> bool:
        lines = regular.wrap(name, 10, city_room, 2)
        height = len(lines) * 13 + 2
        new_page = doc.y - height < MARGIN + 6
        if new_page:
            doc.new_page(header)
            state_heading(code, continued=True)
        page = doc.page
        for i, line in enumerate(lines):
            page.text(MARGIN, doc.y - 11 - i * 13, line, regular, 10)
        page.text(doc.right, doc.y - 11, f"{count:,}", regular, 10, align="right")
        doc.y -= height
        return new_page

    doc.new_page()
    doc.y += 12
    for code, place, _name, _signed in rows:
        if code != state or place != city:
            if n and emit(state, city, n):
                yield
            n = 0
            if code != state:
                state, city = code, None
                state_heading(code)
            city = place
        n += 1
    if n:
        emit(state, city, n)
    yield
