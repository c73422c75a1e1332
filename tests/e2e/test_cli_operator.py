"""The command line as an operator reads it: tables that fit an 80-column terminal, one broadcast in
detail, words that agree with their numbers, no library noise, and the audit log of what staff do
from the CLI, under their operating-system user."""

from __future__ import annotations

import getpass
import logging
import re
import warnings

from click.testing import CliRunner

from bots import audit, broadcasts, staff_accounts
from bots.broadcasts import BroadcastRequest
from storage.models import Member
from tests.e2e import test_broadcast_cli as bc
from tests.support import broadcasts as h
from tests.support.standins import TelegramStandIn
from webhooks.cli import main

WHO = f"cli:{getpass.getuser()}"
PASSWORD = "a long enough password"


def cli(env, *args, input=None):
    return CliRunner().invoke(main, list(args), env={**env, "COLUMNS": "80"}, input=input,
                              catch_exceptions=False)


def too_wide(output: str) -> list[str]:
    return [line for line in output.splitlines() if len(line) > 80]


def entries(rt) -> list[tuple[str, str, str | None, str | None]]:
    return [(e.staff_email, e.action, e.target, e.detail) for e in reversed(audit.audit_entries(rt.db))]


def test_broadcast_status_fits_80_columns_and_keeps_every_figure(rt, twilio):
    h.add_signer(rt, "+13125559999", state="TX", zip_code="75201")
    env = bc.env_for(rt, twilio)
    texas = BroadcastRequest("end-scomm", "Texas only", state="TX", zip_prefix="752")
    broadcasts.create_broadcast(rt, texas)
    assert cli(env, "worker", "--drain").exit_code == 0
    h.add_signers_bulk(rt, 1200)
    broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Update to all"))  # queued, not sent
    res = cli(env, "broadcast", "status")
    assert res.exit_code == 0, res.output
    assert too_wide(res.output) == [], res.output
    assert re.search(r"\b2\b.*end-scomm.*1,201\s+0\s+0\s+1,201\s+waiting", res.output), res.output
    assert re.search(r"\b1\b.*end-scomm.*\b1\s+1\s+0\s+0\s+finished\s*\n.*TX, ZIP 752\*", res.output), res.output


def test_broadcast_status_id_shows_texts_filters_counts_and_timing(rt, twilio):
    h.add_signer(rt, "+13125550001")
    h.add_signer(rt, "+13125550002", language="es")
    h.add_signer(rt, "+13125550003", state="TX", zip_code="75201")
    env = bc.env_for(rt, twilio)
    res = cli(env, "broadcast", "--campaign", "end-scomm", "--message", "We won the vote in Chicago, {first_name}!",
              "--message-es", "¡Ganamos la votación, {first_name}!", "--state", "IL", "--zip-prefix", "606",
              "--signed-since", "2026-01-01", "--yes")
    assert res.exit_code == 0, res.output
    res = cli(env, "broadcast", "status", "1")
    assert res.exit_code == 0, res.output
    out = res.output
    assert too_wide(out) == [], out
    assert "We won the vote in Chicago, {first_name}!" in out and "¡Ganamos la votación, {first_name}!" in out
    assert re.search(r"to\s+all channels, state IL, ZIP 606\*, signed since 2026-01-01", out), out
    assert re.search(r"recipients\s+2\b", out) and re.search(r"sent\s+2\b", out), out
    assert re.search(rf"created\s+\d{{4}}-\d\d-\d\d \d\d:\d\d UTC by {re.escape(WHO)}", out), out
    assert re.search(r"started\s+\d{4}-", out) and re.search(r"finished\s+\d{4}-.*\(took ", out), out


def test_one_held_sms_and_one_signer_read_in_the_singular(rt, twilio):
    h.add_signer(rt, "+13125550001")
    env = bc.env_for(rt, twilio, FIRMA_QUIET_HOURS="00:00-23:59")
    res = cli(env, "broadcast", "--campaign", "end-scomm", "--message", "Hi", input="y\n")
    assert res.exit_code == 0, res.output
    assert "Send to 1 signer (1 by SMS, about 1 SMS segment)?" in res.output
    assert "1 SMS is held for quiet hours; it goes out at" in res.output
    assert "1 SMS is held" in cli(env, "broadcast", "status", "1").output


