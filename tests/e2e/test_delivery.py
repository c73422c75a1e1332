"""`firma deliver` and `firma flyer` as an organizer runs them: the PDF's text (pdftotext) checked against
`firma export`, the flyer's QR codes decoded (zbarimg), and bad input answered in one line."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter

import pytest
from click.testing import CliRunner

from tests.support import signers as S
from webhooks.cli import main

# Each test renders PDFs and reads them back with pdftotext or zbarimg: seconds each, so not in the
# default run (pytest -m slow, or .ci/run, runs them).
pytestmark = pytest.mark.slow


def run(db_url: str, *args: str, **env):
    return CliRunner().invoke(main, list(args), env={"FIRMA_DATABASE_URL": db_url, **env})


def export_rows(db_url: str) -> list[dict]:
    result = run(db_url, "export", "--campaign", "end-scomm")
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.output)))


@pytest.fixture
def seeded(client, rt, clock, db_url):
    S.seed(client, rt, clock)
    return db_url


def deliver(db_url, tmp_path, *args) -> str:
    out = tmp_path / "delivery.pdf"
    result = run(db_url, "deliver", "--campaign", "end-scomm", "--output", str(out), *args)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output
    return S.pdf_text(out)


def test_delivery_lists_the_exported_signers_grouped_by_state(seeded, tmp_path):
    exported = export_rows(seeded)
    text = deliver(seeded, tmp_path)
    rows = S.signer_rows(text)
    assert sorted((n, c, s) for n, c, s, _ in rows) == sorted((r["name"], r["city"], r["state"]) for r in exported)
    # grouped by state: the rows come state by state, each state's heading before its rows
    states = [s for _, _, s, _ in rows]
    assert states == sorted(states)
    for code, name in (("CA", "California"), ("IL", "Illinois"), ("TX", "Texas")):
        assert f"{name} ({code})" in text
    # the cover's table and total agree with the export; the erased signer is counted, never listed
    assert S.state_table(text) == dict(Counter(r["state"] for r in exported))
    assert f"{len(exported) + 1} signatures" in " ".join(text.split())
    assert "One more signer asked to have their data erased" in " ".join(text.split())
    # the opted-out signer is still a signer; nobody simulated, erased or counted twice is listed
    names = [n for n, *_ in rows]
    assert "Pedro Páramo" in names and "Ana María Núñez" in names and "Nguyễn Thị Minh" in names
    assert S.SIMULATED_NAME not in text and S.ERASED[2] not in text and S.TELEGRAM_TWIN not in text
    assert names.count("Luz Linked") == 1
    # no contact data: no phone number in any spelling
    flat = re.sub(r"\D", "", text)
    for phone in S.PHONES:
        assert phone[2:] not in flat and phone not in text


def test_cover_has_title_statement_dates_and_page_numbers(seeded, tmp_path, clock):
    out = tmp_path / "d.pdf"
    assert run(seeded, "deliver", "--campaign", "end-scomm", "-o", str(out)).exit_code == 0
    cover = " ".join(S.pdf_text(out, last=1).split())
    assert "End S-Comm Now" in cover and "Delivered by Presente.org" in cover
    assert "terminate the S-Comm program immediately" in cover
    # six signers a day (and three hours) apart from Nov 27, 18:00 UTC; dates in America/New_York
    assert "Signed between November 27, 2026 and December 3, 2026" in cover
    pages = S.pdf_pages(out)
    assert pages >= 4  # the cover, then one page per state
    for n in range(1, pages + 1):
        assert f"Page {n} of {pages}" in " ".join(S.pdf_text(out, first=n, last=n).split())


@pytest.mark.parametrize("mode", ["short", "none"])
def test_names_short_and_none(seeded, tmp_path, mode):
    exported = export_rows(seeded)
    text = deliver(seeded, tmp_path, "--names", mode)
    flat = " ".join(text.split())
    for r in exported:
        first, *_, last = r["name"].split()
        assert last not in flat  # no surname in either mode
        if mode == "short":
            assert f"{first} {last[0]}." in flat
        else:
            assert first not in flat
    if mode == "short":
        assert len(S.signer_rows(text)) == len(exported)
    else:
        assert S.signer_rows(text) == []
        chicago = sum(1 for r in exported if r["city"] == "Chicago")
        assert re.search(rf"^Chicago\s+{chicago}$", text, re.M)
        assert "names are withheld" in flat


def test_one_state(seeded, tmp_path):
    exported = [r for r in export_rows(seeded) if r["state"] == "IL"]
    text = deliver(seeded, tmp_path, "--state", "il")
    rows = S.signer_rows(text)
    assert sorted(n for n, *_ in rows) == sorted(r["name"] for r in exported)
    assert {s for _, _, s, _ in rows} == {"IL"}
    assert S.state_table(text) == {"IL": len(exported)}
    assert "Texas" not in text and "Guadalupe" not in text


def test_spanish_labels(seeded, tmp_path):
    text = deliver(seeded, tmp_path, "--language", "es")
    flat = " ".join(text.split())
    for words in ("ENTREGA DE LA PETICIÓN", "Fin a S-Comm Ya", "Firmas por estado", "Fecha de firma",
                  "Entregada por Presente.org", "Página 1 de", "de noviembre de 2026", "Nombre", "Ciudad"):
        assert words in flat
    assert "Signatures by state" not in flat and "Date signed" not in flat


def test_a_long_name_wraps_inside_its_column(client, rt, clock, db_url, tmp_path):
    long_name = "Maximiliano Alejandro Bartolomé de la Santísima Trinidad Fernández"
    S.sign(client, clock, "+13125550111", "SCOMM", long_name, "60601")
    text = deliver(db_url, tmp_path)
    lines = [line for line in text.splitlines() if "Maximiliano" in line or "Fernández" in line]
    assert len(lines) >= 2  # wrapped onto a second line, not cut and not over the city column
    assert "Chicago" in lines[0]
    assert " ".join(" ".join(text.split()).split()).count("Fernández") == 1


def test_state_groups_repeat_their_heading_on_every_page(client, rt, clock, db_url, tmp_path):
    from storage.models import Member, Signature

    now = rt.now()
    with rt.db.uow() as uow:
        for i in range(130):
            m = Member(channel="sms", address=f"+1312555{2000 + i}", language="en", created_at=now)
            uow.session.add(m)
            uow.session.flush()
            uow.session.add(Signature(member_id=m.id, campaign="end-scomm", channel="sms", name=f"Signer Number {i}",
                                      zip_code="60601", city="Chicago", state="IL", language="en", signed_at=now))
        uow.commit()
    out = tmp_path / "d.pdf"
    assert run(db_url, "deliver", "--campaign", "end-scomm", "-o", str(out)).exit_code == 0
    pages = S.pdf_pages(out)
    assert pages >= 4
    continued = [n for n in range(3, pages + 1) if "Illinois (IL), continued" in S.pdf_text(out, first=n, last=n)]
    assert continued == list(range(3, pages + 1))
    numbers = [int(n.replace(",", "")) for n, *_ in
               (ROW.groups() for ROW in map(S.ROW.match, S.pdf_text(out).splitlines()) if ROW)]
    assert numbers == list(range(1, 131))


@pytest.mark.parametrize("args, words", [
    (["--campaign", "nope"], "no campaign 'nope'"),
    (["--campaign", "end-scomm", "--state", "ZZ"], "'ZZ' is not a US state or territory code"),
    (["--campaign", "end-scomm", "--names", "initials"], "Invalid value for '--names'"),
    (["--campaign", "end-scomm", "--language", "fr"], "Invalid value for '--language'"),
])
def test_bad_input_is_one_clear_line(seeded, tmp_path, args, words):
    result = run(seeded, "deliver", "--output", str(tmp_path / "x.pdf"), *args)
    assert result.exit_code != 0 and words in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x.pdf").exists()


def test_no_signatures_is_one_clear_line(db_url, tmp_path, client, clock):
    result = run(db_url, "deliver", "--campaign", "end-scomm", "-o", str(tmp_path / "x.pdf"))
    assert result.exit_code == 1 and "has no signatures to deliver yet" in result.output
    S.sign(client, clock, "+13125550101", "SCOMM", "Ana María Núñez", "60601")
    result = run(db_url, "deliver", "--campaign", "end-scomm", "--state", "TX", "-o", str(tmp_path / "x.pdf"))
    assert result.exit_code == 1 and "has no signatures from TX" in result.output
    assert not (tmp_path / "x.pdf").exists()


# --- the flyer ---------------------------------------------------------------------------------------

CHANNELS = {"FIRMA_SMS_NUMBER": "56565", "TWILIO_WHATSAPP_FROM": "whatsapp:+13125550100",
            "TELEGRAM_BOT_USERNAME": "PresenteBot"}


@pytest.mark.parametrize("language, keyword", [("en", "SCOMM"), ("es", "FIRMA")])
def test_flyer_codes_open_the_right_chats(db_url, tmp_path, language, keyword):
    out = tmp_path / "flyer.pdf"
    result = run(db_url, "flyer", "--campaign", "end-scomm", "--language", language, "-o", str(out), **CHANNELS)
    assert result.exit_code == 0, result.output
    assert S.pdf_pages(out) == 1
    assert S.qr_codes(out, tmp_path) == sorted([f"sms:56565?body={keyword}", f"https://wa.me/13125550100?text={keyword}",
                                                "https://t.me/PresenteBot?start=end-scomm"])
    flat = " ".join(S.pdf_text(out).split())
    big = "Text SCOMM to 56565" if language == "en" else "Envía FIRMA al 56565"
    assert big in flat
    assert ("Msg & data rates may apply" if language == "en" else "Pueden aplicar tarifas") in flat  # the SMS disclosure
    labels = ("Text message", "WhatsApp", "Telegram") if language == "en" else ("Mensaje de texto", "WhatsApp", "Telegram")
    for label in labels:
        assert label in flat


def test_flyer_default_file_and_only_configured_channels(db_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(db_url, "flyer", "--campaign", "end-scomm", FIRMA_SMS_NUMBER="56565",
                 FIRMA_PUBLIC_URL="https://firma.example.org")
    assert result.exit_code == 0, result.output
    assert S.qr_codes(tmp_path / "end-scomm-flyer.pdf", tmp_path) == ["sms:56565?body=SCOMM"]
    assert "firma.example.org/c/end-scomm" in S.pdf_text(tmp_path / "end-scomm-flyer.pdf")  # the public page


def test_flyer_asks_telegram_for_the_bot_username(db_url, tmp_path, telegram):
    out = tmp_path / "flyer.pdf"
    result = run(db_url, "flyer", "--campaign", "end-scomm", "-o", str(out), TELEGRAM_BOT_TOKEN=telegram.token,
                 TELEGRAM_API_URL=telegram.url, TELEGRAM_WEBHOOK_SECRET="s3cret")
    assert result.exit_code == 0, result.output
    assert S.qr_codes(out, tmp_path) == [f"https://t.me/{telegram.username}?start=end-scomm"]


def test_flyer_bad_input_is_one_clear_line(db_url, tmp_path):
    result = run(db_url, "flyer", "--campaign", "end-scomm", "-o", str(tmp_path / "f.pdf"))
    assert result.exit_code == 1 and "no way to sign is configured" in result.output
    result = run(db_url, "flyer", "--campaign", "nope", **CHANNELS)
    assert result.exit_code == 1 and "no campaign 'nope'" in result.output
    # a bot token Telegram does not answer for: getMe fails, said in one line
    result = run(db_url, "flyer", "--campaign", "end-scomm", "-o", str(tmp_path / "f.pdf"),
                 TELEGRAM_BOT_TOKEN="1:x", TELEGRAM_API_URL="http://127.0.0.1:9", TELEGRAM_WEBHOOK_SECRET="s")
    assert result.exit_code == 1 and "set TELEGRAM_BOT_USERNAME" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "f.pdf").exists()


def test_default_file_and_a_missing_font(seeded, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(seeded, "deliver", "--campaign", "end-scomm", "--state", "TX")
    assert result.exit_code == 0 and (tmp_path / "end-scomm-delivery.pdf").exists(), result.output
    monkeypatch.setattr("bots.pdf.FONT_DIRS", (str(tmp_path / "no-fonts"),))
    for command in (["deliver"], ["flyer"]):
        result = run(seeded, *command, "--campaign", "end-scomm", "-o", str(tmp_path / "x.pdf"), **CHANNELS)
        assert result.exit_code == 1 and "apt-get install fonts-dejavu-core" in result.output, result.output
        assert "Traceback" not in result.output and not (tmp_path / "x.pdf").exists()


@pytest.mark.parametrize("command", [["deliver"], ["flyer"], ["export"]], ids=lambda c: c[0])
def test_an_output_folder_that_does_not_exist_is_one_clear_line(seeded, tmp_path, command):
    missing = tmp_path / "no" / "such" / "folder" / "out.pdf"
    result = run(seeded, *command, "--campaign", "end-scomm", "-o", str(missing), **CHANNELS)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"Error: cannot write {missing}: No such file or directory"], result.output
    assert not missing.parent.exists()
