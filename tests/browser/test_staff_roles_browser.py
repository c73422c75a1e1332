"""Each role's console in a real browser (Playwright driving Debian's Chromium, as in
test_staff_browser.py): an admin sees numbers and the Staff page and changes a role; an organizer
schedules a broadcast with the date-time field and sees members without their numbers; a viewer sees
counts and never a phone number. Also: the broadcasts list fits 1280 px and Cancel is not styled as
the primary action. Screenshots go to screenshots/."""

from __future__ import annotations

import pytest

from bots import broadcasts as bsvc
from bots import staff_accounts as svc
from tests.browser.test_staff_browser import (  # noqa: F401 - fixtures
    EMAIL, PASSWORD, browser, fast_hashing, live, page, pytestmark, shoot, sms_sign_up,
)
from tests.support import broadcasts as h

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - skipped by pytestmark then
    expect = None

ORGANIZER, VIEWER = "field@example.org", "volunteer@example.org"
PHONE = "+13125550101"


@pytest.fixture
def logins(rt, live):
    svc.add_staff(rt.db, ORGANIZER, PASSWORD, rt.now())  # EMAIL, made by `live`, is the first: admin
    svc.add_staff(rt.db, VIEWER, PASSWORD, rt.now(), role="viewer")
    sms_sign_up(live, PHONE)


def sign_in_as(page, email):
    page.goto("/staff/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()


def no_phone_number(page):
    html = page.content()
    assert PHONE not in html and "555 0101" not in html and "5550101" not in html


def test_admin_sees_numbers_and_changes_a_role(page, logins):
    sign_in_as(page, EMAIL)
    page.get_by_role("link", name="Members").click()
    page.get_by_label("Phone number or Telegram user id").fill("312 555 0101")
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(PHONE)
    page.get_by_role("link", name="Staff", exact=True).click()
    expect(page.get_by_role("cell", name=VIEWER, exact=True)).to_be_visible()
    shoot(page, "30-staff-admin")
    page.get_by_label(f"Role of {VIEWER}").select_option("organizer")
    page.get_by_role("button", name=f"Change the role of {VIEWER}").click()
    expect(page.get_by_role("status")).to_contain_text(f"{VIEWER} is now an organizer.")


def test_organizer_schedules_a_broadcast_and_never_sees_a_number(page, rt, logins):
    sign_in_as(page, ORGANIZER)
    expect(page.get_by_role("link", name="Staff", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    page.get_by_role("link", name="Members").click()
    page.get_by_label("Phone number or Telegram user id").fill("312 555 0101")
    page.get_by_role("button", name="Look up").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Member #")
    no_phone_number(page)
    shoot(page, "31-member-organizer")
    page.goto("/staff/campaigns/end-scomm")
    expect(page.get_by_role("button", name="Download CSV")).to_be_visible()
    expect(page.get_by_text("Include phone numbers")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit End S-Comm Now")).to_have_count(0)

    page.goto("/staff/broadcasts/new")
    page.get_by_label("Text in English").fill("March Saturday at 10, City Hall.")
    page.get_by_label("Send at").fill("2026-11-28T09:30")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("text-telegram-en")).to_have_count(0)  # nobody there on Telegram
    page.get_by_role("button", name="Continue to schedule…").click()
    expect(page.get_by_role("heading", name="Schedule for 2026-11-28 09:30 EST?")).to_be_visible()
    page.get_by_role("button", name="Schedule for 2026-11-28 09:30 EST").click()
    expect(page.get_by_test_id("state")).to_have_text("scheduled")
    shoot(page, "32-broadcast-scheduled")
    # Cancel is a secondary action: white, not the accent colour of the primary button
    cancel = page.get_by_test_id("cancel-link")
    assert cancel.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 255, 255)"
    page.get_by_role("link", name="Broadcasts", exact=True).first.click()
    expect(page.get_by_text("2026-11-28 09:30 EST")).to_be_visible()


def test_viewer_sees_counts_and_never_a_number(page, rt, logins, live):
    for i in range(3):  # a long list of past broadcasts with big numbers
        b = bsvc.create_broadcast(rt, bsvc.BroadcastRequest("end-scomm", f"Update {i}", created_by="staff:" + ORGANIZER))
    sign_in_as(page, VIEWER)
    expect(page.get_by_test_id("total-end-scomm")).to_have_text("1")
    no_phone_number(page)
    shoot(page, "33-dashboard-viewer")
    for link in ("Members", "Audit log", "New campaign"):
        expect(page.get_by_role("link", name=link)).to_have_count(0)
    page.goto("/staff/campaigns/end-scomm")
    expect(page.locator("#total")).to_have_text("1")
    expect(page.get_by_role("button", name="Download CSV")).to_have_count(0)
    no_phone_number(page)
    page.goto("/staff/broadcasts/")
    expect(page.get_by_role("link", name="New broadcast")).to_have_count(0)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the broadcasts list is {overflow}px wider than 1280"
    shoot(page, "34-broadcasts-viewer")
    page.goto(f"/staff/broadcasts/{b.id}")
    expect(page.get_by_test_id("cancel-link")).to_have_count(0)
    response = page.goto("/staff/members")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not for your role")).to_be_visible()
    shoot(page, "35-forbidden-viewer")
