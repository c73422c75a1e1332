"""The staff console and the simulator in a real browser: Playwright driving Debian's Chromium
(/usr/bin/chromium; nothing is downloaded) against the app served on 127.0.0.1.

The app runs as in production (simulator closed to the public, Secure cookies, CSP). Each page is
saved to screenshots/ at desktop and phone widths. Without /usr/bin/chromium (or the playwright
package) these tests are skipped, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import csv
import io
import os
import re
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bots import staff_accounts as svc
from tests.support import twilio_client
from tests.support.staff import cheap_password_hashing

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IN_CI = os.environ.get("CI") == "true"
DESKTOP = {"width": 1280, "height": 900}
PHONE_SIZE = {"width": 390, "height": 844}
EMAIL = "organizer@example.org"
PASSWORD = "correct horse battery staple"

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

_missing = [what for what, ok in (("/usr/bin/chromium", os.path.exists(CHROMIUM)),
                                  ("the playwright package", sync_playwright is not None)) if not ok]
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(bool(_missing) and not IN_CI,
                       reason=f"browser tests need {' and '.join(_missing)} (apt-get install -y chromium; "
                              "pip install '.[test]'); in CI they fail instead"),
]


@pytest.fixture(scope="module")
def browser():
    if _missing:  # only reached in CI: fail loudly rather than skip
        pytest.fail(f"browser tests cannot run: {', '.join(_missing)} missing")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def live(rt):
    """The app, configured as in production, served by werkzeug on 127.0.0.1 with a free port."""
    from werkzeug.serving import make_server

    from webhooks import create_app

    app = create_app({"SIMULATOR_OPEN": False}, rt)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    svc.add_staff(rt.db, EMAIL, PASSWORD, rt.now())
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def page(browser, live):
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True, base_url=live)
    p = context.new_page()
    problems: list[str] = []
    p.on("console", lambda m: problems.append(m.text) if m.type == "error" and not _deliberate(m) else None)
    p.on("pageerror", lambda e: problems.append(str(e)))
    yield p
    context.close()
    assert problems == [], f"the browser reported errors (a CSP violation?): {problems}"


def _deliberate(message) -> bool:
    """Console noise for answers the app gives on purpose (a refused sign-in, a closed simulator)."""
    return bool(re.search(r"status of (400|401|403|422|429) ", message.text)) or \
        message.location.get("url", "").endswith("/favicon.ico")


def shoot(page, name: str) -> None:
    """Full-page screenshots at desktop and phone widths; also checks nothing overflows sideways on a phone."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def save(suffix: str) -> None:  # written whole, then renamed: parallel runs never leave half a PNG
        target = SCREENSHOTS / f"{name}-{suffix}.png"
        target.with_suffix(f".{os.getpid()}.tmp").write_bytes(page.screenshot(full_page=True))
        os.replace(target.with_suffix(f".{os.getpid()}.tmp"), target)

    save("desktop")
    page.set_viewport_size(PHONE_SIZE)
    save("phone")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    page.set_viewport_size(DESKTOP)
    assert overflow <= 1, f"{name}: the page is {overflow}px wider than a phone screen"


