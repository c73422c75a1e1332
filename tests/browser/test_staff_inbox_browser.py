"""The inbox in a real browser (Playwright driving Debian's Chromium, as in test_staff_browser.py), at
a phone's width: a member's question after signing is seen (the unread badge), answered with a saved
reply that the page puts in the box, sent to the local Twilio stand-in, and closed. Screenshots go to
screenshots/ (shoot() also checks that nothing overflows a phone's width)."""

from __future__ import annotations

import pytest

from tests.browser.test_staff_browser import (  # noqa: F401 - fixtures
    PHONE_SIZE, browser, fast_hashing, live, page, post_signed_sms, pytestmark, shoot, sign_in, sms_sign_up,
)
from tests.support import broadcasts as h
from tests.support.standins import TwilioStandIn

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - skipped by pytestmark then
    expect = None

MEMBER = "+13125550177"


@pytest.fixture
def twilio(rt):
    with TwilioStandIn() as standin:
        rt.settings = h.settings_for(rt, standin)
        yield standin


def test_a_question_is_seen_answered_and_closed_from_a_phone(twilio, rt, page, live):
    sign_in(page)  # the first login: an admin, who also manages the saved replies
    page.goto("/staff/inbox/saved")
    page.get_by_label("Language").select_option("es")
    page.get_by_label("Title (staff see it)").fill("Próxima reunión")
    page.get_by_label("Text (the member reads it)").fill("¡Gracias! La próxima reunión es el sábado a las 10.")
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_text("Saved reply “Próxima reunión” added.")).to_be_visible()
    shoot(page, "30-inbox-saved-replies")

    sms_sign_up(live, MEMBER, keyword="FIRMA", name="María Pérez")
    ack = post_signed_sms(live, MEMBER, "¿Cómo más puedo ayudar? Puedo ser voluntaria los sábados")
    assert "Alguien de nuestro equipo leera tu mensaje" in ack

    page.set_viewport_size(PHONE_SIZE)
    page.goto("/staff/")
    page.get_by_role("link", name="Inbox").click()
    expect(page.get_by_label("1 unread").first).to_be_visible()
    expect(page.get_by_text("¿Cómo más puedo ayudar? Puedo ser voluntaria los sábados")).to_be_visible()
    shoot(page, "31-inbox-list")

    page.get_by_role("link", name="María Pérez").click()
    expect(page.get_by_role("heading", name="María Pérez")).to_be_visible()
    expect(page.get_by_text("Bot (automatic)")).to_be_visible()
    page.get_by_label("Saved reply").select_option(label="Próxima reunión")  # the script fills the box
    box = page.get_by_label("Reply on SMS, sent now")
    expect(box).to_have_value("¡Gracias! La próxima reunión es el sábado a las 10.")
    box.fill("¡Gracias, María! La próxima reunión es el sábado a las 10.")
    shoot(page, "32-inbox-thread")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_text("Reply sent.")).to_be_visible()
    assert [m["Body"] for m in twilio.messages if m["To"] == MEMBER] == [
        "¡Gracias, Maria! La proxima reunion es el sabado a las 10."]
    expect(page.locator(".msg.from-staff")).to_contain_text("La próxima reunión es el sábado")

    page.get_by_role("button", name="Mark done").click()
    expect(page.get_by_text("Nothing waiting: every conversation is done.")).to_be_visible()
    expect(page.get_by_role("link", name="Inbox", exact=True)).to_be_visible()  # no unread badge now
    shoot(page, "33-inbox-empty")
