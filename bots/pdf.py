"""A PDF writer that writes each page as it is finished, so a document of a million signatures is made
in flat memory.

ReportLab keeps every page's content until ``save()`` and fpdf2 the whole document until ``output()``
(the 23,000 pages of a million signers: 550 MB and 412 MB, against 57 MB here; bench/pdf_libraries.py). Here a page's content stream is compressed and
written out when the page ends; what stays in memory is an offset per object and a reference per page.
What a page does not know yet is written at the end: the fonts (subset by fontTools to the glyphs
used, with a ToUnicode map so the text can be searched and extracted) and the total page count (a
form XObject that every page's footer draws, "Page 12 of" + the total).

Text is drawn in TrueType fonts embedded as CIDFontType2 with Identity-H encoding (two bytes per
glyph), so names keep their accents and most Latin, Greek, Cyrillic and Vietnamese letters.
"""

from __future__ import annotations

import io
import unicodedata
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

LETTER = (612.0, 792.0)  # points

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF",
             "/usr/local/share/fonts", "/usr/share/fonts/truetype")
REGULAR, BOLD = "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"


class FontMissing(RuntimeError):
    """The TrueType font the documents are set in is not installed."""


def find_font(name: str) -> Path:
    for folder in FONT_DIRS:
        path = Path(folder) / name
        if path.is_file():
            return path
    raise FontMissing(f"the font {name} is not installed (Debian and Ubuntu: apt-get install fonts-dejavu-core)")


class Font:
    """A TrueType font: glyph widths for layout, and the two-byte glyph codes a content stream shows.

    Characters the font lacks are drawn as their base letter when they have one (decomposed, accents
    dropped), else as the font's empty box."""

    def __init__(self, path: Path, resource: str):
        from fontTools.ttLib import TTFont

        self.path = path
        self.resource = resource  # /F1, /F2 in the pages' resources
        tt = TTFont(str(path), lazy=True)
        upm = tt["head"].unitsPerEm
        scale = 1000.0 / upm
        metrics = tt["hmtx"].metrics
        self.glyph_ids: dict[str, int] = {}
        self.widths: dict[str, float] = {}  # per character, in 1/1000 of the font size
        for codepoint, glyph in tt.getBestCmap().items():
            char = chr(codepoint)
            self.glyph_ids[char] = tt.getGlyphID(glyph)
            self.widths[char] = metrics[glyph][0] * scale
        self._codes = _Codes(self)  # code point -> the hex of its glyph, filled as characters are met
        self._widths: dict[str, float] = {}
        self.max_width = max(self.widths.values())
        head, hhea, os2 = tt["head"], tt["hhea"], tt["OS/2"]
        self.bbox = [round(v * scale) for v in (head.xMin, head.yMin, head.xMax, head.yMax)]
        self.ascent = round(hhea.ascent * scale)
        self.descent = round(hhea.descent * scale)
        self.cap_height = round(getattr(os2, "sCapHeight", 0) * scale) or self.ascent
        self.name = tt["name"].getDebugName(6) or path.stem
        tt.close()

    def _fallback(self, char: str) -> str:
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        if base and all(c in self.glyph_ids for c in base):
            return base
        return ""

    def encode(self, text: str) -> str:
        """The hex string a content stream shows for ``text`` (str.translate: C speed per character)."""
        return text.translate(self._codes)

    def width(self, text: str, size: float) -> float:
        known = self._widths.get(text)
        if known is None:
            known = sum(map(self._char_width, text)) if len(text) > 1 else self._char_width(text) if text else 0.0
            if len(self._widths) > 20000:  # a cache for repeated strings (cities, dates, numbers): bounded
                self._widths.clear()
            self._widths[text] = known
        return known * size / 1000.0

    def _char_width(self, char: str) -> float:
        width = self.widths.get(char)
        if width is None:
            base = self._fallback(char)
            width = self.widths[char] = sum(self.widths[c] for c in base) if base else 500.0
        return width

    def fits(self, text: str, size: float, room: float) -> bool:
        """Whether ``text`` fits ``room`` points; short strings are known to fit without measuring."""
        return len(text) * self.max_width * size / 1000.0 <= room or self.width(text, size) <= room

    def wrap(self, text: str, size: float, room: float, max_lines: int = 0) -> list[str]:
        """Lines of at most ``room`` points: broken between words, and inside a word only when one
        word alone is too long. ``max_lines`` > 0 cuts the rest with an ellipsis."""
        if self.fits(text, size, room):
            return [text]
        lines: list[str] = []
        line = ""
        for word in text.split():
            candidate = f"{line} {word}" if line else word
            if self.width(candidate, size) <= room:
                line = candidate
                continue
            if line:
                lines.append(line)
            while self.width(word, size) > room:  # one word wider than the column: cut it
                cut = len(word) - 1
                while cut > 1 and self.width(word[:cut], size) > room:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            lines.append(line)
        if max_lines and len(lines) > max_lines:
            last = lines[max_lines - 1]
            while last and self.width(last + "…", size) > room:
                last = last[:-1]
            lines = lines[:max_lines - 1] + [last.rstrip() + "…"]
        return lines

    def glyph_map(self) -> dict[int, str]:
        """Glyph id -> the text it stands for, for the glyphs used (the ToUnicode map)."""
        out: dict[int, str] = {}
        for char in self._codes.used():
            gid = self.glyph_ids.get(char)
            if gid is not None and gid not in out:
                out[gid] = char
        return out


