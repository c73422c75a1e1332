"""Why firma writes its PDFs itself (bots/pdf.py): the same document shape as a 1,000,000-signer
delivery, 23,000 Letter pages of 43 signer rows in DejaVu Sans, written to a file by firma's writer,
ReportLab and fpdf2, each in a process of its own; wall time and peak RSS (target: 200 MB).

    python3 -m pip install --target /tmp/pdf-libs reportlab fpdf2   # not firma's dependencies
    PDF_LIBS=/tmp/pdf-libs python3 bench/pdf_libraries.py [--pages 23000 | --smoke]

A library that is not installed is reported as such. Rows are drawn as plain text at fixed x (no
wrapping, no tables): the libraries' cheapest path, so their figures are a floor.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402

TARGET_RSS_MB = 200.0
NAMES = ["Ana María Núñez", "José García-López", "Nguyễn Thị Hernández", "Wolfgang Amadeus Ødegård"]
COLUMNS = (54, 90, 300, 450, 500)


def rows(page: int):
    for r in range(43):
        n = page * 43 + r + 1
        yield r, (f"{n:,}", NAMES[n % 4], "San Buenaventura (Ventura)", "CA", "2026-01-01")


def firma(pages: int, out: Path) -> None:
    from bots.pdf import Writer

    with open(out, "wb") as fh:
        writer = Writer(fh)
        font = writer.fonts["regular"]
        for p in range(pages):
            page = writer.new_page()
            for r, cells in rows(p):
                for x, text in zip(COLUMNS, cells):
                    page.text(x, 740 - r * 15.5, text, font, 8.5)
            page.total_pages(54, 30)
            writer.add_page(page)
        writer.close(title="bench")


def reportlab(pages: int, out: Path) -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    from bots.pdf import REGULAR, find_font

    pdfmetrics.registerFont(TTFont("DejaVu", str(find_font(REGULAR))))
    c = canvas.Canvas(str(out), pagesize=(612, 792))
    for p in range(pages):
        c.setFont("DejaVu", 8.5)
        for r, cells in rows(p):
            for x, text in zip(COLUMNS, cells):
                c.drawString(x, 740 - r * 15.5, text)
        c.drawString(54, 30, f"Page {p + 1}")
        c.showPage()
    c.save()


def fpdf2(pages: int, out: Path) -> None:
    from fpdf import FPDF

    from bots.pdf import REGULAR, find_font

    pdf = FPDF(unit="pt", format="letter")
    pdf.add_font("DejaVu", "", str(find_font(REGULAR)))
    for p in range(pages):
        pdf.add_page()
        pdf.set_font("DejaVu", size=8.5)
        for r, cells in rows(p):
            for x, text in zip(COLUMNS, cells):
                pdf.text(x, 52 + r * 15.5, text)
    pdf.output(str(out))


WRITERS = {"firma": firma, "reportlab": reportlab, "fpdf2": fpdf2}


def child(name: str, pages: int, out: Path) -> None:
    t0 = time.perf_counter()
    WRITERS[name](pages, out)
    print(f"{time.perf_counter() - t0:.1f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} "
          f"{out.stat().st_size / 1e6:.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=23_000)
    ap.add_argument("--smoke", action="store_true", help="200 pages, seconds (CI)")
    ap.add_argument("--child", choices=WRITERS)
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.smoke:
        args.pages = 200
    if args.child:
        child(args.child, args.pages, Path(args.out))
        return 0
    print(f"machine: {common.machine()}; {args.pages:,} pages of 43 rows")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(common.ROOT), os.environ.get("PDF_LIBS")])))
    base = None
    with tempfile.TemporaryDirectory(prefix="firma-pdf-") as tmp:
        for name in WRITERS:
            run = subprocess.run([sys.executable, __file__, "--child", name, "--pages", str(args.pages),
                                  "--out", f"{tmp}/{name}.pdf"], env=env, capture_output=True, text=True)
            if run.returncode != 0:
                last = (run.stderr.strip().splitlines() or ["?"])[-1]
                print(f"{name:>9}: not run ({last})")
                continue
            seconds, rss, mb = (float(v) for v in run.stdout.split())
            base = base or (seconds, rss)
            print(f"{name:>9}: {seconds:.1f} s, peak RSS {rss:.0f} MB, {mb:.1f} MB file "
                  f"({seconds / base[0]:.2f}x the time and {rss / base[1]:.2f}x the memory of firma's writer; "
                  f"target {TARGET_RSS_MB:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
