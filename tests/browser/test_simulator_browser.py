"""The simulator in a real browser on a phone-sized screen: Telegram's buttons after /start are in
sight inside the chat pane, and a message that gets no reply says why."""

from __future__ import annotations

from tests.browser.test_staff_browser import (PHONE_SIZE, browser, fast_hashing, live, page, pytestmark,  # noqa: F401
                                              sign_in)

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the module is skipped then (pytestmark)
    expect = None


def say(page, text: str) -> None:
    page.locator("form#compose[data-url]").wait_for(state="attached")
    before = page.locator("#log > *").count()
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")
    expect(page.locator("#log > *").nth(before + 1)).to_be_attached()  # our bubble, then the answer


def test_buttons_after_start_are_in_sight_and_silence_is_explained(page, live):
    page.set_viewport_size(PHONE_SIZE)
    sign_in(page)
    page.goto("/simulator/")
    page.get_by_label("Telegram").check()
    for _ in range(3):  # enough chat to make the pane scroll
        say(page, "/help")
    say(page, "/start")
    expect(page.get_by_role("button", name="Español")).to_be_in_viewport()

    page.get_by_label("SMS").check()
    say(page, "STOP")
    say(page, "hello?")
    expect(page.locator("#log .note").last).to_have_text(
        "no reply: this member has opted out (START, HELP or a keyword gets an answer)")
    expect(page.locator("#log .note").last).to_be_in_viewport()
