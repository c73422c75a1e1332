"""Broadcasts end to end against the Twilio and Telegram stand-ins (the real client libraries run)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bots import broadcasts, privacy
from bots.worker import Options, Worker, run_worker
from bots.channels.sms import SMS
from bots.broadcasts import BroadcastError, BroadcastRequest
from bots.runtime import utcnow
from storage import broadcasts as sql
from storage.models import Broadcast, ConsentEvent, Delivery, EarlyStatus, Member
from tests.support import broadcasts as h
from tests.support.standins import TELEGRAM_BLOCKED, TWILIO_SERVER_ERROR, TWILIO_UNSUBSCRIBED, telegram_too_many
from tests.support.twilio_client import PUBLIC_URL, sign


@pytest.fixture
def brt(rt, twilio, telegram):
    """The runtime, talking to the stand-ins, on the real clock (retries and pauses need time to pass)."""
    rt.settings = h.settings_for(rt, twilio, telegram)
    rt.clock = utcnow
    return rt


def drain(rt, **kw):
    return run_worker(rt, Options(drain=True, poll=0.2, **kw))


def member(rt, channel, address) -> Member:
    with rt.db.uow() as uow:
        m = uow.session.scalars(select(Member).where(Member.channel == channel, Member.address == address)).one()
        uow.session.expunge(m)
        return m


def test_each_reachable_signer_gets_it_once_in_their_language(brt, twilio, telegram):
    h.add_signer(brt, "+13125550001", name="Ana María López")
    h.add_signer(brt, "+13125550002", name="José Pérez", language="es")
    h.add_signer(brt, "+13125550003", opted_out=True)
    h.add_signer(brt, "+13125550004", simulated=True)
    h.add_signer(brt, "+13125550005", campaign="other")
    h.add_signer(brt, "1001", channel="telegram", name="Lupe")
    h.add_signer(brt, "1002", channel="telegram", unreachable=True)
    req = BroadcastRequest("end-scomm", "Hi {first_name}, we won \u2014 thanks!", "Hola {first_name}, \u00a1ganamos!")
    pv = broadcasts.preview(brt, req)
    assert pv.recipients == {"sms": 2, "telegram": 1}
    assert {(t.channel, t.language): t.encoding for t in pv.texts}[("sms", "en")] == "GSM-7"
    created = broadcasts.create_broadcast(brt, req)
    assert created.recipients == 3 and created.held == 0

    stats = drain(brt)
    assert stats["sent"] == 3
    bodies = {m["To"]: m["Body"] for m in twilio.messages}
    assert bodies == {
        "+13125550001": "Hi Ana, we won - thanks! Reply STOP to opt out.",
        "+13125550002": "Hola José, ¡ganamos! Responde STOP para no recibir mas mensajes.",
    }
    assert [(str(c["chat_id"]), c["text"]) for c in telegram.sent] == [("1001", "Hi Lupe, we won \u2014 thanks!")]
    assert all(m["MessagingServiceSid"] == "MG" + "1" * 32 for m in twilio.messages)
    assert all(m["StatusCallback"] == PUBLIC_URL + "/webhooks/twilio/status" for m in twilio.messages)
    assert h.status_of(brt) == {"sent": 3}
    p = broadcasts.progress(brt, created.id)
    assert p.broadcast.started_at is not None and p.broadcast.finished_at is not None

    # A second drain finds nothing to do: nobody gets it twice.
    drain(brt)
    assert len(twilio.messages) == 2 and len(telegram.sent) == 1


def test_filters_state_zip_prefix_signed_since_and_channel(brt):
    early = datetime(2026, 1, 1, tzinfo=timezone.utc)
    h.add_signer(brt, "+13125550001", state="IL", zip_code="60601")
    h.add_signer(brt, "+13125550002", state="IL", zip_code="62701", signed_at=early)
    h.add_signer(brt, "+12125550003", state="NY", zip_code="10001", tz="America/New_York")
    h.add_signer(brt, "1001", channel="telegram", state="IL", zip_code="60602")

    def count(**kw):
        return broadcasts.preview(brt, BroadcastRequest("end-scomm", "x", **kw)).recipients

    assert count(state="il") == {"sms": 2, "telegram": 1}
    assert count(state="IL", channel="sms") == {"sms": 2}
    assert count(zip_prefix="606") == {"sms": 1, "telegram": 1}
    assert count(signed_since=datetime(2026, 6, 1, tzinfo=timezone.utc)) == {"sms": 2, "telegram": 1}
    for bad in ({"state": "Illinois"}, {"zip_prefix": "6a"}, {"channel": "fax"}):
        with pytest.raises(BroadcastError):
            count(**bad)
    with pytest.raises(BroadcastError, match=r"\{zip\}"):
        broadcasts.preview(brt, BroadcastRequest("end-scomm", "Hi {zip}"))
    with pytest.raises(BroadcastError, match="no campaign"):
        broadcasts.create_broadcast(brt, BroadcastRequest("nope", "x"))


def test_twilio_21610_at_send_time_opts_the_member_out(brt, twilio):
    h.add_signer(brt, "+13125550001")
    h.add_signer(brt, "+13125550002")
    twilio.fail("+13125550002", TWILIO_UNSUBSCRIBED)
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    stats = drain(brt)
    assert stats["sent"] == 1 and stats["opted_out"] == 1
    m = member(brt, "sms", "+13125550002")
    assert m.opted_out_at is not None
    with brt.db.uow() as uow:
        ev = uow.session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == m.id)).one()
        assert (ev.kind, ev.cause, ev.campaign) == ("opt_out", "twilio:21610", "end-scomm")
    assert {d.address: (d.status, d.error_code) for d in h.deliveries(brt, b.id)}["+13125550002"] == ("failed", "21610")
    # The next broadcast leaves them out.
    assert broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Again")).recipients == 1


@pytest.mark.slow
def test_5xx_is_retried_with_backoff_then_sent(brt, twilio):
    h.add_signer(brt, "+13125550001")
    twilio.fail("+13125550001", TWILIO_SERVER_ERROR, None)
    broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    stats = drain(brt)
    assert stats["retried"] == 1 and stats["sent"] == 1
    times = [r.arrived for r in twilio.requests]
    assert len(times) == 2 and times[1] - times[0] >= 0.9  # the first backoff is one second
    (d,) = h.deliveries(brt)
    assert (d.status, d.attempts) == ("sent", 2)


@pytest.mark.slow
def test_5xx_forever_fails_after_a_bounded_number_of_tries(brt, twilio, monkeypatch):
    from bots import broadcast_plan

    monkeypatch.setattr(broadcast_plan, "backoff", lambda attempts: timedelta(seconds=0.05))
    h.add_signer(brt, "+13125550001")
    twilio.fail("+13125550001", TWILIO_SERVER_ERROR)
    broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    drain(brt)
    (d,) = h.deliveries(brt)
    assert (d.status, d.attempts, d.error_code) == ("failed", broadcast_plan.MAX_ATTEMPTS, "20500")
    assert len(twilio.requests) == broadcast_plan.MAX_ATTEMPTS


def test_telegram_403_makes_the_member_unreachable(brt, telegram):
    h.add_signer(brt, "1001", channel="telegram")
    h.add_signer(brt, "1002", channel="telegram")
    telegram.fail(1002, TELEGRAM_BLOCKED)
    drain_stats = (broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update")), drain(brt))[1]
    assert drain_stats["unreachable"] == 1 and drain_stats["sent"] == 1
    assert member(brt, "telegram", "1002").unreachable_at is not None
    assert member(brt, "telegram", "1001").unreachable_at is None
    assert broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Again")).recipients == 1


@pytest.mark.slow
def test_telegram_429_pauses_the_channel_then_retries_the_same_delivery(brt, telegram):
    for i in range(1, 21):
        h.add_signer(brt, str(1000 + i), channel="telegram")
    telegram.fail(1001, telegram_too_many(1), None)
    brt.settings = brt.settings.with_(telegram_rate=20.0)
    broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    stats = drain(brt)
    assert stats["sent"] == 20 and stats["paused"] >= 1
    to_1001 = [at for chat, at in h.telegram_sends(telegram) if chat == "1001"]
    assert len(to_1001) == 2 and to_1001[1] - to_1001[0] >= 1.0
    # While paused, the channel sent nothing else (calls already on the wire excepted).
    during = [r for r in telegram.requests if r.path.endswith("/sendMessage")
              and to_1001[0] + 0.2 < r.arrived < to_1001[0] + 0.95]
    assert during == []
    assert sorted(int(c["chat_id"]) for c in telegram.sent) == sorted([1001] + list(range(1001, 1021)))


@pytest.mark.slow
def test_quiet_hours_hold_sms_per_time_zone_and_release_them(rt, twilio, telegram, clock):
    rt.settings = h.settings_for(rt, twilio, telegram, quiet_hours=__import__("config.settings", fromlist=["x"])
                                 .parse_quiet_hours("20:00-09:00"))
    clock.now = datetime(2026, 11, 28, 2, 0, tzinfo=timezone.utc)  # NY 21:00, Chicago 20:00, Denver 19:00, LA 18:00
    h.add_signer(rt, "+12125550001", tz="America/New_York")
    h.add_signer(rt, "+13125550002", tz="America/Chicago")
    h.add_signer(rt, "+17205550003", tz="America/Denver")
    h.add_signer(rt, "+14155550004", tz="America/Los_Angeles")
    h.add_signer(rt, "+12125550005", tz=None)  # no zone from the ZIP: area code 212 is New York
    h.add_signer(rt, "1001", channel="telegram")  # quiet hours are for SMS
    b = broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Update"))
    ny_opens = datetime(2026, 11, 28, 14, 0, tzinfo=timezone.utc)  # 09:00 EST
    assert (b.held, b.held_until) == (3, ny_opens)

    drain(rt)
    assert sorted(m["To"] for m in twilio.messages) == ["+14155550004", "+17205550003"]
    assert len(telegram.sent) == 1
    p = broadcasts.progress(rt, b.id)
    assert p.counts == {"sent": 3, "held": 3} and p.next_release == ny_opens

    clock.now = ny_opens  # Chicago is at 08:00: still quiet
    drain(rt)
    assert sorted(m["To"] for m in twilio.messages)[:2] == ["+12125550001", "+12125550005"]
    assert len(twilio.messages) == 4

    clock.now = datetime(2026, 11, 28, 15, 0, tzinfo=timezone.utc)  # 09:00 CST
    drain(rt)
    assert len(twilio.messages) == 5 and len({m["To"] for m in twilio.messages}) == 5
    assert h.status_of(rt, b.id) == {"sent": 6}


def test_a_member_who_opts_out_after_planning_is_skipped(brt, twilio):
    h.add_signer(brt, "+13125550001")
    h.add_signer(brt, "+13125550002")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    with brt.db.uow() as uow:
        m = uow.session.scalars(select(Member).where(Member.address == "+13125550002")).one()
        m.opted_out_at = utcnow()
        uow.commit()
    drain(brt)
    assert [m["To"] for m in twilio.messages] == ["+13125550001"]
    assert h.status_of(brt, b.id) == {"sent": 1, "skipped": 1}


def _post_status(client, **params):
    path = "/webhooks/twilio/status"
    return client.post(path, data=urlencode(params), content_type="application/x-www-form-urlencoded",
                       headers={"X-Twilio-Signature": sign(params, PUBLIC_URL + path)})


def test_status_callbacks_move_deliveries_and_21610_opts_out(brt, twilio, client):
    h.add_signer(brt, "+13125550001")
    h.add_signer(brt, "+13125550002")
    broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    drain(brt)
    sids = {d.address: d.provider_id for d in h.deliveries(brt)}
    assert _post_status(client, MessageSid=sids["+13125550001"], MessageStatus="delivered",
                        To="+13125550001").status_code == 204
    assert _post_status(client, MessageSid=sids["+13125550002"], MessageStatus="undelivered", ErrorCode="21610",
                        To="+13125550002").status_code == 204
    # Twilio also sends "sent" after the fact; it does not move a delivery back.
    _post_status(client, MessageSid=sids["+13125550001"], MessageStatus="sent", To="+13125550001")
    got = {d.address: (d.status, d.error_code) for d in h.deliveries(brt)}
    assert got == {"+13125550001": ("delivered", None), "+13125550002": ("failed", "21610")}
    assert member(brt, "sms", "+13125550002").opted_out_at is not None
    assert member(brt, "sms", "+13125550001").opted_out_at is None

    # Unsigned or malformed callbacks change nothing.
    bad = client.post("/webhooks/twilio/status", data=urlencode({"MessageSid": sids["+13125550001"],
                                                                 "MessageStatus": "failed"}),
                      content_type="application/x-www-form-urlencoded", headers={"X-Twilio-Signature": "nope"})
    assert bad.status_code == 403
    assert _post_status(client, MessageSid="garbage", MessageStatus="failed").status_code == 400
    assert _post_status(client, MessageSid=sids["+13125550001"], MessageStatus="failed",
                        ErrorCode="x").status_code == 400
    assert h.deliveries(brt)[0].status == "delivered"


def _early_statuses(rt) -> dict[str, str]:
    with rt.db.uow() as uow:
        return {e.provider_id: e.status for e in uow.session.scalars(select(EarlyStatus))}


def test_a_status_callback_that_comes_before_the_send_is_answered_still_counts(brt, twilio, client):
    """Twilio may report on a message before its answer to the send has reached the worker (which
    writes the SIDs a batch at a time): the report is kept and applied when the SID is written."""
    for i in range(1, 5):
        h.add_signer(brt, f"+1312555000{i}")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    early = []

    def report_first(sid, form):
        with brt.db.uow() as uow:  # the worker has not got this SID yet
            assert sql.delivery_by_provider_id(uow.session, sid) is None
        failed = form["To"] == "+13125550002"
        params = {"MessageSid": sid, "MessageStatus": "undelivered" if failed else "delivered", "To": form["To"]}
        if failed:
            params["ErrorCode"] = "30003"
        early.append(_post_status(client, **params).status_code)

    twilio.before_answer = report_first
    drain(brt, reap_every=3600)  # the worker's own write applies them, not its periodic sweep (below)
    assert early == [204] * 4
    got = {d.address: (d.status, d.error_code) for d in h.deliveries(brt, b.id)}
    assert got == {"+13125550001": ("delivered", None), "+13125550002": ("failed", "30003"),
                   "+13125550003": ("delivered", None), "+13125550004": ("delivered", None)}
    assert _early_statuses(brt) == {}  # applied, then dropped


def test_an_early_callback_finds_the_sid_written_while_it_was_kept(brt, twilio, client, monkeypatch):
    """The worker looks for kept reports after it commits the SIDs; a report whose lookup came before
    that commit, but which was kept after the worker looked, applies itself once kept."""
    h.add_signer(brt, "+13125550001")
    broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    drain(brt)
    (d,) = h.deliveries(brt)
    assert d.status == "sent" and d.provider_id
    found = sql.delivery_by_provider_id
    calls = []

    def not_yet_written(session, sid):  # the callback's first lookup ran before the worker's commit
        calls.append(sid)
        return None if len(calls) == 1 else found(session, sid)

    monkeypatch.setattr(sql, "delivery_by_provider_id", not_yet_written)
    assert _post_status(client, MessageSid=d.provider_id, MessageStatus="delivered",
                        To="+13125550001").status_code == 204
    assert len(calls) >= 2
    assert h.deliveries(brt)[0].status == "delivered" and _early_statuses(brt) == {}


def test_a_kept_report_the_worker_did_not_get_to_is_applied_by_its_sweep(brt, twilio):
    """A worker that stopped between writing a SID and applying its kept report (or whose database
    went away then): the next worker's periodic sweep applies it. Reports for messages that are not
    ours stay until `firma db purge`."""
    h.add_signer(brt, "+13125550001")
    h.add_signer(brt, "+13125550002")
    broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    drain(brt)
    sids = {d.address: d.provider_id for d in h.deliveries(brt)}
    old = utcnow() - timedelta(days=31)
    with brt.db.uow() as uow:
        sql.keep_early_status(uow.session, sids["+13125550002"], "undelivered", "30005", utcnow())
        sql.keep_early_status(uow.session, "SM" + "f" * 32, "delivered", None, old)  # another application's
        sql.keep_early_status(uow.session, "SM" + "e" * 32, "failed", "30003", utcnow())
        uow.commit()
    broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Another update"))
    drain(brt)
    got = {(d.address, d.broadcast_id): (d.status, d.error_code) for d in h.deliveries(brt)}
    assert sorted(got.values()) == [("failed", "30005"), ("sent", None), ("sent", None), ("sent", None)]
    assert set(_early_statuses(brt)) == {"SM" + "f" * 32, "SM" + "e" * 32}
    purged = privacy.purge(brt.db.uow(), utcnow(), days=30)
    assert purged.early_statuses == 1 and set(_early_statuses(brt)) == {"SM" + "e" * 32}


def test_a_second_early_report_keeps_a_failure_over_a_delivery(brt):
    sid = "SM" + "a" * 32
    with brt.db.uow() as uow:
        for status, code in (("delivered", None), ("undelivered", "30003"), ("delivered", None)):
            sql.keep_early_status(uow.session, sid, status, code, utcnow())
        uow.commit()
    assert _early_statuses(brt) == {sid: "undelivered"}


def test_outcomes_written_again_leave_a_later_claim_of_the_same_row_alone(brt):
    """A worker whose COMMIT of outcomes lost its answer cannot tell it from a COMMIT that failed, and
    writes the same outcomes again. A row they put back in the queue may have been claimed again
    meanwhile: the second write must not put it back once more (it would be sent twice: the new
    claim's outcome would find it no longer `sending`) nor take another attempt off it."""
    h.add_signer(brt, "+13125550001")
    broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    (d,) = h.deliveries(brt)
    t0 = utcnow()
    first, second = t0 + timedelta(seconds=120), t0 + timedelta(seconds=125)

    def claim(lease):
        with brt.db.uow() as uow:
            sql.mark_sending(uow.session, [d.id], t0, lease)
            uow.commit()

    def write(*outcomes):
        with brt.db.uow() as uow:
            sql.record_outcomes(uow.session, list(outcomes), t0)
            uow.commit()

    claim(first)
    requeued = {"id": d.id, "lease": first, "status": "pending", "due_at": t0, "attempts_delta": -1}  # a 429
    write(requeued)
    assert h.deliveries(brt)[0].status == "pending"
    claim(second)
    write(requeued)  # again
    (d,) = h.deliveries(brt)
    assert (d.status, d.attempts, d.lease_until) == ("sending", 1, second)
    write({"id": d.id, "lease": second, "status": "sent", "provider_id": "SM" + "1" * 32, "due_at": t0})
    assert h.deliveries(brt)[0].status == "sent"


def test_created_broadcast_is_listed_with_counts(brt):
    h.add_signer(brt, "+13125550001")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update", created_by="ana@example.org"))
    (p,) = broadcasts.list_broadcasts(brt)
    assert p.broadcast.id == b.id and p.counts == {"pending": 1} and p.broadcast.created_by == "ana@example.org"
    with brt.db.uow() as uow:
        assert uow.session.get(Broadcast, b.id).recipients == 1


def test_a_cancelled_broadcast_sends_nothing_more_even_a_retry(brt, twilio):
    for i in range(1, 4):
        h.add_signer(brt, f"+1312555000{i}")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    # One message is in flight (a worker handed it to Twilio) when staff cancel: it finishes as it would.
    with brt.db.uow() as uow:
        first = uow.session.scalars(select(Delivery).where(Delivery.broadcast_id == b.id).order_by(Delivery.id)).first()
        first.status, first.handed_over_at = "sending", utcnow()
        uow.commit()
    result = broadcasts.cancel_broadcast(brt, b.id, by="staff@example.org")
    assert (result.cancelled, result.in_flight, result.already) == (2, 1, False)
    assert h.status_of(brt, b.id) == {"sending": 1, "skipped": 2}
    # Twilio answered 5xx for the one in flight: the worker puts it back for a retry...
    with brt.db.uow() as uow:
        uow.session.get(Delivery, first.id).status = "pending"
        uow.commit()
    stats = drain(brt)
    # ... and the retry is not sent either: the broadcast was cancelled.
    assert twilio.messages == [] and stats["sent"] == 0
    assert {(d.status, d.error_code) for d in h.deliveries(brt, b.id)} == {("skipped", "cancelled")}
    with brt.db.uow() as uow:
        got = uow.session.get(Broadcast, b.id)
        assert got.cancelled_by == "staff@example.org" and got.cancelled_at is not None
    again = broadcasts.cancel_broadcast(brt, b.id, by="other@example.org")
    assert again.already and again.cancelled == 0
    with brt.db.uow() as uow:
        assert uow.session.get(Broadcast, b.id).cancelled_by == "staff@example.org"  # the first one stays


@pytest.mark.parametrize("rate", [1.0, 25.0])
def test_cancel_stops_messages_a_worker_claimed_and_counts_them_as_not_sent(brt, twilio, rate):
    """A worker claims a second's worth of messages ahead of their rate slots; a cancel in that second
    stops them: after the cancel has returned, only the messages it reported as already handed to the
    provider reach Twilio, and the report counts the others as not sent."""
    brt.settings = brt.settings.with_(sms_rate=rate)
    n = 4 if rate == 1.0 else 60
    h.add_signers_bulk(brt, n)
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    worker = h.WorkerThread(brt, Options(drain=True, poll=0.05))
    worker.start()
    deadline = time.monotonic() + 20
    while (p := broadcasts.progress(brt, b.id)).n("sending") == p.handed and time.monotonic() < deadline:
        time.sleep(0.002)
    assert p.n("sending") - p.handed >= 1  # claimed, waiting for its slot
    result = broadcasts.cancel_broadcast(brt, b.id, by="staff@example.org")
    returned = time.time()
    worker.join(timeout=60)
    assert not worker.is_alive() and worker.error is None, worker.error
    after = [r for r in twilio.requests if r.path.endswith("/Messages.json") and r.arrived > returned]
    assert len(after) <= result.in_flight
    counts = h.status_of(brt, b.id)
    assert counts.get("skipped", 0) == result.cancelled >= 1
    assert counts.get("sent", 0) == len(twilio.messages) <= n - result.cancelled
    rows = h.deliveries(brt, b.id)
    assert {(d.status, d.error_code) for d in rows if d.status != "sent"} == {("skipped", "cancelled")}
    assert any(d.attempts for d in rows if d.status == "skipped")  # claimed by the worker, and stopped


def test_a_hand_over_waits_for_a_stop_being_handled_then_skips_the_message(brt):
    """The ordering the hand-over relies on: a STOP whose transaction holds the member's row (the
    inbound path locks it first) makes a worker's hand-over wait; once the STOP commits, the hand-over
    reads the member again and skips the message instead of sending it."""
    import threading

    member_id = h.add_signer(brt, "+13125550001")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    lease = utcnow() + timedelta(minutes=2)
    with brt.db.uow() as uow:
        d = uow.session.scalars(select(Delivery).where(Delivery.broadcast_id == b.id)).one()
        d.status, d.lease_until, delivery_id = "sending", lease, d.id
        uow.commit()
    result = {}

    def hand_over():
        with brt.db.uow() as uow:
            result["done"] = sql.hand_over(uow.session, [(delivery_id, member_id, lease)], utcnow())
            uow.commit()

    worker = threading.Thread(target=hand_over)
    with brt.db.uow() as stop:
        stop.session.scalars(select(Member).where(Member.id == member_id).with_for_update()).one().opted_out_at = utcnow()
        stop.session.flush()
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # waits for the STOP
        stop.commit()
    worker.join(10)
    assert not worker.is_alive()
    assert result["done"].handed == frozenset() and result["done"].skipped == {delivery_id: "opted_out"}
    assert h.status_of(brt, b.id) == {"skipped": 1}


def test_the_cancel_report_counts_claimed_messages_as_not_sent(brt):
    """The CLI's prompt and the console count what a cancel stops: queued, held and claimed but not
    handed over; only messages handed to the provider are "already with the provider"."""
    for i in range(1, 5):
        h.add_signer(brt, f"+1312555000{i}")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    lease = utcnow() + timedelta(minutes=2)
    with brt.db.uow() as uow:
        rows = uow.session.scalars(select(Delivery).where(Delivery.broadcast_id == b.id).order_by(Delivery.id)).all()
        rows[0].status, rows[0].lease_until, rows[0].handed_over_at = "sending", lease, utcnow()  # with Twilio
        rows[1].status, rows[1].lease_until = "sending", lease  # claimed, waiting for its slot
        uow.commit()
    p = broadcasts.progress(brt, b.id)
    assert (p.not_sent, p.handed) == (3, 1)
    result = broadcasts.cancel_broadcast(brt, b.id, by="staff@example.org")
    assert (result.cancelled, result.in_flight) == (3, 1)
    assert h.status_of(brt, b.id) == {"sending": 1, "skipped": 3}


def test_a_dead_workers_claims_never_handed_over_are_sent_by_another(brt, twilio):
    """A worker that died left three rows `sending`: one handed to the provider (it may have gone
    out: `unknown`, never resent), two claimed and waiting for their slots (never handed over, so
    never sent: another worker sends them once the lease has run out)."""
    for i in range(1, 4):
        h.add_signer(brt, f"+1312555000{i}")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    expired = utcnow() - timedelta(seconds=1)
    with brt.db.uow() as uow:
        rows = uow.session.scalars(select(Delivery).where(Delivery.broadcast_id == b.id).order_by(Delivery.id)).all()
        for row in rows:
            row.status, row.lease_until, row.attempts = "sending", expired, 1
        rows[0].handed_over_at = expired
        uow.commit()
    drain(brt)
    assert sorted(m["To"] for m in twilio.messages) == ["+13125550002", "+13125550003"]  # each once
    assert {d.address: (d.status, d.attempts) for d in h.deliveries(brt, b.id)} == {
        "+13125550001": ("unknown", 1), "+13125550002": ("sent", 1), "+13125550003": ("sent", 1)}


def test_cancelling_a_finished_or_unknown_broadcast_changes_nothing(brt, twilio):
    h.add_signer(brt, "+13125550001")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    drain(brt)
    result = broadcasts.cancel_broadcast(brt, b.id, by="staff@example.org")
    assert result.finished and result.cancelled == 0
    with brt.db.uow() as uow:
        assert uow.session.get(Broadcast, b.id).cancelled_at is None
    assert h.status_of(brt, b.id) == {"sent": 1}
    assert broadcasts.cancel_broadcast(brt, 999, by="staff@example.org") is None


@pytest.mark.slow
def test_cancel_while_a_worker_sends_stops_it_without_a_deadlock(brt, twilio):
    """A worker claims deliveries and then marks their broadcast; a cancel takes the same two in the
    same order, so both go through. What had reached the provider is sent; the rest never is (rows
    the worker had claimed but not yet sent are skipped too)."""
    brt.settings = brt.settings.with_(sms_rate=40.0)  # slow enough to cancel mid-way
    h.add_signers_bulk(brt, 200)
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Update"))
    worker = h.WorkerThread(brt, Options(drain=True, poll=0.1, batch=20, concurrency=20))
    worker.start()
    deadline = time.monotonic() + 20
    while h.status_of(brt, b.id).get("sent", 0) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    result = broadcasts.cancel_broadcast(brt, b.id, by="staff@example.org")
    worker.join(timeout=60)
    assert not worker.is_alive() and worker.error is None, worker.error
    counts = h.status_of(brt, b.id)
    assert result.cancelled > 100 and counts.get("skipped", 0) >= result.cancelled
    assert counts.get("sent", 0) == len(twilio.messages) == 200 - counts["skipped"]  # each once, none after
    assert set(counts) <= {"sent", "skipped"}


@pytest.mark.slow
def test_a_claim_the_database_fails_is_tried_again_and_nothing_is_lost(brt, twilio, monkeypatch, caplog):
    """The very first claim dies half-way (after the channel's throttle row was made, before the commit
    that would have kept it): the worker waits, claims again, and sends everything once."""
    for i in range(5):
        h.add_signer(brt, f"+1312555010{i}")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Hi"))
    real, failures = sql.claim_candidates, []

    def flaky(*args, **kw):
        if not failures:
            failures.append(1)
            raise OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))
        return real(*args, **kw)

    monkeypatch.setattr(sql, "claim_candidates", flaky)
    stats = drain(brt)
    assert failures == [1] and stats["sent"] == 5
    assert sorted(m["To"] for m in twilio.messages) == [f"+1312555010{i}" for i in range(5)]
    assert h.status_of(brt, b.id) == {"sent": 5}
    assert "the database is unavailable" in caplog.text and "the database is back" in caplog.text


def test_a_worker_stopped_while_the_database_is_down_keeps_its_rows_sending(brt, twilio, monkeypatch, caplog):
    """Outcomes that cannot be written before the worker exits are reported, and their rows stay
    `sending` (later `unknown`, never resent): not marked as if nothing had been sent."""
    for i in range(3):
        h.add_signer(brt, f"+1312555020{i}")
    b = broadcasts.create_broadcast(brt, BroadcastRequest("end-scomm", "Hi"))

    def down(self, batch):
        raise OperationalError("UPDATE", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(Worker, "_write", down)
    worker = Worker(brt, {"sms": SMS.sender(brt.settings)}, Options(poll=0.05))
    worker.db_retry, worker.last_write_patience = 0.05, 0.3

    async def main():
        task = asyncio.create_task(worker.run())
        while len(twilio.messages) < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # their outcomes reach the buffer; the writes keep failing
        worker.stop.set()
        return await task

    stats = asyncio.run(main())
    assert stats["sent"] == 3 and len(twilio.messages) == 3
    assert "3 outcomes were not written" in caplog.text
    assert h.status_of(brt, b.id) == {"sending": 3}