def test_a_finished_send_reports_its_average_rate_not_zero(rt, twilio):
    for i in range(3):
        h.add_signer(rt, f"+1312555000{i}")
    res = cli(bc.env_for(rt, twilio), "broadcast", "--campaign", "end-scomm", "--message", "Hi", "--yes")
    assert res.exit_code == 0, res.output
    assert not re.search(r"(?<![\d.,])0\.0 msg/s", res.output), res.output
    assert re.search(r"broadcast #1: sent 3 in [\d.]+ s \([\d,.]+ msg/s\)", res.output), res.output


def test_worker_warns_about_an_unconfigured_channel_only_when_messages_wait_for_it(rt, twilio, caplog):
    h.add_signer(rt, "+13125550001")
    broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Hi"))
    env = bc.env_for(rt, twilio)  # TELEGRAM_BOT_TOKEN is empty
    with caplog.at_level(logging.INFO):
        assert cli(env, "worker", "--drain").exit_code == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "Telegram" in r.getMessage()]

    h.add_signer(rt, "100200300", channel="telegram")
    broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Again"))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert cli(env, "worker", "--drain").exit_code == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("1 Telegram message" in m and "TELEGRAM_BOT_TOKEN" in m for m in warned), warned


def test_set_webhook_prints_no_http_client_log_lines(caplog, monkeypatch):
    from tests.e2e.test_telegram_cli import env_for
    from tests.support import telegram_updates as tu

    monkeypatch.setattr(logging.getLogger("httpx"), "level", logging.NOTSET)  # as in a fresh process

    with TelegramStandIn(token=tu.TOKEN) as standin, caplog.at_level(logging.INFO):
        res = CliRunner().invoke(main, ["telegram", "set-webhook"], env=env_for(standin))
    assert res.exit_code == 0, res.output
    assert [r.getMessage() for r in caplog.records if r.name.startswith(("httpx", "httpcore"))] == []


def test_export_to_stdout_raises_no_deprecation_warning(rt, twilio):
    h.add_signer(rt, "+13125550001")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        res = cli(bc.env_for(rt, twilio), "export", "--campaign", "end-scomm")
    assert res.exit_code == 0, res.output
    assert "Ana Lopez" in res.output


def test_the_audit_log_has_what_staff_did_from_the_cli(rt, twilio):
    env = {**bc.env_for(rt, twilio), "FIRMA_SECRET_KEY": "test-secret"}
    h.add_signer(rt, "+13125550001")
    assert cli(env, "staff", "add", "organizer@example.org", input=PASSWORD + "\n").exit_code == 0
    assert cli(env, "staff", "set-password", "organizer@example.org", input=PASSWORD + "!\n").exit_code == 0
    assert cli(env, "staff", "disable", "organizer@example.org").exit_code == 0
    assert cli(env, "broadcast", "--campaign", "end-scomm", "--message", "Hi", "--yes", "--enqueue").exit_code == 0
    assert cli(env, "broadcast", "cancel", "1", "--yes").exit_code == 0
    with rt.db.uow() as uow:
        member_id = uow.session.query(Member.id).filter(Member.address == "+13125550001").scalar()
    res = cli(env, "member", "forget", "+13125550001", "--yes")
    assert res.exit_code == 0, res.output

    got = entries(rt)
    assert [(who, action, target) for who, action, target, _ in got] == [
        (WHO, "staff_add", "organizer@example.org"),
        (WHO, "staff_set_password", "organizer@example.org"),
        (WHO, "staff_disable", "organizer@example.org"),
        (WHO, "broadcast", "1"),
        (WHO, "broadcast_cancel", "1"),
        (WHO, "member_forget", str(member_id)),
    ]
    assert got[3][3] == "end-scomm to 1 recipient (1 sms)"
    assert all("3125550001" not in (detail or "") for *_, detail in got)  # the erased contact is not kept
    assert staff_accounts.list_staff(rt.db)[0]["active"] is False
