"""Racing requests against a real threaded HTTP server: one member's answers are serialised."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select

from storage.models import Member, ProcessedMessage, Signature
from tests.support.live import LiveServer
from tests.support.twilio_client import SMS_PATH, TOKEN, messages, new_sid, sms_params
from twilio.request_validator import RequestValidator

PHONE = "+17735550123"


@pytest.fixture
def live(app, rt):
    with LiveServer(app) as server, httpx.Client(timeout=30) as http:
        server.http = http
        # Sign for the URL the server really has: no FIRMA_PUBLIC_URL in front of it here.
        from dataclasses import replace

        rt.settings = replace(rt.settings, public_url=server.url)
        yield server


def post(server, sender, body, sid=None):
    params = sms_params(sender, body, sid)
    signature = RequestValidator(TOKEN).compute_signature(server.url + SMS_PATH, params)
    r = server.http.post(server.url + SMS_PATH, content=urlencode(params),
                   headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})
    return r.status_code, messages(r.content) if r.status_code == 200 else r.text


def scalar(rt, stmt):
    with rt.db.uow() as uow:
        return uow.session.scalar(stmt)


def test_many_zip_answers_at_once_record_one_signature(live, rt):
    assert post(live, PHONE, "SCOMM")[0] == 200
    assert post(live, PHONE, "Ana López")[0] == 200
    zips = ["60601", "10001", "94110", "78520", "33101", "02134", "98101", "80202"] * 3
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda z: post(live, PHONE, z), zips))
    assert all(status == 200 for status, _ in results), results
    signed = [m for _, ms in results for m in ms if m.startswith("Done!")]
    assert len(signed) == 1, results
    assert scalar(rt, select(func.count()).select_from(Signature)) == 1
    with rt.db.uow() as uow:
        from storage import repository

        assert repository.signature_count(uow.session, "end-scomm") == 1


def test_first_messages_at_once_make_one_member(live, rt):
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: post(live, PHONE, "SCOMM"), range(10)))
    assert all(status == 200 for status, _ in results), results
    assert scalar(rt, select(func.count()).select_from(Member)) == 1
    # Exactly one of them carried the first-contact disclosure.
    disclosures = [m for _, ms in results for m in ms if "Msg & data rates may apply" in m]
    assert len(disclosures) == 1


def test_retries_of_one_message_sid_at_once_are_handled_once(live, rt):
    post(live, PHONE, "SCOMM")
    post(live, PHONE, "Ana López")
    sid = new_sid()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: post(live, PHONE, "60601", sid), range(8)))
    assert all(status == 200 for status, _ in results), results
    assert len({tuple(ms) for _, ms in results}) == 1  # every retry got the same answer
    assert scalar(rt, select(func.count()).select_from(Signature)) == 1
    assert scalar(rt, select(func.count()).select_from(ProcessedMessage)) == 3
