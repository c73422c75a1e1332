"""Scale-out: two gunicorn processes, as on two hosts, against one PostgreSQL database.

A load balancer spreads each phone's messages over both: every conversation alternates between the
two processes message by message, and every ZIP is delivered twice (Twilio's retry after a lost
response), the second time to the other process. The counter and the rows must come out exact.
"""

from __future__ import annotations

import http.client
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, func, select

from bench import common
from storage.models import CampaignCount, ProcessedMessage, Signature

pytestmark = pytest.mark.pooler  # CI runs these through PgBouncer too (FIRMA_TEST_POOLER=1)

CONVERSATIONS = 60


def post(port: int, p: common.Prepared) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", p.path, body=p.body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": p.signature})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("db_kind", ["postgresql"], indirect=True)
def test_two_gunicorn_processes_one_postgresql_count_exact(db_url, tmp_path):
    env = common.app_env(db_url)
    conversations = common.conversation_requests(CONVERSATIONS, 13128000000)
    with common.gunicorn("webhooks:create_app()", env, workers=2, log_dir=tmp_path) as host_a, \
            common.gunicorn("webhooks:create_app()", env, workers=2, log_dir=tmp_path) as host_b:
        ports = (host_a.port, host_b.port)

        def converse(i: int) -> list[tuple[int, bytes]]:
            keyword, name, zip_code = conversations[i]
            out = [post(ports[i % 2], keyword), post(ports[(i + 1) % 2], name), post(ports[i % 2], zip_code)]
            out.append(post(ports[(i + 1) % 2], zip_code))  # the retry, to the other host
            return out

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(converse, range(CONVERSATIONS)))
        counter_a = common.get_json(f"{host_a.base}/api/campaigns/{common.CAMPAIGN}")["signatures"]
        counter_b = common.get_json(f"{host_b.base}/api/campaigns/{common.CAMPAIGN}")["signatures"]

    for first, second, third, retry in answers:
        assert [s for s, _ in (first, second, third, retry)] == [200, 200, 200, 200]
        assert b"has signed" in third[1]
        assert retry[1] == third[1]  # the retry gets the same answer and has no second effect
    assert counter_a == counter_b == CONVERSATIONS
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Signature)) == CONVERSATIONS
        assert conn.scalar(select(CampaignCount.signatures).where(CampaignCount.campaign == common.CAMPAIGN)) \
            == CONVERSATIONS
        assert conn.scalar(select(func.count()).select_from(ProcessedMessage)) == 3 * CONVERSATIONS
    engine.dispose()