class _Codes(dict):
    """str.translate's table: a character's glyph as four hex digits, looked up the first time the
    character is met (so the table's keys are also the characters used, for the font's subset). A
    character the font lacks is shown as its base letter (accent dropped) or the empty box."""

    def __init__(self, font: Font):
        super().__init__()
        self.font = font
        self._fallbacks: set[str] = set()

    def __missing__(self, codepoint: int) -> str:
        char = chr(codepoint)
        gid = self.font.glyph_ids.get(char)
        if gid is not None:
            code = f"{gid:04X}"
        else:
            base = self.font._fallback(char)
            code = "".join(f"{self.font.glyph_ids[c]:04X}" for c in base) if base else "0000"
            self._fallbacks.update(base)
        self[codepoint] = code
        return code

    def used(self) -> set[str]:
        return {chr(cp) for cp in self} | self._fallbacks


def pdf_string(text: str) -> str:
    """A PDF text string (document information): UTF-16BE with its byte order mark, in hex."""
    return "<FEFF" + text.encode("utf-16-be").hex().upper() + ">"


@dataclass
class Page:
    """The drawing operators of one page, in PDF user space (origin bottom left, points)."""

    width: float
    height: float
    ops: list[str] = field(default_factory=list)

    def text(self, x: float, y: float, text: str, font: Font, size: float, color: float | tuple = 0.0,
             align: str = "left") -> float:
        """Draw ``text`` with its baseline at ``y``; returns its width."""
        if not text:
            return 0.0
        width = font.width(text, size)
        if align == "right":
            x -= width
        elif align == "center":
            x -= width / 2
        self.ops.append(f"BT {_fill(color)} {font.resource} {size:g} Tf 1 0 0 1 {x:.2f} {y:.2f} Tm "
                        f"<{font.encode(text)}> Tj ET")
        return width

    def shown(self, font: Font, size: float, items: list[str]) -> None:
        """Many text items in one black text object; each item is "X Y Tm <hex>" (positions already
        formatted, text already encoded: the signer list's hot path)."""
        if items:
            self.ops.append(f"BT 0 g {font.resource} {size:g} Tf\n1 0 0 1 " + " Tj\n1 0 0 1 ".join(items)
                            + " Tj\nET")

    def rect(self, x: float, y: float, w: float, h: float, color: float | tuple = 0.0) -> None:
        self.ops.append(f"{_fill(color)} {x:.2f} {y:.2f} {w:.2f} {h:.2f} re f")

    def line(self, x1: float, y1: float, x2: float, y2: float, width: float = 0.5, color: float | tuple = 0.0) -> None:
        self.ops.append(f"{_stroke(color)} {width:g} w {x1:.2f} {y1:.2f} m {x2:.2f} {y2:.2f} l S")

    def squares(self, x: float, y: float, module: float, dark: list[tuple[int, int]]) -> None:
        """Black squares of ``module`` points at (column, row) offsets from the top-left (x, y): a QR code."""
        parts = ["0 g"]
        for col, row in dark:
            parts.append(f"{x + col * module:.3f} {y - (row + 1) * module:.3f} {module:.3f} {module:.3f} re")
        parts.append("f")
        self.ops.append("\n".join(parts))

    def total_pages(self, x: float, y: float) -> None:
        """Draw the document's page count (known only at the end) with its baseline at (x, y)."""
        self.ops.append(f"q 1 0 0 1 {x:.2f} {y:.2f} cm /Tot Do Q")