def post_signed_sms(live: str, sender: str, body: str) -> str:
    """An inbound SMS over real HTTP, signed as Twilio signs it (for FIRMA_PUBLIC_URL)."""
    params = twilio_client.sms_params(sender, body)
    request = urllib.request.Request(
        live + twilio_client.SMS_PATH, data=urlencode(params).encode(), method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": twilio_client.sign(params)})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return response.read().decode()


def sms_sign_up(live: str, phone: str, keyword="SCOMM", name="Ana María López", zip_code="60601") -> None:
    for text in (keyword, name, zip_code):
        post_signed_sms(live, phone, text)


def sign_in(page, password=PASSWORD) -> None:
    page.goto("/staff/")
    assert "/staff/login" in page.url
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")  # keyboard, no mouse


def test_sign_in_and_see_the_count_a_signed_webhook_created(page, live):
    page.goto("/staff/")
    shoot(page, "01-login")
    sign_in(page, password="not the password")
    expect(page.get_by_role("alert")).to_have_text("That email and password do not match a staff login.")
    shoot(page, "02-login-wrong-password")

    sms_sign_up(live, "+13125550101")
    sign_in(page)
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    expect(page.get_by_test_id("total-end-scomm")).to_have_text("1")
    shoot(page, "03-dashboard")

    sms_sign_up(live, "+12105550102", keyword="FIRMA", name="José Núñez", zip_code="78520")
    page.reload()
    expect(page.get_by_test_id("total-end-scomm")).to_have_text("2")
    page.get_by_role("link", name="End S-Comm Now", exact=True).click()
    expect(page.locator("#total")).to_have_text("2")
    expect(page.locator("#today")).to_have_text("2")
    expect(page.get_by_role("row", name="IL 1")).to_be_visible()
    expect(page.get_by_role("row", name="TX 1")).to_be_visible()
    expect(page.get_by_role("row", name="Spanish 1")).to_be_visible()
    expect(page.get_by_role("img", name="2 signatures from")).to_be_visible()
    shoot(page, "04-campaign")


def test_download_the_export_and_look_up_a_member(page, live):
    sms_sign_up(live, "+13125550101")
    post_signed_sms(live, "+13125550101", "STOP")
    sign_in(page)
    page.get_by_role("link", name="End S-Comm Now", exact=True).click()

    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename.startswith("firma-end-scomm-") and "with-contact" not in download.suggested_filename
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"), newline="")))
    assert [(r["name"], r["state"], r["opted_out"]) for r in rows] == [("Ana María López", "IL", "true")]
    assert "contact" not in rows[0]

    page.get_by_label("Include phone numbers and Telegram ids").check()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"), newline="")))
    assert rows[0]["contact"] == "+13125550101"

    page.get_by_role("link", name="Members").click()
    shoot(page, "05-members")
    page.get_by_label("Phone number or Telegram user id").fill("(312) 555-0101")
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("heading", name="+13125550101")).to_be_visible()
    expect(page.get_by_text("firma sends them nothing more")).to_be_visible()
    expect(page.get_by_role("cell", name="Opted out", exact=True)).to_be_visible()
    shoot(page, "06-member")

    page.get_by_role("link", name="Audit log").click()
    for action in ("sign in", "export", "member lookup", "member view"):
        expect(page.get_by_role("cell", name=action, exact=True).first).to_be_visible()
    expect(page.get_by_role("cell", name="with contact", exact=True)).to_be_visible()
    shoot(page, "07-audit")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto("/staff/audit")
    assert "/staff/login" in page.url


def _chat(page, text: str) -> None:
    # simulator.js sets data-url on the form when it has taken it over; typing before that would submit
    # the form natively (a page reload), as on a slow machine
    page.locator("form#compose[data-url]").wait_for(state="attached")
    before = page.locator(".bubble.bot").count()
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")
    expect(page.locator(".bubble.bot").nth(before)).to_be_visible()


def test_sign_through_the_simulator_in_english_and_in_spanish(page, live):
    response = page.goto("/simulator/")
    assert response.status == 403  # closed to the public in production
    sign_in(page)
    page.get_by_role("link", name="Simulator").click()
    expect(page.get_by_role("heading", name="Try the bot")).to_be_visible()

    for text in ("SCOMM", "Ana López", "60601"):
        _chat(page, text)
    expect(page.locator(".bubble.bot").last).to_contain_text('Ana Lopez of Chicago, IL has signed "End S-Comm Now"')
    shoot(page, "08-simulator-english")

    page.get_by_role("button", name="New person").click()
    for text in ("FIRMA", "José Núñez", "78520"):
        _chat(page, text)
    # SMS replies are GSM-7: the engine writes "firmo" for "firmó" so one segment holds 160 characters
    expect(page.locator(".bubble.bot").last).to_contain_text('de Brownsville, TX firmo "Fin a S-Comm Ya"')
    shoot(page, "09-simulator-spanish")

    page.goto("/staff/")
    expect(page.get_by_test_id("total-end-scomm")).to_have_text("0")  # simulated signatures never count
