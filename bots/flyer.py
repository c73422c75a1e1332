"""The flyer: one printable Letter page to recruit signers on paper (a church table, a rally), with the
campaign's title and summary, "Text KEYWORD to NUMBER" in large type, and a labelled QR code for each
configured way to sign (bots.signup)."""

from __future__ import annotations

import io

from bots import signup
from bots.channels import ProviderRefused
from bots.pdf import BOLD, REGULAR, FontMissing, Page, Writer, find_font
from bots.runtime import Runtime
from config.campaigns import LANGUAGES

MARGIN = 54.0
ACCENT = (0.16, 0.38, 0.62)


class FlyerError(ValueError):
    """A flyer that cannot be made; the message says why in one line."""


def ways_to_sign(rt: Runtime, slug: str, language: str) -> list[signup.Way]:
    """The configured ways, or FlyerError (unknown campaign or language, nothing configured, or a
    provider that must be asked and does not answer, such as Telegram's getMe)."""
    if slug not in rt.catalog.campaigns:
        raise FlyerError(f"no campaign {slug!r}; the campaigns are: {', '.join(rt.catalog.campaigns)}")
    if language not in LANGUAGES:
        raise FlyerError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}")
    try:
        find_font(REGULAR), find_font(BOLD)
    except FontMissing as exc:
        raise FlyerError(str(exc)) from None
    try:
        ways = signup.ways(rt.settings, rt.catalog, rt.catalog.campaigns[slug], language, strict=True)
    except ProviderRefused as exc:
        raise FlyerError(str(exc)) from None
    if not ways:
        raise FlyerError("no way to sign is configured: set FIRMA_SMS_NUMBER, TWILIO_WHATSAPP_FROM or "
                         "TELEGRAM_BOT_TOKEN (with TELEGRAM_BOT_USERNAME)")
    return ways


def render(rt: Runtime, slug: str, language: str, ways: list[signup.Way]) -> bytes:
    catalog = rt.catalog
    campaign = catalog.campaigns[slug]
    text = campaign.text(language)
    out = io.BytesIO()
    writer = Writer(out)
    regular, bold = writer.fonts["regular"], writer.fonts["bold"]
    page = writer.new_page()
    width, height = writer.page_size
    center, content = width / 2, width - 2 * MARGIN
    y = height - MARGIN - 4
    page.text(center, y, catalog.organization.name, bold, 14, ACCENT, align="center")
    y -= 18
    for line in bold.wrap(text.title, 40, content, 3):
        y -= 44
        page.text(center, y, line, bold, 40, align="center")
    y -= 12
    for line in regular.wrap(text.summary, 12.5, content, 6):
        y -= 17
        page.text(center, y, line, regular, 12.5, 0.2, align="center")
    y -= 24
    page.rect(MARGIN, y - 96, content, 96, ACCENT)
    first = ways[0]
    big = first.headline or first.instruction
    size = 40.0
    while size > 18 and not bold.fits(big, size, content - 24):
        size -= 2
    lines = bold.wrap(big, size, content - 24, 2)
    page.text(center, y - 30, catalog.phrase("flyer_sign", language), bold, 15, 1.0, align="center")
    base = y - 48 - size * 0.75 + (size * 0.55 if len(lines) > 1 else 0)
    for i, line in enumerate(lines):
        page.text(center, base - i * size * 1.05, line, bold, size, 1.0, align="center")
    y -= 96
    if first.fine_print:
        for line in regular.wrap(first.fine_print, 9, content):
            y -= 13
            page.text(center, y, line, regular, 9, 0.3, align="center")
    y -= 30
    page.text(center, y, catalog.phrase("flyer_scan", language), regular, 13, align="center")
    y -= 16
    _codes(page, ways, regular, bold, y)
    if rt.settings.public_url:  # the campaign's public page, for those who would rather type an address
        page.text(center, MARGIN + 12, f"{rt.settings.public_url}/c/{slug}".removeprefix("https://"), bold, 14,
                  ACCENT, align="center")
    writer.add_page(page)
    writer.close(title=text.title, author=catalog.organization.name, subject=big, created=rt.now())
    return out.getvalue()


def _codes(page: Page, ways: list[signup.Way], regular, bold, top: float) -> None:
    width = page.width - 2 * MARGIN
    slot = width / len(ways)
    side = min(165.0, slot - 24)
    for i, way in enumerate(ways):
        qr = signup.qr(way.uri)
        modules = qr.symbol_size(border=0)[0]
        module = side / modules
        x0 = MARGIN + slot * i + (slot - side) / 2
        y0 = top - 10
        dark = [(col, row) for row, bits in enumerate(qr.matrix_iter(border=0))
                for col, bit in enumerate(bits) if bit]
        page.squares(x0, y0, module, dark)
        cx = x0 + side / 2
        y = y0 - side - 20
        page.text(cx, y, way.label, bold, 14, ACCENT, align="center")
        for line in regular.wrap(way.instruction, 10, slot - 16, 3):
            y -= 14
            page.text(cx, y, line, regular, 10, align="center")
