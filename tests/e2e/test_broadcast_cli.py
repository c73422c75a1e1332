"""`firma broadcast` and `firma worker` as an operator runs them, against the provider stand-ins,
including a worker killed with SIGKILL mid-broadcast and two worker processes sharing one broadcast."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from bots import broadcasts
from bots.worker import Options, run_worker
from bots.broadcasts import BroadcastRequest
from bots.runtime import utcnow
from tests.support import broadcasts as h
from tests.support.standins import TelegramStandIn, TwilioStandIn
from tests.support.twilio_client import TOKEN
from webhooks.cli import main

pytestmark = pytest.mark.pooler  # CI runs these through PgBouncer too (FIRMA_TEST_POOLER=1)

ROOT = Path(__file__).resolve().parents[2]


def env_for(rt, twilio, **extra) -> dict[str, str]:
    env = {
        "FIRMA_DATABASE_URL": rt.settings.database_url, "FIRMA_PUBLIC_URL": "https://firma.example.org",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32, "TWILIO_API_URL": twilio.url,
        "FIRMA_QUIET_HOURS": "off", "FIRMA_SMS_RATE": "1000", "TELEGRAM_BOT_TOKEN": "",
    }
    env.update(extra)
    return env


def cli(env, *args, input=None):
    return CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)


def test_dry_run_shows_recipients_segments_and_encoding_and_sends_nothing(rt, twilio):
    h.add_signer(rt, "+13125550001")
    h.add_signer(rt, "+13125550002", language="es")
    h.add_signer(rt, "+13125550003", opted_out=True)
    res = cli(env_for(rt, twilio), "broadcast", "--campaign", "end-scomm", "--message", "We won, {first_name}!",
              "--message-es", "¡Ganamos, {first_name}! 🎉", "--dry-run")
    assert res.exit_code == 0, res.output
    assert re.search(r"sms\s+│\s+en\s+│\s+1", res.output) and re.search(r"sms\s+│\s+es\s+│\s+1", res.output)
    assert "GSM-7" in res.output and "UCS-2" in res.output  # the emoji makes the Spanish SMS UCS-2
    assert "dry run" in res.output
    assert twilio.messages == [] and broadcasts.list_broadcasts(rt) == []


def test_confirmation_declined_creates_nothing(rt, twilio):
    h.add_signer(rt, "+13125550001")
    res = cli(env_for(rt, twilio), "broadcast", "--campaign", "end-scomm", "--message", "Hi", input="n\n")
    assert res.exit_code == 1 and "Send to 1 signer (1 by SMS, about 1 SMS segment)?" in res.output
    assert broadcasts.list_broadcasts(rt) == [] and twilio.messages == []


def test_foreground_broadcast_sends_and_reports_what_quiet_hours_hold(rt, twilio):
    h.add_signer(rt, "+13125550001")
    h.add_signer(rt, "+13125550002")
    res = cli(env_for(rt, twilio), "broadcast", "--campaign", "end-scomm", "--message", "Hi {name}", "--yes")
    assert res.exit_code == 0, res.output
    assert "broadcast #1: sent 2" in res.output
    assert sorted(m["To"] for m in twilio.messages) == ["+13125550001", "+13125550002"]

    # Quiet all day long, everywhere: everything is held, the command says until when and exits.
    res = cli(env_for(rt, twilio, FIRMA_QUIET_HOURS="00:00-23:59"), "broadcast", "--campaign", "end-scomm",
              "--message", "Again", "--yes")
    assert res.exit_code == 0, res.output
    assert re.search(r"2 SMS are held for quiet hours; the first go out at \d{4}-\d\d-\d\d 0[56]:59 UTC", res.output)
    assert len(twilio.messages) == 2
    status = cli(env_for(rt, twilio), "broadcast", "status", "2")
    assert status.exit_code == 0 and "2 SMS are held" in status.output


def test_bad_input_gets_a_clear_message(rt, twilio):
    env = env_for(rt, twilio)
    assert cli(env, "broadcast", "--campaign", "end-scomm").exit_code == 2
    res = cli(env, "broadcast", "--campaign", "nope", "--message", "x", "--yes")
    assert res.exit_code == 1 and "no campaign 'nope'" in res.output
    res = cli(env, "broadcast", "--campaign", "end-scomm", "--message", "Hi {zip}", "--yes")
    assert res.exit_code == 1 and "only {name} and {first_name}" in res.output
    res = cli(env, "broadcast", "status", "99")
    assert res.exit_code == 1 and "no broadcast #99" in res.output


@pytest.fixture
def worker_process():
    """Starts `firma worker` processes; any still running when the test ends (it failed half way) is
    killed, so no worker outlives its test."""
    procs: list[subprocess.Popen] = []

    def start(env, log: Path, *args) -> subprocess.Popen:
        full = dict(os.environ, **env, PYTHONPATH=str(ROOT))
        with open(log, "w") as out:  # a file, not a pipe: a full pipe would stall the worker
            procs.append(subprocess.Popen([sys.executable, "-W", "ignore", "-m", "webhooks.cli", "worker", *args],
                                          env=full, stdout=out, stderr=subprocess.STDOUT, text=True, cwd=log.parent))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
def test_worker_killed_mid_broadcast_then_drained_sends_nobody_twice(rt, tmp_path, worker_process):
    with TwilioStandIn(latency=0.05) as twilio:
        h.add_signers_bulk(rt, 400)
        b = broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Update"))
        proc = worker_process(env_for(rt, twilio, FIRMA_SMS_RATE="200"), tmp_path / "worker.log",
                               "--lease", "2", "--concurrency", "40")
        deadline = time.monotonic() + 60
        while len(twilio.messages) < 80 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        left_sending = h.status_of(rt, b.id).get("sending", 0)
        assert 0 < len(twilio.messages) < 400 and left_sending > 0
        # handed to the provider when it died: may have gone out; the rest were only claimed
        handed = sum(1 for d in h.deliveries(rt, b.id) if d.status == "sending" and d.handed_over_at is not None)

        rt.settings = h.settings_for(rt, twilio)
        rt.clock = utcnow
        run_worker(rt, Options(drain=True, poll=0.2))

        per_number = Counter(m["To"] for m in twilio.messages)
        assert per_number.most_common(1)[0][1] == 1  # zero duplicates
        counts = h.status_of(rt, b.id)
        assert counts == {"sent": 400 - handed, "unknown": handed}  # claimed, never handed over: sent now
        sent = {d.address for d in h.deliveries(rt, b.id) if d.status == "sent"}
        assert sent <= set(per_number) and len(per_number) <= 400


@pytest.mark.slow
def test_two_worker_processes_share_one_broadcast_without_overlap(rt, tmp_path, worker_process):
    with TwilioStandIn(latency=0.05) as twilio:
        h.add_signers_bulk(rt, 1000)
        b = broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Update"))
        env = env_for(rt, twilio)
        logs = [tmp_path / f"worker{i}.log" for i in range(2)]
        procs = [worker_process(env, log, "--drain", "--concurrency", "10", "--batch", "10") for log in logs]
        for p in procs:
            p.wait(timeout=120)
        outputs = [log.read_text() for log in logs]
        assert all(p.returncode == 0 for p in procs), outputs
        sent_by = [int(re.search(r"sent ([\d,]+)", out).group(1).replace(",", "")) for out in outputs]
        assert sum(sent_by) == 1000 and min(sent_by) > 0, sent_by  # both worked, neither took the other's rows
        assert len(twilio.messages) == 1000 and len({m["To"] for m in twilio.messages}) == 1000
        assert h.status_of(rt, b.id) == {"sent": 1000}


@pytest.mark.slow
def test_rate_caps_hold_in_every_sliding_second_across_two_worker_processes(rt, tmp_path, worker_process):
    """FIRMA_SMS_RATE / FIRMA_TELEGRAM_RATE, counted where the provider sees them: at the stand-ins."""
    with TwilioStandIn() as twilio, TelegramStandIn(token=h.TG_TOKEN) as telegram:
        h.add_signers_bulk(rt, 70)
        h.add_signers_bulk(rt, 70, channel="telegram")
        broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Update"))
        env = env_for(rt, twilio, FIRMA_SMS_RATE="20", FIRMA_TELEGRAM_RATE="25", TELEGRAM_BOT_TOKEN=h.TG_TOKEN,
                      TELEGRAM_API_URL=telegram.url)
        procs = [worker_process(env, tmp_path / f"w{i}.log", "--drain", "--batch", "7") for i in range(2)]
        for p in procs:
            p.wait(timeout=120)
        assert all(p.returncode == 0 for p in procs), [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
        assert len(twilio.messages) == 70 and len(telegram.sent) == 70
        assert h.max_in_any_second([r.arrived for r in twilio.requests]) <= 20
        assert h.max_in_any_second([at for _, at in h.telegram_sends(telegram)]) <= 25


@pytest.mark.slow
def test_a_high_cap_holds_in_every_sliding_second_while_two_workers_keep_up_with_it(rt, tmp_path, worker_process):
    """At 200 messages a second the slots are 5.75 ms apart, a dozen of a worker's calls: each worker's
    blocks must start on time, one after another, or be taken again, never bunch. Requests are counted
    when they reached the machine (the kernel's receive time): on a starved machine the stand-in's own
    threads once handled nothing for 146 ms and then 23 requests at once, which the workers had sent
    5.75 ms apart (docs/broadcasts.md, "Rates")."""
    with TwilioStandIn(latency=0.02) as twilio:
        h.add_signers_bulk(rt, 800)
        broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Update"))
        env = env_for(rt, twilio, FIRMA_SMS_RATE="200")
        procs = [worker_process(env, tmp_path / f"w{i}.log", "--drain") for i in range(2)]
        for p in procs:
            p.wait(timeout=120)
        outputs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
        assert all(p.returncode == 0 for p in procs), outputs
        assert len(twilio.messages) == 800 and len({m["To"] for m in twilio.messages}) == 800
        sent_by = [int(re.search(r"sent ([\d,]+)", out).group(1).replace(",", "")) for out in outputs]
        assert min(sent_by) > 0, sent_by  # both took slots from the shared row
        assert h.max_in_any_second([r.arrived for r in twilio.requests]) <= 200


def test_cancel_stops_what_has_not_gone_out(rt, twilio):
    h.add_signer(rt, "+13125550001")
    h.add_signer(rt, "+13125550002")
    env = env_for(rt, twilio)
    assert cli(env, "broadcast", "--campaign", "end-scomm", "--message", "Hi", "--yes", "--enqueue").exit_code == 0
    res = cli(env, "broadcast", "cancel", "1", input="n\n")
    assert res.exit_code == 1 and "2 of its 2 messages have not gone out yet" in res.output
    assert h.status_of(rt) == {"pending": 2}
    res = cli(env, "broadcast", "cancel", "1", "--yes")
    assert res.exit_code == 0 and "broadcast #1 cancelled: 2 messages will not be sent" in res.output
    assert h.status_of(rt) == {"skipped": 2}
    assert "cancelled already" in cli(env, "broadcast", "cancel", "1", "--yes").output
    assert "cancelled by cli:" in cli(env, "broadcast", "status", "1").output
    assert cli(env, "worker", "--drain").exit_code == 0
    assert twilio.messages == []
    res = CliRunner().invoke(main, ["broadcast", "cancel", "7", "--yes"], env=env)
    assert res.exit_code == 1 and "no broadcast #7" in res.output


def _whatsapp_signer(rt, phone, name, seen_ago):
    from datetime import timedelta

    from sqlalchemy import update

    from storage.models import Member

    h.add_signer(rt, phone, channel="whatsapp", name=name, language="es")
    with rt.db.uow() as uow:
        uow.session.execute(update(Member).where(Member.address == phone).values(last_seen_at=utcnow() - seen_ago))
        uow.commit()


def test_whatsapp_dry_run_splits_the_window_and_a_template_reaches_the_rest(rt, twilio):
    from datetime import timedelta

    _whatsapp_signer(rt, "+13125550031", "Ana López", timedelta(hours=1))
    _whatsapp_signer(rt, "+13125550032", "Beto Núñez", timedelta(days=2))
    env = env_for(rt, twilio, TWILIO_WHATSAPP_FROM="whatsapp:+14155238886", FIRMA_WHATSAPP_RATE="1000")
    res = cli(env, "broadcast", "--campaign", "end-scomm", "--channel", "whatsapp", "--message", "Hi",
              "--message-es", "¡Hola {first_name}! Mañana.", "--dry-run")
    assert res.exit_code == 0, res.output
    assert re.search(r"whatsapp\s+│\s+es\s+│\s+2", res.output)
    assert "1 outside the WhatsApp window" in res.output and "not sent to (no template)" in res.output
    assert twilio.messages == []

    template = "HX" + "0f" * 16
    res = cli(env, "broadcast", "--campaign", "end-scomm", "--channel", "whatsapp", "--message", "Hi",
              "--message-es", "¡Hola {first_name}! Mañana.", "--whatsapp-template", template, "--yes")
    assert res.exit_code == 0, res.output
    assert "broadcast #1: sent 2" in res.output
    got = {m["To"]: (m.get("Body"), m.get("ContentSid")) for m in twilio.messages}
    assert got == {"whatsapp:+13125550031": ("¡Hola Ana! Mañana. Responde STOP para no recibir más mensajes.", None),
                   "whatsapp:+13125550032": (None, template)}

    res = cli(env, "broadcast", "--campaign", "end-scomm", "--channel", "whatsapp", "--message", "Hi", "--yes")
    assert res.exit_code == 0 and "broadcast #2: sent 1, outside window 1" in res.output
    status = cli(env, "broadcast", "status", "1")
    assert status.exit_code == 0 and template in status.output

    bad = cli(env, "broadcast", "--campaign", "end-scomm", "--message", "Hi", "--whatsapp-template", "nope", "--yes")
    assert bad.exit_code == 1 and "Content SID" in bad.output and "Traceback" not in bad.output
