"""The public campaign page, its embeddable counter, `/`, and the delivery and flyer downloads in the
staff console, through Flask's test client (the real browser is in tests/browser/test_public_browser.py)."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from tests.e2e.test_staff import EMAIL, audit_rows, csrf_token, fast_hashing, sign_in, staff_user  # noqa: F401
from tests.support import signers as S


@pytest.fixture
def channels(rt):
    rt.settings = replace(rt.settings, sms_number="56565", twilio_whatsapp_from="whatsapp:+13125550100",
                          telegram_bot_username="PresenteBot")
    return rt


@pytest.fixture
def prod_client(rt):
    from webhooks import create_app

    return create_app({"SIMULATOR_OPEN": False}, rt).test_client()


def test_root_leads_to_the_simulator_in_development_and_the_campaign_page_in_production(client, prod_client):
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"] == "/simulator/"
    response = prod_client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/c/end-scomm")


def test_public_page_shows_count_goal_and_ways_to_sign(client, channels, clock):
    for phone, keyword, name, zip_code in S.SIGNERS[:2]:
        S.sign(client, clock, phone, keyword, name, zip_code)
    response = client.get("/c/end-scomm")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>End S-Comm Now</h1>" in html and "2 signatures" in html and "of 100,000" in html
    assert "terminate the S-Comm program immediately" in html
    assert 'href="sms:56565?body=SCOMM"' in html and 'href="https://wa.me/13125550100?text=SCOMM"' in html
    assert 'href="https://t.me/PresenteBot?start=end-scomm"' in html
    assert "Text SCOMM to 56565" in html and html.count("<svg") == 4  # the thermometer and three QR codes
    # public, cached like the counter API, and nothing of any signer
    assert response.headers["Cache-Control"] == "public, max-age=5"
    assert "Accept-Language" in response.headers["Vary"] and "Cookie" not in response.headers["Vary"]
    assert "Set-Cookie" not in response.headers
    for phone, _, name, _ in S.SIGNERS[:2]:
        assert name not in html and phone[2:] not in html
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("how", [{"query_string": {"lang": "es"}}, {"headers": {"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}}])
def test_public_page_in_spanish(client, channels, how):
    html = client.get("/c/end-scomm", **how).get_data(as_text=True)
    assert '<html lang="es">' in html and "<h1>Fin a S-Comm Ya</h1>" in html
    assert "0 firmas" in html and "de 100,000" in html and "Envía FIRMA al 56565" in html
    assert 'href="sms:56565?body=FIRMA"' in html and "In English" in html


def test_english_wins_for_an_english_browser_and_lang_overrides(client):
    assert '<html lang="en">' in client.get("/c/end-scomm", headers={"Accept-Language": "en-US,en;q=0.9"}).get_data(as_text=True)
    html = client.get("/c/end-scomm?lang=en", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="en">' in html


def test_embed_may_be_framed_and_nothing_else(client, clock):
    S.sign(client, clock, *S.SIGNERS[0])
    response = client.get("/c/end-scomm/embed")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "1 signature<" in html and "of 100,000" in html
    assert "X-Frame-Options" not in response.headers
    assert "frame-ancestors *" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "public, max-age=5"
    assert 'target="_blank"' in html and "/c/end-scomm?lang=en" in html
    for path in ("/c/end-scomm", "/staff/login", "/simulator/", "/c/end-scomm/embed/x", "/api/campaigns/end-scomm"):
        assert client.get(path).headers.get("X-Frame-Options") == "DENY", path


def test_unknown_campaign_is_a_404_page(client):
    for path in ("/c/nope", "/c/nope/embed", "/c/nope?lang=es"):
        response = client.get(path)
        assert response.status_code == 404 and response.mimetype == "text/html"
    assert "No encontramos esa petición" in client.get("/c/nope?lang=es").get_data(as_text=True)


def test_a_closed_campaign_says_so(client, rt, channels):
    from types import MappingProxyType

    campaign = replace(rt.catalog.campaigns["end-scomm"], active=False)
    closed = replace(rt.catalog, campaigns=MappingProxyType({"end-scomm": campaign}))
    rt.use(closed, (rt.live.version or 0) + 1)
    html = client.get("/c/end-scomm").get_data(as_text=True)
    assert "This petition is closed" in html and "sms:" not in html
    assert "This petition is closed" in client.get("/c/end-scomm/embed").get_data(as_text=True)


def test_no_channel_configured_says_signing_opens_soon(client):
    assert "Signing opens soon." in client.get("/c/end-scomm").get_data(as_text=True)


# --- the staff console ------------------------------------------------------------------------------


def test_console_offers_short_names_by_default_and_warns_about_full_names(client, staff_user):
    sign_in(client)
    html = client.get("/staff/campaigns/end-scomm").get_data(as_text=True)
    assert re.search(r'value="short" checked', html)
    assert "every signer's full name goes to the target" in html
    assert "/c/end-scomm/embed" in html and "&lt;iframe" in html


@pytest.mark.slow
def test_console_delivery_download_is_audited(client, rt, clock, staff_user, tmp_path):
    S.seed(client, rt, clock)
    sign_in(client)
    token = csrf_token(client, "/staff/campaigns/end-scomm")
    response = client.post("/staff/campaigns/end-scomm/delivery",
                           data={"csrf_token": token, "names": "short", "state": "IL", "language": "es"})
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert 'filename="end-scomm-il-delivery.pdf"' in response.headers["Content-Disposition"]
    pdf = tmp_path / "d.pdf"
    pdf.write_bytes(response.get_data())
    text = " ".join(S.pdf_text(pdf).split())
    assert "Ana N." in text and "Núñez" not in text and "Firmas por estado" in text and "Texas" not in text
    assert (EMAIL, "delivery", "end-scomm", "names short, IL, es") in audit_rows(rt)


@pytest.mark.parametrize("form, status, words", [
    ({"state": "ZZ"}, 400, "is not a US state or territory code"),
    ({"names": "initials"}, 400, "names must be one of full, short, none"),
    ({"language": "fr"}, 400, "language must be one of en, es"),
])
def test_console_delivery_bad_input_is_a_clear_4xx(client, rt, clock, staff_user, form, status, words):
    S.sign(client, clock, *S.SIGNERS[0])
    sign_in(client)
    token = csrf_token(client, "/staff/campaigns/end-scomm")
    response = client.post("/staff/campaigns/end-scomm/delivery", data={"csrf_token": token, **form})
    assert response.status_code == status and words in response.get_data(as_text=True)
    assert not any(action == "delivery" for _, action, _, _ in audit_rows(rt))
    assert client.post("/staff/campaigns/nope/delivery", data={"csrf_token": token}).status_code == 404


def test_console_delivery_without_signatures_is_a_clear_4xx(client, staff_user):
    sign_in(client)
    token = csrf_token(client, "/staff/campaigns/end-scomm")
    response = client.post("/staff/campaigns/end-scomm/delivery", data={"csrf_token": token})
    assert response.status_code == 400 and "has no signatures to deliver yet" in response.get_data(as_text=True)


@pytest.mark.slow
def test_console_flyer_download(client, channels, staff_user, tmp_path):
    sign_in(client)
    token = csrf_token(client, "/staff/campaigns/end-scomm")
    response = client.post("/staff/campaigns/end-scomm/flyer", data={"csrf_token": token, "language": "es"})
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    pdf = tmp_path / "f.pdf"
    pdf.write_bytes(response.get_data())
    assert "sms:56565?body=FIRMA" in S.qr_codes(pdf, tmp_path)


def test_console_flyer_with_nothing_configured_is_a_clear_4xx(client, staff_user):
    sign_in(client)
    token = csrf_token(client, "/staff/campaigns/end-scomm")
    response = client.post("/staff/campaigns/end-scomm/flyer", data={"csrf_token": token})
    assert response.status_code == 400 and "no way to sign is configured" in response.get_data(as_text=True)
