"""`firma worker` when a provider refuses its credentials or cannot be reached: that channel is
paused with one clear line, the other channels keep sending, and no secret and no traceback reach
the output."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from bots import broadcasts
from bots.broadcasts import BroadcastRequest
from tests.support import broadcasts as h
from tests.support.standins import TelegramStandIn, TwilioStandIn
from tests.support.twilio_client import TOKEN

ROOT = Path(__file__).resolve().parents[2]
BAD_TOKEN = "987654321:AAHrejectedTokenValueFromBotFather123456"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_worker(rt, twilio, telegram_url: str, token: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), FIRMA_DATABASE_URL=rt.settings.database_url,
               FIRMA_PUBLIC_URL="https://firma.example.org", TWILIO_ACCOUNT_SID="AC" + "0" * 32,
               TWILIO_AUTH_TOKEN=TOKEN, TWILIO_MESSAGING_SERVICE_SID="MG" + "1" * 32, TWILIO_API_URL=twilio.url,
               FIRMA_QUIET_HOURS="off", FIRMA_SMS_RATE="100", FIRMA_TELEGRAM_RATE="100",
               TELEGRAM_BOT_TOKEN=token, TELEGRAM_API_URL=telegram_url)
    return subprocess.run([sys.executable, "-W", "ignore", "-m", "webhooks.cli", "worker", "--drain"], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def one_of_each(rt) -> None:
    h.add_signer(rt, "+13125550001")
    h.add_signer(rt, "222333444", channel="telegram")
    broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "We won!"))


def assert_clean(out: str, *secrets: str) -> None:
    assert "Traceback" not in out, out
    for secret in secrets:
        assert secret not in out and secret.split(":")[-1] not in out, out


def test_a_rejected_telegram_token_pauses_telegram_while_sms_sends(rt, tmp_path):
    one_of_each(rt)
    with TwilioStandIn() as twilio, TelegramStandIn(token=h.TG_TOKEN) as telegram:
        res = run_worker(rt, twilio, telegram.url, BAD_TOKEN, tmp_path)
        out = res.stdout + res.stderr
        assert [m["To"] for m in twilio.messages] == ["+13125550001"], out
        assert telegram.sent == []
    assert_clean(out, BAD_TOKEN, TOKEN)
    assert "Telegram" in out and "TELEGRAM_BOT_TOKEN" in out and "rejected" in out, out
    assert res.returncode == 1, out
    assert h.status_of(rt) == {"sent": 1, "pending": 1}  # the Telegram message waits for a good token


def test_telegram_unreachable_at_start_pauses_telegram_while_sms_sends(rt, tmp_path):
    one_of_each(rt)
    with TwilioStandIn() as twilio:
        res = run_worker(rt, twilio, f"http://127.0.0.1:{closed_port()}", h.TG_TOKEN, tmp_path)
        out = res.stdout + res.stderr
        assert [m["To"] for m in twilio.messages] == ["+13125550001"], out
    assert_clean(out, h.TG_TOKEN, TOKEN)
    assert "Telegram" in out and "cannot be reached" in out, out
    assert res.returncode == 1, out
    assert h.status_of(rt) == {"sent": 1, "pending": 1}


def test_rejected_twilio_credentials_pause_sms_while_telegram_sends(rt, tmp_path):
    one_of_each(rt)
    with TwilioStandIn() as twilio, TelegramStandIn(token=h.TG_TOKEN) as telegram:
        twilio.reject_credentials = True
        res = run_worker(rt, twilio, telegram.url, h.TG_TOKEN, tmp_path)
        out = res.stdout + res.stderr
        assert [str(m["chat_id"]) for m in telegram.sent] == ["222333444"], out
    assert_clean(out, h.TG_TOKEN, TOKEN)
    assert "TWILIO_AUTH_TOKEN" in out, out
    assert res.returncode == 1, out
    assert h.status_of(rt) == {"sent": 1, "pending": 1}  # not failed: it goes once the credentials are fixed


def test_a_foreground_broadcast_says_which_channel_did_not_send(rt, tmp_path):
    h.add_signer(rt, "+13125550001")
    h.add_signer(rt, "222333444", channel="telegram")
    with TwilioStandIn() as twilio, TelegramStandIn(token=h.TG_TOKEN) as telegram:
        env = dict(os.environ, PYTHONPATH=str(ROOT), FIRMA_DATABASE_URL=rt.settings.database_url,
                   TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN=TOKEN,
                   TWILIO_MESSAGING_SERVICE_SID="MG" + "1" * 32, TWILIO_API_URL=twilio.url, FIRMA_QUIET_HOURS="off",
                   FIRMA_SMS_RATE="100", TELEGRAM_BOT_TOKEN=BAD_TOKEN, TELEGRAM_API_URL=telegram.url, COLUMNS="200")
        res = subprocess.run([sys.executable, "-W", "ignore", "-m", "webhooks.cli", "broadcast", "--campaign",
                              "end-scomm", "--message", "We won!", "--yes"], env=env, capture_output=True, text=True,
                             timeout=120, cwd=tmp_path)
        out = res.stdout + res.stderr
        assert [m["To"] for m in twilio.messages] == ["+13125550001"], out
    assert_clean(out, BAD_TOKEN, TOKEN)
    assert "Telegram did not send" in out and "TELEGRAM_BOT_TOKEN" in out, out


def test_a_running_worker_tries_the_paused_channel_again_and_sends_once_it_answers(rt, caplog):
    import asyncio
    import logging
    import time

    from bots.worker import Options, Worker, make_senders

    caplog.set_level(logging.WARNING, logger="firma.worker")
    one_of_each(rt)
    with TwilioStandIn() as twilio, TelegramStandIn(token="111:not-this-bot") as telegram:
        rt.settings = h.settings_for(rt, twilio, telegram, telegram_bot_token=h.TG_TOKEN)

        async def main():
            worker = Worker(rt, make_senders(rt), Options(poll=0.1))
            worker.provider_retry = 0.2
            task = asyncio.create_task(worker.run())
            deadline = time.monotonic() + 30
            while not twilio.messages and time.monotonic() < deadline:  # SMS goes while Telegram refuses
                await asyncio.sleep(0.05)
            assert twilio.messages and telegram.sent == []
            telegram.token = h.TG_TOKEN  # the token is fixed (a new bot, the right one): Telegram answers now
            while not telegram.sent and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            worker.stop.set()
            return await task

        stats = asyncio.run(main())
        assert [str(m["chat_id"]) for m in telegram.sent] == ["222333444"]
    assert stats.unavailable == {}
    lines = [r.getMessage() for r in caplog.records]
    assert sum("Telegram is paused" in line for line in lines) == 1, lines  # one line, not one per retry
    assert any("Telegram is reachable again" in line for line in lines), lines
