"""The public campaign page and its embeddable counter in a real browser (Playwright driving Debian's
Chromium, as tests/browser/test_staff_browser.py does): the count and the goal, Spanish, no signer
data, and framing: a page of another origin (another port on 127.0.0.1) frames both, and only the
embed shows."""

from __future__ import annotations

import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.browser.test_staff_browser import (DESKTOP, SCREENSHOTS, browser, fast_hashing, live, page, pytestmark, shoot,  # noqa: F401
                                              sms_sign_up)

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the module is skipped then (pytestmark)
    expect = None

SIGNERS = [("+13125550101", "SCOMM", "Ana María Núñez", "60601"), ("+12105550102", "FIRMA", "José García", "78520")]


@pytest.fixture
def channels(rt):
    rt.settings = replace(rt.settings, sms_number="56565", telegram_bot_username="PresenteBot")


@pytest.fixture
def other_site(live):
    """An organization's page on another origin that frames the campaign page and the embed."""
    html = (f'<!doctype html><html><body><h1>Our site</h1>'
            f'<iframe id="page" src="{live}/c/end-scomm" width="600" height="300" title="page"></iframe>'
            f'<iframe id="embed" src="{live}/c/end-scomm/embed" width="320" height="170" title="counter"></iframe>'
            f'</body></html>').encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_public_page_shows_the_live_count_and_how_to_sign(page, live, channels):
    for signer in SIGNERS:
        sms_sign_up(live, signer[0], keyword=signer[1], name=signer[2], zip_code=signer[3])
    page.goto("/c/end-scomm")
    expect(page.get_by_role("heading", name="End S-Comm Now", level=1)).to_be_visible()
    expect(page.locator(".count")).to_have_text("2 signatures of 100,000")
    expect(page.get_by_role("img", name="2 signatures of 100,000")).to_be_visible()  # the thermometer
    expect(page.get_by_text("Text SCOMM to 56565")).to_be_visible()
    expect(page.get_by_role("link", name="Open my messages")).to_have_attribute("href", "sms:56565?body=SCOMM")
    expect(page.get_by_role("link", name="Open Telegram")).to_have_attribute("href", "https://t.me/PresenteBot?start=end-scomm")
    expect(page.locator(".qr svg")).to_have_count(2)
    body = page.locator("body").inner_text()
    for phone, _, name, _ in SIGNERS:
        assert name not in body and phone not in body and phone[2:] not in body
    shoot(page, "20-public-page")

    page.get_by_role("link", name="En español").click()
    expect(page.get_by_role("heading", name="Fin a S-Comm Ya", level=1)).to_be_visible()
    expect(page.locator(".count")).to_have_text("2 firmas de 100,000")
    expect(page.get_by_text("Envía FIRMA al 56565")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "es"
    shoot(page, "21-public-page-es")


def test_spanish_browser_gets_the_spanish_page(browser, live):
    context = browser.new_context(viewport=DESKTOP, base_url=live, locale="es-MX", extra_http_headers={"Accept-Language": "es-MX,es;q=0.9"})
    p = context.new_page()
    p.goto("/c/end-scomm")
    expect(p.get_by_role("heading", name="Fin a S-Comm Ya", level=1)).to_be_visible()
    expect(p.get_by_text("Pronto se podrá firmar.")).to_be_visible()
    context.close()


def test_only_the_embed_can_be_framed_by_another_site(browser, live, other_site):
    sms_sign_up(live, *SIGNERS[0][:1], keyword="SCOMM", name=SIGNERS[0][2], zip_code="60601")
    context = browser.new_context(viewport=DESKTOP)
    p = context.new_page()
    refused: list[str] = []
    p.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
    p.goto(other_site)
    embed = p.frame_locator("#embed")
    expect(embed.locator(".count")).to_have_text("1 signature of 100,000")
    expect(embed.get_by_role("link", name="Sign the petition")).to_have_attribute("target", "_blank")
    page_frame = next(f for f in p.frames if f != p.main_frame and "/embed" not in f.url)
    assert page_frame.url.startswith("chrome-error://"), page_frame.url  # the browser refused to show it
    # one refusal (the campaign page's), by its CSP; the embed's frame-ancestors * let it in
    assert len(refused) == 1 and "frame-ancestors 'none'" in refused[0], refused
    SCREENSHOTS.mkdir(exist_ok=True)
    p.screenshot(path=str(SCREENSHOTS / "22-embed-on-another-site.png"))  # their page: no phone-width check
    context.close()


@pytest.mark.parametrize("lang, count_text", [("en", "1,234,567 signatures of 100,000"),
                                               ("es", "1,234,567 firmas de 100,000")])
def test_the_embed_fits_the_documented_iframe_with_a_large_count(browser, live, rt, lang, count_text):
    """docs/delivery.md gives the organization <iframe width="320" height="170">: a seven-figure count
    still leaves the whole "Sign the petition" button inside it."""
    from sqlalchemy import text

    with rt.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO campaign_counts (campaign, signatures) VALUES ('end-scomm', 1234567) "
                          "ON CONFLICT (campaign) DO UPDATE SET signatures = excluded.signatures"))
    context = browser.new_context(viewport={"width": 320, "height": 170})
    p = context.new_page()
    p.goto(f"{live}/c/end-scomm/embed?lang={lang}")
    expect(p.locator(".count")).to_have_text(count_text)
    button = p.locator("a.button").bounding_box()
    assert button is not None
    assert button["x"] >= 0 and button["x"] + button["width"] <= 320, button
    assert button["y"] >= 0 and button["y"] + button["height"] <= 170, f"the button is cut off: {button}"
    assert p.evaluate("document.documentElement.scrollWidth") <= 320
    context.close()


def test_a_large_delivery_from_a_phone_is_made_by_a_worker_then_downloaded(page, live, rt, monkeypatch):
    from bots import delivery_files
    from tests.browser.test_staff_browser import PHONE_SIZE, sign_in

    monkeypatch.setattr(delivery_files, "DIRECT_LIMIT", 1)  # two signers count as large
    for signer in SIGNERS:
        sms_sign_up(live, signer[0], keyword=signer[1], name=signer[2], zip_code=signer[3])
    page.set_viewport_size(PHONE_SIZE)
    sign_in(page)
    page.goto("/staff/campaigns/end-scomm")
    short = page.get_by_label("First name and last initial (Ana N.)")
    expect(short).to_be_checked()
    box = short.bounding_box()
    assert box["width"] < 30, f"the radio button is stretched across the form: {box}"
    page.get_by_label("Language of the document").select_option("es")
    page.get_by_role("button", name="Download the delivery PDF").click()
    expect(page.get_by_test_id("state")).to_have_text("waiting")
    assert delivery_files.make_next(rt) == 1  # what `firma worker` does
    download_link = page.get_by_role("link", name="Download end-scomm-delivery.pdf")
    expect(download_link).to_be_visible(timeout=10_000)  # the page refreshes itself
    with page.expect_download() as info:
        download_link.click()
    assert info.value.suggested_filename == "end-scomm-delivery.pdf"
    assert open(info.value.path(), "rb").read(5) == b"%PDF-"
    shoot(page, "23-delivery-file")
