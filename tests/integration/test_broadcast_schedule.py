"""Scheduled broadcasts with a worker running: nothing goes before the time, everything after, a
broadcast cancelled before its time sends nothing, quiet hours still apply, and the signers are
those of the send time. Real clock, the Twilio and Telegram stand-ins."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bots import broadcasts
from bots.worker import Options, Worker, make_senders
from bots.broadcasts import BroadcastError, BroadcastRequest
from bots.runtime import utcnow
from config.settings import QuietHours
from tests.support import broadcasts as h


@pytest.fixture
def brt(rt, twilio, telegram):
    rt.settings = h.settings_for(rt, twilio, telegram)
    rt.clock = utcnow
    return rt


class RunningWorker:
    """`firma worker` (not draining) in a thread with its own event loop, stopped by the test."""

    def __init__(self, rt):
        self.worker = Worker(rt, make_senders(rt), Options(poll=0.1))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=lambda: self.loop.run_until_complete(self.worker.run()), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.worker.stop.set)
        self.thread.join(20)
        assert not self.thread.is_alive()


def wait_for(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_nothing_before_everything_after_cancelled_sends_nothing(brt, twilio, telegram):
    h.add_signer(brt, "+13125550001")
    h.add_signer(brt, "1001", channel="telegram", name="Lupe")
    send_at = utcnow() + timedelta(seconds=6)  # room for a loaded machine before the checks below
    kept = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Hi {first_name}: the march is on",
                                                             send_at=send_at))
    dropped = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Never sent", send_at=send_at))
    assert kept.send_at == send_at and kept.recipients == 0
    assert broadcasts.follow_up(brt, kept.id)["status"] == "scheduled"
    with RunningWorker(brt):
        time.sleep(1.0)
        assert twilio.messages == [] and h.telegram_sends(telegram) == [] and h.deliveries(brt) == []
        assert broadcasts.cancel_broadcast(brt, dropped.id, by="test").cancelled == 0
        h.add_signer(brt, "+13125550002", name="Rosa Diaz")  # signs before the time: gets it too
        assert utcnow() < send_at - timedelta(seconds=0.5), "the machine was too slow for this test's timing"
        assert twilio.messages == [] and h.deliveries(brt) == []
        assert wait_for(lambda: len(twilio.messages) == 2 and len(h.telegram_sends(telegram)) == 1, 20)
        assert wait_for(lambda: all(d.sent_at for d in h.deliveries(brt)), 5)
        assert min(d.sent_at for d in h.deliveries(brt)) >= send_at
        assert wait_for(lambda: broadcasts.follow_up(brt, kept.id)["status"] == "finished", 5)
    assert sorted(m["Body"] for m in twilio.messages) == [f"Hi {n}: the march is on Reply STOP to opt out." for n in ("Ana", "Rosa")]
    assert h.deliveries(brt, dropped.id) == []
    info = broadcasts.follow_up(brt, dropped.id)
    assert info["status"] == "cancelled" and sum(info["counts"].values()) == 0


def test_quiet_hours_apply_at_the_send_time(brt, twilio, telegram):
    chicago = datetime.now(ZoneInfo("America/Chicago"))
    quiet = QuietHours((chicago - timedelta(hours=1)).time(), (chicago + timedelta(hours=2)).time())
    brt.settings = brt.settings.with_(quiet_hours=quiet)
    h.add_signer(brt, "+13125550001", tz="America/Chicago")  # in the quiet window when it is due
    h.add_signer(brt, "+13125550002", tz="Asia/Tokyo", name="Yuki Sato")  # fifteen hours later: awake
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Hi {first_name}",
                                                          send_at=utcnow() + timedelta(seconds=2)))
    with RunningWorker(brt):
        assert wait_for(lambda: len(twilio.messages) == 1, 15)
        assert wait_for(lambda: h.status_of(brt, b.id) == {"sent": 1, "held": 1}, 5)
    assert [m["To"] for m in twilio.messages] == ["+13125550002"]
    assert h.status_of(brt, b.id) == {"sent": 1, "held": 1}


def test_edit_until_it_starts_and_refuse_a_past_time(brt):
    h.add_signer(brt, "+13125550001")
    later = utcnow() + timedelta(hours=2)
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Draft", send_at=later))
    with brt.db.reader() as uow:
        from storage.models import Broadcast

        row = uow.session.get(Broadcast, b.id)
        uow.session.expunge(row)
    new_time = later + timedelta(hours=1)
    assert broadcasts.update_scheduled(brt, b.id, broadcasts.request_of(row, message_en="Final text",
                                                                        send_at=new_time)) == new_time
    info = broadcasts.follow_up(brt, b.id)
    assert info["status"] == "scheduled" and info["send_at"] == new_time.isoformat()
    with pytest.raises(BroadcastError, match="has passed"):
        broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Late", send_at=utcnow() - timedelta(hours=1)))
    # due now: a worker queues it; then it can no longer change
    broadcasts.update_scheduled(brt, b.id, broadcasts.request_of(row, send_at=utcnow()))
    assert broadcasts.release_due(brt) == [b.id]
    with pytest.raises(BroadcastError, match="has started"):
        broadcasts.update_scheduled(brt, b.id, broadcasts.request_of(row, send_at=later))
    assert broadcasts.follow_up(brt, b.id)["status"] == "sending"


def test_send_times_read_in_the_organizations_zone():
    assert broadcasts.parse_send_at("2026-12-05T10:00", "America/New_York") == \
        datetime(2026, 12, 5, 15, 0, tzinfo=timezone.utc)
    assert broadcasts.parse_send_at("2026-12-05 10:00-08:00", "America/New_York") == \
        datetime(2026, 12, 5, 18, 0, tzinfo=timezone.utc)
    assert broadcasts.parse_send_at("2026-07-01T10:00", "America/New_York").hour == 14  # summer time
    for bad in ("tomorrow", "2026-12-05", "2026-13-01T10:00", ""):
        with pytest.raises(BroadcastError):
            broadcasts.parse_send_at(bad, "America/New_York")


def test_cli_at_writes_a_scheduled_broadcast_and_returns(rt, twilio):
    from click.testing import CliRunner

    from tests.e2e.test_broadcast_cli import env_for
    from webhooks.cli import main

    h.add_signer(rt, "+13125550001")
    env = env_for(rt, twilio, FIRMA_TIMEZONE="America/Chicago")

    def cli(*args):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    res = cli("broadcast", "--campaign", "end-scomm", "--message", "Rally at noon", "--at", "2099-03-01T09:30",
              "--yes")
    assert res.exit_code == 0, res.output
    assert "scheduled for 2099-03-01 09:30 CST" in res.output and "(2099-03-01 15:30 UTC)" in res.output
    [p] = broadcasts.list_broadcasts(rt)
    assert p.broadcast.send_at == datetime(2099, 3, 1, 15, 30, tzinfo=timezone.utc) and p.counts == {}
    assert twilio.messages == []
    res = cli("broadcast", "status", str(p.broadcast.id))  # as staff read it, in the organization's time
    assert res.exit_code == 0 and "scheduled for  2099-03-01 09:30 CST (2099-03-01 15:30 UTC)" in res.output, res.output
    assert "nothing is sent before then" in res.output and "accepted by the provider" not in res.output  # no 0s
    res = cli("broadcast", "cancel", str(p.broadcast.id), "--yes")
    assert "cancelled before its time: nothing will be sent" in res.output
    for bad, says in (("next tuesday", "like 2026-12-05T10:00"), ("2020-01-01T10:00", "has passed")):
        res = CliRunner().invoke(main, ["broadcast", "--campaign", "end-scomm", "--message", "x", "--at", bad,
                                        "--yes"], env=env)
        assert res.exit_code != 0 and says in res.output and "Traceback" not in res.output, res.output


def test_api_send_at_scheduled_then_cancelled(app, client, rt):
    from bots import api_tokens
    from bots import staff_accounts as svc

    h.add_signer(rt, "+13125550001")
    svc.add_staff(rt.db, "o@example.org", "a long enough password", rt.now())
    token, _ = api_tokens.create_token(rt.db, "o@example.org", "scheduler", rt.now())
    auth = {"Authorization": f"Bearer {token}"}
    r = client.post("/api/staff/broadcasts", headers=auth,
                    json={"campaign": "end-scomm", "message": "Tomorrow!", "send_at": "2026-11-28T10:00"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["status"] == "scheduled" and body["send_at"] == "2026-11-28T15:00:00+00:00"
    assert body["recipients"] == {"sms": 1} and body["counts"]["pending"] == 0
    r = client.post(f"/api/staff/broadcasts/{body['id']}/cancel", headers=auth)
    assert r.get_json()["status"] == "cancelled"
    r = client.post("/api/staff/broadcasts", headers=auth,
                    json={"campaign": "end-scomm", "message": "x", "send_at": "soon"})
    assert r.status_code == 422 and "send_at must be a date and time" in r.get_json()["problems"][0]


def test_cancel_stops_rows_already_claimed_but_not_yet_sent(brt, twilio):
    """A worker claims a second of rate slots at a time; cancelling stops those claimed rows too
    (they are skipped as cancelled), not only the ones still in the queue."""
    brt.settings = brt.settings.with_(sms_rate=2.0)
    for i in range(12):
        h.add_signer(brt, f"+131255502{i:02d}")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Hi {first_name}"))
    with RunningWorker(brt) as running:
        assert wait_for(lambda: len(twilio.messages) >= 2, 15)
        assert wait_for(lambda: h.status_of(brt, b.id).get("sending", 0) >= 1, 5)
        result = broadcasts.cancel_broadcast(brt, b.id, by="test")
        returned = time.time()
        # the claimed rows not yet handed to the provider are skipped by the cancel itself
        assert result.cancelled >= 1
        assert wait_for(lambda: "sending" not in h.status_of(brt, b.id), 10)
    # after the cancel has returned, only what it reported as already with the provider goes out
    late = [r for r in twilio.requests if r.path.endswith("/Messages.json") and r.arrived > returned]
    assert len(late) <= result.in_flight, "a message went out after the cancel"
    counts = broadcasts.follow_up(brt, b.id)["counts"]
    assert counts["sent"] + counts["cancelled"] == 12 and counts["cancelled"] >= 12 - len(twilio.messages)
