"""Behind PgBouncer in transaction pooling mode, as on Heroku, Supabase, DigitalOcean or a pooler of
one's own: `firma db upgrade` through it, then two gunicorn workers serving many whole SMS
conversations at once. Each transaction may land on another server connection, so nothing may be
kept per connection on the server (psycopg's server-side prepared statements were: 500s with
DuplicatePreparedStatement); FIRMA_DATABASE_POOLER=transaction is the operator's setting for it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, func, select

from bench import common
from storage.models import CampaignCount, Signature
from tests.e2e.test_scale_out import post
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.pooler  # CI runs these through PgBouncer too (FIRMA_TEST_POOLER=1)

CONVERSATIONS = 150
THREADS = 16


def server_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line or "Error:" in line]


@pytest.mark.slow
@pytest.mark.postgresql
def test_concurrent_conversations_through_pgbouncer_in_transaction_mode(pgbouncer, tmp_path):
    with fresh_database() as direct:
        url = pgbouncer.url(direct)
        env = common.app_env(url, FIRMA_DATABASE_POOLER="transaction")
        common.migrate(url, env)  # `firma db upgrade`, through the pooler
        conversations = common.conversation_requests(CONVERSATIONS, 13127000000)
        with common.gunicorn("webhooks:create_app()", env, workers=2, log_dir=tmp_path) as server:
            def converse(i: int) -> list[tuple[int, bytes]]:
                return [post(server.port, message) for message in conversations[i]]

            with ThreadPoolExecutor(THREADS) as pool:
                answers = list(pool.map(converse, range(CONVERSATIONS)))
            counter = common.get_json(f"{server.base}/api/campaigns/{common.CAMPAIGN}")["signatures"]
        log = server.log_path.read_text(errors="replace")

        statuses = [status for conversation in answers for status, _ in conversation]
        assert statuses.count(200) == 3 * CONVERSATIONS, {s: statuses.count(s) for s in set(statuses)}
        assert all(b"has signed" in conversation[2][1] for conversation in answers)
        assert server_errors(log) == [], log[-3000:]
        assert counter == CONVERSATIONS
        engine = create_engine(direct)
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Signature)) == CONVERSATIONS
            assert conn.scalar(select(CampaignCount.signatures)) == CONVERSATIONS
        engine.dispose()