def _fill(color: float | tuple) -> str:
    if isinstance(color, tuple):
        return f"{color[0]:g} {color[1]:g} {color[2]:g} rg"
    return f"{color:g} g"


def _stroke(color: float | tuple) -> str:
    if isinstance(color, tuple):
        return f"{color[0]:g} {color[1]:g} {color[2]:g} RG"
    return f"{color:g} G"


class Writer:
    """Writes a PDF to ``out`` page by page. ``pending()`` hands back the bytes written since the last
    call when ``out`` is None (streaming an HTTP response)."""

    def __init__(self, out: BinaryIO | None = None, fonts: dict[str, Path] | None = None,
                 page_size: tuple[float, float] = LETTER, compress_level: int = 1,
                 total_font: str = "regular", total_size: float = 8.0, total_color: float = 0.35):
        self._out = out
        self._buffer = io.BytesIO() if out is None else None
        self.offset = 0
        self.page_size = page_size
        self.level = compress_level
        self._offsets: dict[int, int] = {}
        self._next = 1
        self._pages: list[int] = []
        self._catalog, self._pages_root, self._resources, self._total = (self._alloc() for _ in range(4))
        fonts = fonts or {"regular": find_font(REGULAR), "bold": find_font(BOLD)}
        self.fonts: dict[str, Font] = {}
        self._font_objects: dict[str, int] = {}
        for i, (key, path) in enumerate(fonts.items(), 1):
            self.fonts[key] = Font(path, f"/F{i}")
            self._font_objects[key] = self._alloc()
        self._total_style = (total_font, total_size, total_color)
        self._write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")

    # -- low level ------------------------------------------------------------------------------------

    def _alloc(self) -> int:
        n = self._next
        self._next += 1
        return n

    def _write(self, data: bytes) -> None:
        (self._out or self._buffer).write(data)
        self.offset += len(data)

    def _object(self, number: int, body: str | bytes) -> None:
        self._offsets[number] = self.offset
        if isinstance(body, str):
            body = body.encode("latin-1")
        self._write(b"%d 0 obj\n" % number + body + b"\nendobj\n")

    # zlib level 1: a page compresses 5 times faster than at level 6, to a stream 8% larger
    def _stream(self, number: int, data: bytes, extra: str = "", compress: bool = True) -> None:
        if compress:
            data = zlib.compress(data, self.level)
            extra += " /Filter /FlateDecode"
        self._offsets[number] = self.offset
        self._write(b"%d 0 obj\n<< /Length %d%s >>\nstream\n" % (number, len(data), extra.encode("latin-1"))
                    + data + b"\nendstream\nendobj\n")

    def pending(self) -> bytes:
        """The bytes written since the last call (only when writing to no file)."""
        if self._buffer is None:
            return b""
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data

    # -- pages ----------------------------------------------------------------------------------------

    def new_page(self) -> Page:
        return Page(*self.page_size)

    @property
    def page_count(self) -> int:
        return len(self._pages)

    def add_page(self, page: Page) -> int:
        """Write the page now; returns its number (1-based)."""
        content, number = self._alloc(), self._alloc()
        self._stream(content, "\n".join(page.ops).encode("latin-1"))
        self._object(number, f"<< /Type /Page /Parent {self._pages_root} 0 R /MediaBox [0 0 {page.width:g} "
                             f"{page.height:g}] /Resources {self._resources} 0 R /Contents {content} 0 R >>")
        self._pages.append(number)
        return len(self._pages)

    # -- the end --------------------------------------------------------------------------------------

    def close(self, title: str = "", author: str = "", subject: str = "", created: datetime | None = None) -> None:
        """Write what the pages refer to (page count, fonts, page tree), the catalog and the xref."""
        key, size, color = self._total_style
        font = self.fonts[key]
        total = f"{len(self._pages):,}"
        body = f"BT {color:g} g {font.resource} {size:g} Tf 0 0 Td <{font.encode(total)}> Tj ET".encode("latin-1")
        width = font.width(total, size)
        font_refs = " ".join(f"{f.resource} {self._font_objects[k]} 0 R" for k, f in self.fonts.items())
        self._stream(self._total, body, f" /Type /XObject /Subtype /Form /BBox [0 -3 {width + 2:.2f} {size + 2:g}] "
                                        f"/Resources << /Font << {font_refs} >> >>")
        for key, f in self.fonts.items():
            self._font(self._font_objects[key], f)
        self._object(self._resources, f"<< /Font << {font_refs} >> /XObject << /Tot {self._total} 0 R >> "
                                      f"/ProcSet [/PDF /Text] >>")
        kids = " ".join(f"{n} 0 R" for n in self._pages)
        self._object(self._pages_root, f"<< /Type /Pages /Count {len(self._pages)} /Kids [{kids}] >>")
        self._object(self._catalog, f"<< /Type /Catalog /Pages {self._pages_root} 0 R >>")
        created = created or datetime.now(timezone.utc)
        info = self._alloc()
        stamp = created.astimezone(timezone.utc).strftime("D:%Y%m%d%H%M%SZ")
        self._object(info, f"<< /Title {pdf_string(title)} /Author {pdf_string(author)} /Subject {pdf_string(subject)} "
                           f"/Producer (firma) /Creator (firma) /CreationDate ({stamp}) >>")
        xref = self.offset
        lines = [f"xref\n0 {self._next}\n", "0000000000 65535 f \n"]
        for n in range(1, self._next):
            lines.append(f"{self._offsets[n]:010d} 00000 n \n")
        self._write("".join(lines).encode("ascii"))
        self._write((f"trailer\n<< /Size {self._next} /Root {self._catalog} 0 R /Info {info} 0 R >>\n"
                     f"startxref\n{xref}\n%%EOF\n").encode("ascii"))

    def _font(self, number: int, font: Font) -> None:
        import logging

        from fontTools import subset
        from fontTools.ttLib import TTFont

        logging.getLogger("fontTools").setLevel(logging.WARNING)  # one INFO line per table otherwise

        glyphs = font.glyph_map()
        digest = zlib.crc32(",".join(map(str, sorted(glyphs))).encode())
        tag = "".join(chr(ord("A") + (digest >> (5 * i)) % 26) for i in range(6))  # a subset's name prefix
        base = f"{tag}+{font.name}".replace(" ", "")
        tt = TTFont(str(font.path))
        options = subset.Options()
        options.retain_gids = True  # the pages already show the font's own glyph ids
        options.notdef_outline = True
        options.layout_features = []
        options.name_IDs = ["*"]
        # layout tables (firma sets no ligatures or kerning) and FontForge's timestamp go
        options.drop_tables += ["FFTM", "GSUB", "GPOS", "GDEF", "MATH", "kern"]
        subsetter = subset.Subsetter(options)
        subsetter.populate(gids=sorted({0, *glyphs}))
        subsetter.subset(tt)
        data = io.BytesIO()
        tt.save(data)
        tt.close()
        file_obj, descriptor, cid, to_unicode = (self._alloc() for _ in range(4))
        raw = data.getvalue()
        self._stream(file_obj, raw, f" /Length1 {len(raw)}")
        self._object(descriptor, f"<< /Type /FontDescriptor /FontName /{base} /Flags 32 /FontBBox "
                                 f"[{' '.join(map(str, font.bbox))}] /ItalicAngle 0 /Ascent {font.ascent} "
                                 f"/Descent {font.descent} /CapHeight {font.cap_height} /StemV 80 "
                                 f"/FontFile2 {file_obj} 0 R >>")
        widths = " ".join(f"{gid} [{font.widths[char]:.0f}]" for gid, char in sorted(glyphs.items()))
        self._object(cid, f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /{base} /CIDSystemInfo << /Registry "
                          f"(Adobe) /Ordering (Identity) /Supplement 0 >> /FontDescriptor {descriptor} 0 R "
                          f"/DW 1000 /W [{widths}] /CIDToGIDMap /Identity >>")
        self._stream(to_unicode, _to_unicode(glyphs).encode("ascii"))
        self._object(number, f"<< /Type /Font /Subtype /Type0 /BaseFont /{base} /Encoding /Identity-H "
                             f"/DescendantFonts [{cid} 0 R] /ToUnicode {to_unicode} 0 R >>")


def _to_unicode(glyphs: dict[int, str]) -> str:
    entries = [f"<{gid:04X}> <{char.encode('utf-16-be').hex().upper()}>" for gid, char in sorted(glyphs.items())]
    chunks = []
    for i in range(0, len(entries), 100):
        part = entries[i:i + 100]
        chunks.append(f"{len(part)} beginbfchar\n" + "\n".join(part) + "\nendbfchar")
    return ("/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
            "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
            + "\n".join(chunks) + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n")
