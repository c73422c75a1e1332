"""Fixtures for the Telegram tests: a Bot API stand-in and settings pointing at it.

Import them into a test module (``from tests.support.telegram_fixtures import settings, standin``);
``settings`` there extends the conftest one with the bot token, the webhook secret and the stand-in URL.
"""

from __future__ import annotations

import pytest

from tests.support.standins import TelegramStandIn
from tests.support.telegram_updates import SECRET, TOKEN


@pytest.fixture
def standin():
    with TelegramStandIn(token=TOKEN) as server:
        yield server


@pytest.fixture
def settings(settings, standin):
    return settings.with_(telegram_bot_token=TOKEN, telegram_webhook_secret=SECRET, telegram_api_url=standin.url)
