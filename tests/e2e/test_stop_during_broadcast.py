"""STOP during a broadcast: once firma has answered a member's STOP, nothing more reaches the provider
for them, whatever the rate, the channel or where their message stands (queued, claimed by a worker,
waiting for its rate slot, or on its way to the provider).

The STOPs go through the real inbound path (a signed Twilio webhook, a Telegram update) while a worker
sends the broadcast to the stand-ins; each STOP is sent at a random moment after the worker has claimed
the member's message, and its answer's time is kept. A message that reaches the stand-in after that
time is the fault (the stand-in keeps each request's arrival time as the kernel saw it).
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import select

from bots import broadcasts
from bots.worker import Options
from bots.broadcasts import BroadcastRequest
from bots.runtime import utcnow
from storage.models import Delivery, Member
from tests.support import broadcasts as h
from tests.support import telegram_updates as tu
from tests.support.twilio_client import messages, post_sms

TEXT = "Hearings start Monday"


@pytest.fixture
def brt(rt, twilio, telegram):
    rt.settings = h.settings_for(rt, twilio, telegram, telegram_webhook_secret=tu.SECRET)
    rt.clock = utcnow
    return rt


def _status(rt, member_id: int, broadcast_id: int) -> str:
    with rt.db.reader() as uow:
        return uow.session.scalar(select(Delivery.status).where(Delivery.member_id == member_id,
                                                                Delivery.broadcast_id == broadcast_id))


def _member_ids(rt, channel: str) -> dict[str, int]:
    with rt.db.reader() as uow:
        return {a: i for a, i in uow.session.execute(select(Member.address, Member.id).where(Member.channel == channel))}


def _race(rt, *, channel: str, rate: float, signers: int, targets: list[int], stop, arrivals, seed: int,
          workers: int = 1):
    """Send a broadcast to ``signers`` members of ``channel`` at ``rate`` while the members at the
    indices ``targets`` send STOP (``stop(address)`` returns when firma has answered), each at a random
    moment between the worker claiming their message and a little after its rate slot. Returns
    {address: when the STOP was answered}, after the worker has finished."""
    rnd = random.Random(seed)
    rt.settings = rt.settings.with_(sms_rate=rate, telegram_rate=rate)
    if channel == "sms":
        addresses = [f"+1312555{i:04d}" for i in range(signers)]
    else:
        addresses = [str(700_000_000 + i) for i in range(signers)]
    for a in addresses:
        h.add_signer(rt, a, channel=channel)
    ids = _member_ids(rt, channel)
    b = broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", TEXT, channel=channel))
    threads = [h.WorkerThread(rt, Options(drain=True, poll=0.05)) for _ in range(workers)]
    for w in threads:
        w.start()
    answered: dict[str, float] = {}
    claimed_first: list[str] = []
    spacing = 1.15 / rate
    errors: list[BaseException] = []

    def racer(address: str, delay: float) -> None:
        try:
            deadline = time.monotonic() + 60
            while _status(rt, ids[address], b.id) in ("pending", "held") and time.monotonic() < deadline:
                time.sleep(0.002)
            if _status(rt, ids[address], b.id) == "sending":
                claimed_first.append(address)
            time.sleep(delay)
            stop(address)
            answered[address] = time.time()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    # anywhere from at once to past its slot (claims run about a second ahead of the slots)
    racers = [threading.Thread(target=racer, args=(addresses[i], rnd.uniform(0, 1.0 + 2 * spacing)))
              for i in targets]
    for t in racers:
        t.start()
    try:
        for t in racers:
            t.join(timeout=120)
    finally:
        for w in threads:
            w.join(timeout=120)
    assert not errors, errors
    for w in threads:
        assert not w.is_alive() and w.error is None, w.error
    # the race was run: most STOPs came while the worker held the member's message
    assert len(claimed_first) >= len(targets) // 2, claimed_first
    late = {a: [t - answered[a] for to, t in arrivals() if to == a and t > answered[a]] for a in answered}
    assert {a: d for a, d in late.items() if d} == {}, "sent after the STOP was answered (seconds after)"
    sent_to = {to for to, _ in arrivals()}
    others = set(addresses) - set(answered)
    assert others <= sent_to  # everyone else got it
    counts = h.status_of(rt, b.id)
    assert counts.get("sent", 0) == len(sent_to) and set(counts) <= {"sent", "skipped"}, counts
    return answered


def _twilio_arrivals(twilio):
    return lambda: [(r.form["To"][0], r.arrived) for r in twilio.requests
                    if r.path.endswith("/Messages.json") and TEXT in r.form.get("Body", [""])[0]]


def _telegram_arrivals(telegram):
    def arrivals():
        out = []
        for r in telegram.requests:
            params = r.json if r.json is not None else {k: v[0] for k, v in r.form.items()}
            if r.path.endswith("/sendMessage") and TEXT in str(params.get("text", "")):
                out.append((str(params.get("chat_id")), r.arrived))
        return out
    return arrivals


@pytest.mark.parametrize("rate, signers, targets", [(1.0, 6, [1, 3, 5]), (25.0, 120, list(range(10, 120, 9)))],
                         ids=["1-per-second", "25-per-second"])
def test_no_sms_reaches_twilio_after_stop_is_answered(brt, twilio, app, rate, signers, targets):
    def stop(address):
        r = post_sms(app.test_client(), address, "STOP")
        assert r.status_code == 200 and "unsubscribed" in messages(r)[0], r.data

    _race(brt, channel="sms", rate=rate, signers=signers, targets=targets, stop=stop,
          arrivals=_twilio_arrivals(twilio), seed=int(rate))


@pytest.mark.parametrize("rate, signers, targets", [(1.0, 6, [1, 3, 5]), (30.0, 120, list(range(10, 120, 9)))],
                         ids=["1-per-second", "30-per-second"])
def test_no_telegram_message_after_stop_is_answered(brt, telegram, app, rate, signers, targets):
    def stop(address):
        before = len(telegram.sent)
        r = tu.post_update(app.test_client(), tu.text_update(int(address), "/stop"))
        assert r.status_code == 200
        said = [r.get_json()["text"]] if r.data and r.get_json().get("method") == "sendMessage" else \
            [m["text"] for m in telegram.sent[before:] if TEXT not in m["text"]]
        assert any("unsubscribed" in s for s in said), said

    _race(brt, channel="telegram", rate=rate, signers=signers, targets=targets, stop=stop,
          arrivals=_telegram_arrivals(telegram), seed=int(rate))


def test_no_sms_after_stop_with_two_workers_sharing_the_rate(brt, twilio, app):
    """Two workers (as on two hosts) share one 25/s rate and race each other's claims as well (on
    SQLite a second worker adds nothing, but must not break the promise either)."""

    def stop(address):
        r = post_sms(app.test_client(), address, "STOP")
        assert r.status_code == 200 and "unsubscribed" in messages(r)[0], r.data

    _race(brt, channel="sms", rate=25.0, signers=120, targets=list(range(12, 120, 9)), stop=stop,
          arrivals=_twilio_arrivals(twilio), seed=2, workers=2)
