"""A campaign's signers as a delivery sees them: signed through the real SMS webhook, plus the cases a
delivery must get right (an opted-out signer, an erased one, a simulated one, one person on two chats),
and the tools to read the PDFs back (poppler's pdftotext and pdftoppm, zbar's zbarimg)."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from bots import privacy
from storage import repository as repo
from storage.models import Member, Signature
from tests.support.twilio_client import post_sms

# phone, keyword, name, ZIP: the listed signers (ZIP 60601 Chicago IL, 60201 Evanston IL, 78520
# Brownsville TX, 90012 Los Angeles CA)
SIGNERS = [
    ("+13125550101", "SCOMM", "Ana María Núñez", "60601"),
    ("+13125550102", "SCOMM", "José García", "60201"),
    ("+12105550103", "FIRMA", "Guadalupe Hernández", "78520"),
    ("+13105550104", "SCOMM", "Nguyễn Thị Minh", "90012"),
    ("+13125550105", "FIRMA", "Pedro Páramo", "60601"),  # opts out afterwards: still a signer
    ("+13125550107", "SCOMM", "Luz Linked", "60601"),  # also signed on Telegram, from Texas (below)
]
OPTED_OUT = "+13125550105"
ERASED = ("+13125550106", "SCOMM", "Olvido Borrado", "60601")
SIMULATED_NAME = "Simulada Prueba"
TELEGRAM_TWIN = "Luz Linked On Telegram"
PHONES = [s[0] for s in SIGNERS] + [ERASED[0]]


def sign(client, clock, phone, keyword, name, zip_code) -> None:
    for text in (keyword, name, zip_code):
        assert post_sms(client, phone, text).status_code == 200
    clock.advance(days=1, hours=3)


def seed(client, rt, clock) -> None:
    """Six listed signers in IL (4), TX (1) and CA (1), over six days; plus an erased, a simulated and a
    second chat of Luz's (a Telegram member linked to her number, whose later signature is in TX)."""
    for signer in SIGNERS:
        sign(client, clock, *signer)
    assert post_sms(client, OPTED_OUT, "STOP").status_code == 200
    sign(client, clock, *ERASED)
    with rt.db.uow() as uow:
        privacy.forget(uow, rt.settings.secret_key, "sms", ERASED[0], rt.now())
    now = rt.now()
    with rt.db.uow() as uow:
        s = uow.session
        sim = Member(channel="sms", address="+15555550199", language="en", simulated=True, created_at=now)
        twin = Member(channel="telegram", address="99887766", language="en", created_at=now)
        s.add_all([sim, twin])
        s.flush()
        s.add(Signature(member_id=sim.id, campaign="end-scomm", channel="sms", name=SIMULATED_NAME, zip_code="60601",
                        city="Chicago", state="IL", language="en", simulated=True, signed_at=now))
        s.add(Signature(member_id=twin.id, campaign="end-scomm", channel="telegram", name=TELEGRAM_TWIN,
                        zip_code="78520", city="Brownsville", state="TX", language="en", simulated=False,
                        signed_at=now + timedelta(hours=1)))
        repo.recount(s, "end-scomm")
        luz = repo.find_member(s, "sms", "+13125550107")
        repo.link_member(s, twin, luz)
        uow.commit()


def need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: apt-get install -y {package} (.ci/run installs it)")
    return path


def pdf_text(path: Path, layout: bool = True, first: int | None = None, last: int | None = None) -> str:
    cmd = [need("pdftotext", "poppler-utils")] + (["-layout"] if layout else [])
    cmd += (["-f", str(first)] if first else []) + (["-l", str(last)] if last else []) + [str(path), "-"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def pdf_pages(path: Path) -> int:
    info = subprocess.run([need("pdfinfo", "poppler-utils"), str(path)], check=True, capture_output=True,
                          text=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def qr_codes(path: Path, tmp: Path) -> list[str]:
    """Every QR code on the PDF's first page, decoded from a 150 dpi rendering."""
    prefix = tmp / "page"
    subprocess.run([need("pdftoppm", "poppler-utils"), "-r", "150", "-png", "-f", "1", "-l", "1", str(path),
                    str(prefix)], check=True)
    png = next(tmp.glob("page*.png"))
    out = subprocess.run([need("zbarimg", "zbar-tools"), "--quiet", "--raw", str(png)], capture_output=True, text=True)
    return sorted(line for line in out.stdout.splitlines() if line)


ROW = re.compile(r"^\s*(\d[\d,]*)\s{2,}(.+?)\s{2,}(.+?)\s{2,}([A-Z]{2})\s{2,}(\d{4}-\d\d-\d\d)\s*$")
STATE_ROW = re.compile(r"^(.+?) \(([A-Z]{2})\)\s{2,}([\d,]+)\s{2,}([\d.<]+%)")


def signer_rows(text: str) -> list[tuple[str, str, str, str]]:
    """(name, city, state, date) of each row of the signer pages (pdftotext -layout)."""
    return [(m.group(2), m.group(3), m.group(4), m.group(5)) for m in map(ROW.match, text.splitlines()) if m]


def state_table(text: str) -> dict[str, int]:
    """The cover's count per state."""
    return {m.group(2): int(m.group(3).replace(",", "")) for m in map(STATE_ROW.match, text.splitlines()) if m}
