"""A database that hangs rather than refusing: a frozen server, a pooler that stops answering, a
long lock taken by a migration. gunicorn serves firma through a TCP proxy to PostgreSQL, or through
PgBouncer, that the test freezes with SIGSTOP (connections stay open, the kernel keeps acknowledging,
nothing comes back).
Twilio gives up on a webhook after 15 s and a load balancer's health check after a few: the webhook
must answer 503 within a few seconds and /healthz within 2 s, and both recover once the database
answers again. Straight to PostgreSQL and as behind a transaction pooler (the timeouts per transaction).
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import threading
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from bench import common
from tests.e2e.test_scale_out import post
from tests.support import twilio_client
from tests.e2e.test_staff import fast_hashing, staff_user  # noqa: F401  (fixtures of the console test)
from tests.e2e.test_staff_broadcasts import signers, staff_client  # noqa: F401
from tests.support.tcp_proxy import ProxyProcess

_phones = itertools.count(13126000000)
WEBHOOK_LIMIT_S = 7  # a few seconds (the web path waits 5), well inside Twilio's 15
HEALTH_LIMIT_S = 2


def keyword(port: int, timeout: float) -> int:
    params = twilio_client.sms_params(f"+{next(_phones)}", "SCOMM")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", twilio_client.SMS_PATH, body=urlencode(params), headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": twilio_client.sign(params)})
        return conn.getresponse().status
    finally:
        conn.close()


def health(port: int, timeout: float) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    finally:
        conn.close()


def timed(call, expected: int) -> float:
    started = time.monotonic()
    assert call() == expected
    return time.monotonic() - started


def until_ok(port: int) -> None:
    deadline = time.monotonic() + 30
    while keyword(port, WEBHOOK_LIMIT_S) != 200:
        assert time.monotonic() < deadline, "firma did not recover after the database answered again"
        time.sleep(0.5)


@contextlib.contextmanager
def frozen_between(db_url: str, between: str):
    """A proxy (a TCP proxy process, or a PgBouncer in transaction mode) between firma and the
    database of ``db_url``, that the test can freeze: (the URL through it, the proxy)."""
    server = make_url(db_url)
    if between == "pgbouncer":
        from tests.support import pgbouncer

        try:
            context = pgbouncer.running()
            bouncer = context.__enter__()
        except pgbouncer.PgBouncerMissing as exc:
            (pytest.fail if pgbouncer.REQUIRE_POOLER else pytest.skip)(str(exc))
        try:
            yield bouncer.url(db_url), bouncer
        finally:
            context.__exit__(None, None, None)
        return
    with ProxyProcess(server.host, server.port or 5432) as proxy:
        yield server.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy


@pytest.mark.slow
@pytest.mark.parametrize("between, pooler", [("proxy", "none"), ("proxy", "transaction"), ("pgbouncer", "transaction")])
@pytest.mark.parametrize("db_kind", ["postgresql"], indirect=True)
def test_a_frozen_database_gives_503_within_seconds_and_firma_recovers(db_url, between, pooler, tmp_path):
    with frozen_between(db_url, between) as (url, proxy):
        env = common.app_env(url, FIRMA_DATABASE_POOLER=pooler)
        with common.gunicorn("webhooks:create_app()", env, workers=1, log_dir=tmp_path) as app:
            assert keyword(app.port, WEBHOOK_LIMIT_S) == 200
            proxy.freeze()
            took = []
            try:
                # a pooled connection, mid-conversation: its statement never gets an answer
                took.append(timed(lambda: keyword(app.port, WEBHOOK_LIMIT_S), 503))
                took.append(timed(lambda: health(app.port, HEALTH_LIMIT_S), 503))
                # a new connection: the server never finishes the handshake
                took.append(timed(lambda: keyword(app.port, WEBHOOK_LIMIT_S), 503))
                took.append(timed(lambda: health(app.port, HEALTH_LIMIT_S), 503))
            finally:
                proxy.thaw()
            print(f"{between}, pooler={pooler}, frozen: webhook 503 after {took[0]:.1f} s, /healthz {took[1]:.1f} s; "
                  f"then webhook {took[2]:.1f} s, /healthz {took[3]:.1f} s")
            until_ok(app.port)
            assert health(app.port, HEALTH_LIMIT_S) == 200
        assert "Traceback" not in app.log_path.read_text(errors="replace")


@pytest.mark.slow
@pytest.mark.parametrize("pooler", ["none", "transaction"])
@pytest.mark.parametrize("db_kind", ["postgresql"], indirect=True)
def test_a_long_lock_gives_503_within_seconds_not_a_hang(db_url, pooler, tmp_path):
    """A migration holding a table lock (ACCESS EXCLUSIVE on members) for longer than a webhook can
    wait: the webhook gives up on the lock and answers 503; once the lock is gone, it answers 200."""
    env = common.app_env(db_url, FIRMA_DATABASE_POOLER=pooler)
    with common.gunicorn("webhooks:create_app()", env, workers=1, log_dir=tmp_path) as app:
        assert keyword(app.port, WEBHOOK_LIMIT_S) == 200
        locked, release = threading.Event(), threading.Event()

        def migration():
            engine = create_engine(db_url)
            with engine.begin() as conn:
                conn.execute(text("LOCK TABLE members IN ACCESS EXCLUSIVE MODE"))
                locked.set()
                release.wait(60)
            engine.dispose()

        holder = threading.Thread(target=migration)
        holder.start()
        try:
            assert locked.wait(30)
            started = time.monotonic()
            assert keyword(app.port, WEBHOOK_LIMIT_S) == 503
            waited = time.monotonic() - started
        finally:
            release.set()
            holder.join()
        until_ok(app.port)
    print(f"pooler={pooler}: the webhook gave up on the lock after {waited:.1f} s")


@pytest.mark.parametrize("pooler", ["none", "transaction"])
@pytest.mark.parametrize("db_kind", ["postgresql"], indirect=True)
def test_the_web_path_cancels_a_slow_statement_unless_given_a_budget(db_url, pooler, monkeypatch):
    """The web app's database cancels a statement past its few seconds (a 503 for the caller); work a
    person started and waits for (the console's broadcast creation) asks for a budget of its own."""
    from sqlalchemy.exc import OperationalError

    from storage.db import REQUEST_STATEMENT_TIMEOUT_MS
    from storage.uow import Database

    monkeypatch.setenv("FIRMA_DATABASE_POOLER", pooler)
    database = Database.for_requests(db_url)
    slow = text(f"SELECT pg_sleep({REQUEST_STATEMENT_TIMEOUT_MS / 1000 + 0.5})")
    try:
        with pytest.raises(OperationalError, match="statement timeout"):
            with database.uow() as uow:
                uow.session.execute(slow)
        with database.budget(20):
            with database.uow() as uow:
                uow.session.execute(slow)
        with database.uow() as uow:  # the budget was for that block only
            with pytest.raises(OperationalError, match="statement timeout"):
                uow.session.execute(slow)
    finally:
        database.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("db_kind", ["postgresql"], indirect=True)
def test_the_consoles_broadcast_creation_has_its_own_budget(rt, db_url, request):
    """Writing a broadcast's deliveries may take longer than a webhook may wait (a million take
    seconds): here the broadcast's INSERT is made slower than the web path's statement timeout, and
    the console still creates the broadcast instead of answering 503."""
    from storage.db import REQUEST_STATEMENT_TIMEOUT_MS
    from storage.models import Broadcast
    from storage.uow import Database
    from tests.e2e.test_staff_broadcasts import form

    rt.db.dispose()
    rt.db = Database.for_requests(db_url)  # the web app's database, as gunicorn makes it
    request.getfixturevalue("signers")
    staff_client = request.getfixturevalue("staff_client")
    engine = create_engine(db_url)
    slower = REQUEST_STATEMENT_TIMEOUT_MS / 1000 + 1
    with engine.begin() as conn:
        conn.execute(text(f"CREATE FUNCTION slow_broadcast() RETURNS trigger LANGUAGE plpgsql AS "
                          f"$$ BEGIN PERFORM pg_sleep({slower}); RETURN NEW; END $$"))
        conn.execute(text("CREATE TRIGGER slow_broadcast BEFORE INSERT ON broadcasts "
                          "FOR EACH ROW EXECUTE FUNCTION slow_broadcast()"))
    try:
        r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4"))
        assert r.status_code == 303, r.get_data(as_text=True)[:500]
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER slow_broadcast ON broadcasts"))
            conn.execute(text("DROP FUNCTION slow_broadcast()"))
        engine.dispose()
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Broadcast)) == 1
