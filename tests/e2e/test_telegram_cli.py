"""`firma telegram set-webhook` and `firma telegram poll` against the Bot API stand-in."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bots import service
from bots.channels.telegram import polling, updates
from bots.channels.telegram.gateway import Gateway
from webhooks.cli_telegram import handlers
from storage.models import Member, Signature
from tests.support import telegram_updates as tu
from tests.support.standins import TELEGRAM_BLOCKED, TelegramStandIn
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures
from webhooks.cli import main

ROOT = Path(__file__).resolve().parents[2]


def env_for(standin, **extra):
    env = {"TELEGRAM_BOT_TOKEN": standin.token, "TELEGRAM_API_URL": standin.url,
           "TELEGRAM_WEBHOOK_SECRET": tu.SECRET, "FIRMA_PUBLIC_URL": "https://firma.example.org/"}
    env.update(extra)
    return env


def test_set_webhook_registers_url_secret_and_update_kinds():
    with TelegramStandIn(token=tu.TOKEN) as standin:
        result = CliRunner().invoke(main, ["telegram", "set-webhook", "--drop-pending-updates"], env=env_for(standin))
        assert result.exit_code == 0, result.output
        hook = standin.webhook
        assert hook["url"] == "https://firma.example.org/webhooks/telegram"
        assert hook["secret_token"] == tu.SECRET
        assert json.loads(hook["allowed_updates"]) == updates.ALLOWED_UPDATES
        assert hook["drop_pending_updates"] == "true"
        assert "@firma_test_bot now sends its updates to https://firma.example.org/webhooks/telegram" in result.output
        menus = standin.calls("setMyCommands")
        assert [m.get("language_code") for m in menus] == [None, "es"]
        assert [c["command"] for c in json.loads(menus[0]["commands"])] == ["start", "help", "stop", "language"]
        assert json.loads(menus[1]["commands"])[0]["description"] == "Firmar la petición"
        again = CliRunner().invoke(main, ["telegram", "set-webhook"], env=env_for(standin))
        assert again.exit_code == 0 and standin.webhook.get("drop_pending_updates", "false") == "false"


@pytest.mark.parametrize("changes, message", [
    ({"TELEGRAM_BOT_TOKEN": ""}, "TELEGRAM_BOT_TOKEN is not set"),
    ({"FIRMA_PUBLIC_URL": ""}, "FIRMA_PUBLIC_URL is not set"),
    ({"FIRMA_PUBLIC_URL": "http://firma.example.org", "TELEGRAM_API_URL": "https://api.telegram.org"},
     "must start with https://"),
    ({"TELEGRAM_WEBHOOK_SECRET": ""}, "TELEGRAM_WEBHOOK_SECRET is not set"),
    ({"TELEGRAM_WEBHOOK_SECRET": "has spaces!"}, "may hold only"),
])
def test_set_webhook_refuses_incomplete_settings(changes, message):
    with TelegramStandIn(token=tu.TOKEN) as standin:
        result = CliRunner().invoke(main, ["telegram", "set-webhook"], env=env_for(standin, **changes))
        assert result.exit_code == 1 and message in result.output
        assert standin.calls("setWebhook") == []


def test_set_webhook_takes_http_when_the_bot_api_server_is_self_hosted():
    """A self-hosted Bot API server (telegram-bot-api --local) calls webhooks over plain http too;
    only the official API insists on https."""
    with TelegramStandIn(token=tu.TOKEN) as standin:
        result = CliRunner().invoke(main, ["telegram", "set-webhook"],
                                    env=env_for(standin, FIRMA_PUBLIC_URL="http://firma.internal:8000"))
        assert result.exit_code == 0, result.output
        assert standin.webhook["url"] == "http://firma.internal:8000/webhooks/telegram"


def test_set_webhook_reports_a_wrong_token():
    with TelegramStandIn(token=tu.TOKEN) as standin:
        result = CliRunner().invoke(main, ["telegram", "set-webhook"],
                                    env=env_for(standin, TELEGRAM_BOT_TOKEN="999:wrong"))
        assert result.exit_code == 1 and "Telegram refused" in result.output


def test_polling_feeds_the_same_handler(rt, standin):
    standin.webhook = {"url": "https://old.example.org/webhooks/telegram"}
    ana, blocked = 31337, 4040
    standin.fail(blocked, TELEGRAM_BLOCKED)
    standin.updates.extend([tu.text_update(ana, "/start end-scomm", "es"), tu.text_update(blocked, "/help")])
    lines = []
    gateway = Gateway(standin.token, standin.url)
    handled = asyncio.run(polling.poll(gateway, *handlers(rt, gateway), say=lines.append, max_polls=1, timeout=0))
    assert handled == 2
    assert standin.webhook == {}
    paths = [r.path.rsplit("/", 1)[1] for r in standin.requests]
    assert paths.index("deleteWebhook") < paths.index("getUpdates")  # the webhook goes first
    assert "Deleted the webhook (https://old.example.org/webhooks/telegram)" in lines[0]
    to_ana = [m["text"] for m in standin.sent if str(m["chat_id"]) == str(ana)]
    assert to_ana[0].startswith("<b>Fin a S-Comm Ya</b>") and "nombre completo" in to_ana[1]

    standin.updates.extend([tu.text_update(ana, "José Núñez", "es"), tu.text_update(ana, "78520", "es")])
    asyncio.run(polling.poll(gateway, *handlers(rt, gateway), say=lines.append, max_polls=1, timeout=0))
    with rt.db.uow() as uow:
        sig = uow.session.scalars(select(Signature)).one()
        assert (sig.channel, sig.name, sig.city, sig.language) == ("telegram", "José Núñez", "Brownsville", "es")
        unreachable = uow.session.scalars(select(Member.unreachable_at).where(Member.address == str(blocked))).one()
        assert unreachable is not None  # the 403 when answering made them unreachable
    # everything handled was confirmed: the stand-in holds nothing, a restart fetches nothing again
    assert standin.updates == []
    sent = len(standin.sent)
    assert asyncio.run(polling.poll(gateway, *handlers(rt, gateway), say=lines.append, max_polls=1, timeout=0)) == 0
    assert len(standin.sent) == sent


@pytest.mark.slow
def test_poll_command_stops_cleanly_on_ctrl_c(tmp_path):
    with TelegramStandIn(token=tu.TOKEN) as standin:
        env = dict(os.environ, PYTHONPATH=str(ROOT), FIRMA_DATABASE_URL=f"sqlite:///{tmp_path / 'poll.db'}",
                   **env_for(standin))
        standin.updates.append(tu.text_update(777, "/help"))
        proc = subprocess.Popen([sys.executable, "-m", "webhooks.cli", "telegram", "poll", "--timeout", "1"],
                                env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 60
            while not standin.sent and time.monotonic() < deadline:
                time.sleep(0.1)
            assert standin.sent and "/stop stops all messages" in standin.sent[0]["text"]
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out
        assert "Deleted the webhook" in out and "Polling as @firma_test_bot" in out
        assert out.rstrip().endswith("Stopped polling.")
        assert "Traceback" not in out


def test_polling_through_a_database_outage_loses_no_update(rt, standin, monkeypatch, caplog):
    """The database fails while an update is handled: the update is not confirmed, so the next poll
    gets it again and it is handled once; the poller keeps going."""
    ana = 31337
    standin.updates.extend([tu.text_update(ana, "/start end-scomm"), tu.text_update(ana, "Ana Lopez")])
    real, failures = service.handle_event, []

    def flaky(uow, event, *args, **kw):
        if len(failures) == 0 and event.text == "Ana Lopez":
            failures.append(1)
            raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
        return real(uow, event, *args, **kw)

    monkeypatch.setattr(service, "handle_event", flaky)
    gateway = Gateway(standin.token, standin.url)
    assert asyncio.run(polling.poll(gateway, *handlers(rt, gateway), say=lambda _: None, max_polls=2, timeout=0, retry_pause=0)) == 2
    assert failures == [1] and "the database is unavailable" in caplog.text
    texts = [m["text"] for m in standin.sent if str(m["chat_id"]) == str(ana)]
    assert sum("ZIP" in t for t in texts) == 1, texts  # the name was answered once, with the ZIP question
    assert standin.updates == []  # both confirmed
