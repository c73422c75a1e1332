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

CONVERSATIONS = 150
THREADS = 16


def server_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line or "Error:" in line]


@pytest.mark.slow
@pytest.mark.postgresql
@pytest.mark.pooler
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


@pytest.mark.parametrize("value, prepares", [("transaction", False), ("transaction-prepared", True), ("session", True),
                                             ("none", True), ("", True)])
@pytest.mark.parametrize("db_kind", ["postgresql"], indirect=True)
def test_only_a_transaction_pooler_turns_server_side_prepares_off(db_url, value, prepares, monkeypatch):
    from storage.uow import Database

    monkeypatch.setenv("FIRMA_DATABASE_POOLER", value)
    for database in (Database(db_url), Database.for_requests(db_url)):  # the commands' and the web app's
        try:
            with database.engine.connect() as conn:
                assert (conn.connection.dbapi_connection.prepare_threshold is not None) == prepares
        finally:
            database.dispose()


def test_a_pooler_setting_firma_cannot_use_is_one_clear_line(tmp_path):
    import subprocess
    import sys

    env = common.app_env(f"sqlite:///{tmp_path / 'firma.db'}", FIRMA_DATABASE_POOLER="statement")
    done = subprocess.run([sys.executable, "-m", "webhooks.cli", "campaigns"], env=env, cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert "FIRMA_DATABASE_POOLER must be one of none, session, transaction" in done.stderr
    assert "Traceback" not in done.stderr and "statement mode" in done.stderr
