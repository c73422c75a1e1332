"""Abuse: one number scripting a flood is throttled (and STOP still works); a keyword storm from many
numbers does not keep other members from signing."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from bots.service import INBOUND_LIMIT_PER_MINUTE as LIMIT
from storage import repository as repo
from storage.models import Base, ConsentEvent, InboundCounter, InboxMessage, ProcessedMessage, Signature
from tests.support.twilio_client import SMS_PATH, messages, post_sms, sign, sms_params
from webhooks import create_app

FLOODER = "+13125550100"


def table_counts(rt) -> dict[str, int]:
    with rt.db.uow() as uow:
        return {t.name: uow.session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def test_a_flood_from_one_number_is_throttled_but_stop_still_works(client, rt, clock):
    replies = [messages(post_sms(client, FLOODER, "SCOMM" if i == 0 else f"spam {i}")) for i in range(LIMIT)]
    with rt.db.uow() as uow:  # words for staff are kept; one acknowledgement a day, the rest get no answer
        kept = uow.session.scalar(select(func.count()).select_from(InboxMessage).where(InboxMessage.sender == "member"))
    assert kept and sum(1 for r in replies if not r) == kept - 1, "under the limit every message is handled"
    before = table_counts(rt)
    for i in range(20):
        response = post_sms(client, FLOODER, f"more spam {i}")
        # Twilio gets a 200 with an empty <Response/>: no error for it to retry or report, nothing sent.
        assert response.status_code == 200 and messages(response) == []
    after = table_counts(rt)
    assert {k: v for k, v in after.items() if k != "inbound_counters"} == \
        {k: v for k, v in before.items() if k != "inbound_counters"}, "nothing stored but the counter"
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(InboundCounter.count)) == LIMIT + 20

    # STOP is never throttled: the opt-out is recorded and confirmed, as carriers require.
    response = messages(post_sms(client, FLOODER, "stop"))
    assert len(response) == 1 and "unsubscribed" in response[0]
    with rt.db.uow() as uow:
        member = repo.find_member(uow.session, "sms", FLOODER)
        assert member.opted_out_at is not None
        kinds = [e.kind for e in repo.consent_history(uow.session, member.id)]
        assert kinds[-1] == "opt_out"

    # A flood of STOPs once opted out: confirmed once already, nothing more is stored.
    before = table_counts(rt)
    for _ in range(5):
        assert messages(post_sms(client, FLOODER, "STOP")) == []
    assert {k: v for k, v in table_counts(rt).items() if k != "inbound_counters"} == \
        {k: v for k, v in before.items() if k != "inbound_counters"}

    clock.advance(minutes=1)  # a new minute: the sender is heard again
    assert "subscribed again" in messages(post_sms(client, FLOODER, "START"))[0]


def test_the_limit_is_shared_by_every_web_process(rt, clock, settings, catalog):
    # Two apps with their own engines and pools, like two gunicorn workers: the count is in the database.
    from bots.runtime import Runtime

    other = Runtime.build(settings, catalog=catalog)
    other.clock = clock
    clients = [create_app({"TESTING": True}, rt).test_client(), create_app({"TESTING": True}, other).test_client()]
    try:
        # HELP: answered every time under the limit (free text is acknowledged once a day, then kept silently)
        answered = [bool(messages(post_sms(clients[i % 2], FLOODER, "HELP"))) for i in range(LIMIT + 10)]
    finally:
        other.db.dispose()
    assert answered == [True] * LIMIT + [False] * 10


def test_throttled_retries_and_other_senders_are_unaffected(client, rt):
    for i in range(LIMIT + 5):
        post_sms(client, FLOODER, f"x{i}")
    assert messages(post_sms(client, "+13125550199", "SCOMM"))  # someone else, same minute: answered
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(ProcessedMessage)) == LIMIT + 1


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def _post(http, base: str, sender: str, body: str) -> requests.Response:
    params = sms_params(sender, body)
    return http.post(base + SMS_PATH, data=urlencode(params), timeout=60,
                     headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(params)})


def test_a_keyword_storm_from_many_numbers_does_not_starve_a_member(live_server, rt):
    stop = threading.Event()
    storm_codes: list[int] = []
    lock = threading.Lock()
    MAX_PER_SENDER = 40  # bounded: the storm ends by itself if the member never gets through

    def storm(n: int) -> int:
        sent = 0
        with requests.Session() as http:
            while not stop.is_set() and sent < MAX_PER_SENDER:
                code = _post(http, live_server, f"+1312556{n:04d}", ["SCOMM", "FIRMA", "scomm!"][sent % 3]).status_code
                with lock:
                    storm_codes.append(code)
                sent += 1
        return sent

    with ThreadPoolExecutor(12) as pool:
        storms = [pool.submit(storm, n) for n in range(12)]
        with requests.Session() as http:
            while len(storm_codes) < 24:  # the storm is under way
                threading.Event().wait(0.01)
            member = "+13125550777"
            first = messages(_post(http, live_server, member, "SCOMM").content)
            second = messages(_post(http, live_server, member, "Rosa Martínez").content)
            third = messages(_post(http, live_server, member, "60601").content)
        stop.set()
        sent = [f.result() for f in storms]

    assert "End S-Comm Now" in first[0]
    assert second == ["Thanks, Rosa Martinez. Now reply with your 5-digit ZIP code."]
    assert "Chicago, IL" in third[0]
    # The member signed while the storm was still going: some storm senders had not used up their quota.
    assert min(sent) < MAX_PER_SENDER
    assert set(storm_codes) == {200}
    with rt.db.uow() as uow:
        sig = uow.session.scalars(select(Signature).where(Signature.name == "Rosa Martínez")).one()
        assert sig.zip_code == "60601"
        # Every storm sender has one member row and a conversation awaiting a name; nothing else.
        assert uow.session.scalar(select(func.count()).select_from(Signature)) == 1
        assert uow.session.scalar(select(func.count()).select_from(ConsentEvent)) == 13


def test_a_script_sending_from_one_number_in_parallel_is_capped(live_server, rt):
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda i: _post(requests, live_server, FLOODER, "HELP"), range(LIMIT + 30)))
    assert {r.status_code for r in responses} == {200}
    answered = [r for r in responses if messages(r.content)]
    assert len(answered) == LIMIT
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(ProcessedMessage)) == LIMIT
        assert uow.session.scalar(select(InboundCounter.count)) == LIMIT + 30


def test_a_huge_chunked_body_is_refused_by_a_live_server(live_server, rt):
    # No Content-Length to check up front: the limit applies while the body streams in.
    def body():
        yield b"From=%2B13125550101&MessageSid=SM" + b"a" * 32 + b"&Body="
        for _ in range(64):
            yield b"x" * 8192

    response = requests.post(live_server + SMS_PATH, data=body(), timeout=30,
                             headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"})
    assert response.status_code == 413
    assert {k: v for k, v in table_counts(rt).items() if v} == {}


def test_a_small_chunked_request_is_still_an_ordinary_message(live_server, rt):
    params = sms_params("+13125550155", "SCOMM")
    data = urlencode(params).encode()
    response = requests.post(live_server + SMS_PATH, data=iter([data[:50], data[50:]]), timeout=30,
                             headers={"Content-Type": "application/x-www-form-urlencoded",
                                      "X-Twilio-Signature": sign(params)})
    assert response.status_code == 200 and "End S-Comm Now" in messages(response.content)[0]
