"""Broadcasts in a real browser (Playwright driving Debian's Chromium, as in test_staff_browser.py):
compose, preview, confirm and send to the local Twilio and Telegram stand-ins; a worker (in a thread,
with its own event loop, as in its own process) sends; the progress page refreshes itself until it
says "finished"; the member page lists the message. Screenshots go to screenshots/."""

from __future__ import annotations

import pytest

from bots.worker import Options
from bots.runtime import utcnow
from tests.browser.test_staff_browser import (  # noqa: F401 - fixtures
    browser, fast_hashing, live, page, pytestmark, shoot, sign_in,
)
from tests.support import broadcasts as h
from tests.support.standins import TelegramStandIn, TwilioStandIn

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - skipped by pytestmark then
    expect = None


@pytest.fixture
def standins(rt):
    with TwilioStandIn() as twilio, TelegramStandIn(token=h.TG_TOKEN) as telegram:
        rt.settings = h.settings_for(rt, twilio, telegram, sms_rate=2.0)  # slow enough to watch
        rt.clock = utcnow
        yield twilio, telegram


def test_preview_send_and_watch_a_broadcast_finish(standins, rt, page, live):
    twilio, telegram = standins
    ana = h.add_signer(rt, "+13125550001", name="Ana María López")
    h.add_signer(rt, "+13125550002", name="Bob Smith")
    h.add_signer(rt, "+13125550003", name="José Pérez", language="es")
    h.add_signer(rt, "1001", channel="telegram", name="Lupe")

    sign_in(page)
    page.get_by_role("link", name="Broadcasts").click()
    expect(page.get_by_text("No broadcast yet.")).to_be_visible()
    shoot(page, "10-broadcasts-empty")

    page.get_by_role("link", name="New broadcast").click()
    page.get_by_label("Text in English").fill("Hi {first_name}, we won! Thank you.")
    page.get_by_label("Text in Spanish").fill("Hola {first_name}, ¡ganamos! ✊ Gracias.")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("preview-total")).to_have_text("4")
    expect(page.get_by_test_id("recipients-sms-en")).to_contain_text("2")
    expect(page.get_by_test_id("recipients-sms-es")).to_contain_text("1")
    expect(page.get_by_test_id("text-sms-es").get_by_test_id("encoding")).to_have_text("UCS-2")
    expect(page.get_by_test_id("text-sms-en").get_by_test_id("encoding")).to_have_text("GSM-7")
    expect(page.get_by_test_id("text-sms-en")).to_contain_text("Hi Guadalupe, we won! Thank you. Reply STOP to opt out.")
    # the form kept what was typed
    expect(page.get_by_label("Text in Spanish")).to_have_value("Hola {first_name}, ¡ganamos! ✊ Gracias.")
    shoot(page, "11-broadcast-preview")

    # with JavaScript the preview also follows the typing (webhooks/static/broadcast_preview.js)
    page.get_by_label("Text in English").fill("Hi {first_name}, we won! Thank you all.")
    expect(page.get_by_test_id("text-sms-en")).to_contain_text("Thank you all. Reply STOP to opt out.")
    page.get_by_label("in the state").fill("NY")
    expect(page.get_by_test_id("preview-total")).to_have_text("0")
    page.get_by_label("whose ZIP starts with").fill("6a")
    expect(page.get_by_role("alert")).to_contain_text("ZIP prefix must be 1 to 5 digits")
    page.get_by_label("whose ZIP starts with").fill("")
    page.get_by_label("in the state").fill("")
    expect(page.get_by_test_id("preview-total")).to_have_text("4")

    page.get_by_role("button", name="Continue to send to 4").click()
    expect(page.get_by_role("heading", name="Send to 4 recipients?")).to_be_visible()
    shoot(page, "12-broadcast-confirm")
    assert twilio.requests == [] and telegram.requests == []
    page.get_by_role("button", name="Send to 4 recipients").click()

    expect(page.get_by_test_id("state")).to_have_text("waiting")
    expect(page.get_by_test_id("worker")).to_contain_text("has not picked it up")
    shoot(page, "13-broadcast-queued")
    assert twilio.requests == [] and telegram.requests == []  # sending from the page only wrote rows

    worker = h.WorkerThread(rt, Options(drain=True, poll=0.2))
    worker.start()
    # the page refreshes itself (meta refresh) until the broadcast is finished
    expect(page.get_by_test_id("state")).to_have_text("finished", timeout=60_000)
    worker.join(timeout=60)
    assert not worker.is_alive() and worker.error is None
    expect(page.get_by_test_id("count-sent")).to_contain_text("4")
    expect(page.get_by_test_id("follow-sent")).to_contain_text("4")  # what it did, once finished
    shoot(page, "14-broadcast-finished")
    assert sorted(m["To"] for m in twilio.messages) == ["+13125550001", "+13125550002", "+13125550003"]
    assert [str(c["chat_id"]) for c in telegram.sent] == ["1001"]

    page.get_by_role("link", name="Broadcasts", exact=True).first.click()
    expect(page.get_by_role("cell", name="finished")).to_be_visible()
    expect(page.get_by_text("It last sent at")).to_be_visible()
    shoot(page, "15-broadcasts-list")

    page.goto(f"/staff/members/{ana}")
    expect(page.get_by_role("cell", name="Hi Ana, we won! Thank you all. Reply STOP to opt out.")).to_be_visible()
    shoot(page, "16-member-deliveries")

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="end-scomm to 4 recipients (3 sms, 1 telegram)")).to_be_visible()


def test_cancel_a_queued_broadcast_from_its_page(standins, rt, page, live):
    twilio, telegram = standins
    h.add_signer(rt, "+13125550001")
    h.add_signer(rt, "+13125550002")
    sign_in(page)
    page.goto("/staff/broadcasts/new")
    page.get_by_label("Text in English").fill("Meeting moved to Thursday.")
    page.get_by_role("button", name="Continue to send to 2").click()
    page.get_by_role("button", name="Send to 2 recipients").click()
    expect(page.get_by_test_id("state")).to_have_text("waiting")

    page.get_by_role("link", name="Cancel the broadcast…").click()
    # this page does not reload itself: the tick stays while the staff member reads
    button = page.get_by_role("button", name="Cancel the broadcast")
    page.get_by_label("Yes, stop this broadcast").check()
    shoot(page, "17-broadcast-cancel")
    button.click()
    expect(page.get_by_test_id("state")).to_have_text("cancelled")
    expect(page.get_by_test_id("cancelled")).to_contain_text("2 messages not sent")
    assert h.status_of(rt) == {"skipped": 2}
    assert twilio.requests == [] and telegram.requests == []
