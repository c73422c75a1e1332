"""Editing and creating campaigns in a real browser (Playwright driving Debian's Chromium, as in
test_staff_browser.py): the SMS summary's length and segments follow the typing (campaign_form.js,
under the CSP), problems come back in the file check's words beside their fields, and a saved change
is what members get. Screenshots at desktop and phone widths go to screenshots/."""

from __future__ import annotations

import re

from tests.browser.test_staff_browser import (  # noqa: F401 - fixtures
    browser, fast_hashing, live, page, post_signed_sms, pytestmark, shoot, sign_in,
)

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - skipped by pytestmark then
    expect = None

SUMMARY = "End S-Comm: it turns local police into immigration agents. Sign to end it."


def test_edit_a_campaign_with_the_live_sms_count(page, live):
    sign_in(page)
    page.get_by_role("link", name="End S-Comm Now", exact=True).click()
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit “End S-Comm Now”")).to_be_visible()
    expect(page.get_by_label("Keywords (English)")).to_have_value("SCOMM")
    expect(page.get_by_label("Keywords (Spanish)")).to_have_value("FIRMA")
    counter = page.locator("#summary_en-count")
    expect(counter).to_have_text(re.compile(r"^\d+ characters · 2 segments \(GSM-7\): fits$"))
    shoot(page, "20-campaign-edit")

    summary = page.get_by_label("SMS summary (English)")
    summary.fill(SUMMARY)
    expect(counter).to_have_text(f"{len(SUMMARY)} characters · 1 segment (GSM-7): fits")
    summary.fill("Sign now ✊")
    expect(counter).to_have_text("10 characters · 1 segment (UCS-2: a character is outside the GSM alphabet): it "
                                 "must fit 2 GSM-7 segments")
    summary.fill("“Curly” quotes and á fold to GSM-7 " * 9)  # to_gsm, as the server sends it
    expect(counter).to_have_text("314 characters · 3 segments (GSM-7): too long, it must fit 2 segments "
                                 "(306 characters)")
    shoot(page, "21-campaign-edit-too-long")
    page.get_by_role("button", name="Save").click()

    # the server says the same, in the file check's words, at the top and beside the field
    expect(page.get_by_role("alert")).to_contain_text(
        "campaign 'end-scomm' (en): the SMS summary takes 3 GSM-7 segments (314 characters); it must fit 2 "
        "GSM-7 segments (306 characters)")
    expect(page.locator("#summary_en-errors")).to_contain_text("takes 3 GSM-7 segments")
    expect(summary).to_have_attribute("aria-invalid", "true")
    expect(counter).to_have_text("314 characters · 3 segments (GSM-7): too long, it must fit 2 segments "
                                 "(306 characters)")
    shoot(page, "22-campaign-edit-problem")

    summary.fill(SUMMARY)
    page.get_by_label("Keywords (English)").fill("SCOMM, ENDSCOMM")
    page.get_by_label("Goal").fill("150,000")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved.")
    expect(page.get_by_text("of 150,000")).to_be_visible()
    assert SUMMARY in post_signed_sms(live, "+13125550140", "endscomm")

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="campaign edit")).to_be_visible()
    shoot(page, "23-audit-campaign-edit")


def test_create_a_campaign_on_a_phone(page, live):
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page)
    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Short name in links (slug)").fill("dream-act")
    page.get_by_label("Keywords (English)").fill("DREAM")
    page.get_by_label("Keywords (Spanish)").fill("SUEÑO")
    page.get_by_label("Title (English)").fill("Dream Act Now")
    page.get_by_label("Title (Spanish)").fill("Dream Act Ya")
    page.get_by_label("SMS summary (English)").fill("Tell Congress: pass the Dream Act now. Add your name.")
    page.get_by_label("SMS summary (Spanish)").fill("Dile al Congreso: aprueba el Dream Act ya. Firma.")
    page.get_by_label("Petition text (English)").fill("We ask Congress to pass the Dream Act.")
    page.get_by_label("Petition text (Spanish)").fill("Pedimos al Congreso que apruebe el Dream Act.")
    page.get_by_label("Keywords (English)").fill("DREAM, STOP")
    page.get_by_role("button", name="Create the campaign").click()
    expect(page.get_by_role("alert")).to_contain_text("STOP is reserved for opt-out")
    page.get_by_role("alert").get_by_role("link").first.click()  # each problem leads to its field
    expect(page.get_by_label("Keywords (English)")).to_be_focused()
    shoot(page, "24-campaign-new-problem")
    page.get_by_label("Keywords (English)").fill("DREAM")
    page.get_by_role("button", name="Create the campaign").click()
    expect(page.get_by_role("heading", name="Dream Act Now")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("members can text DREAM, SUEÑO")
    assert "Dile al Congreso" in post_signed_sms(live, "+13125550141", "Sueño")
