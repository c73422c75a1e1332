"""Faults: the database unreachable (refused, gone mid-life, hanging), a 503 quickly and nothing
half-written; when it is back, everything carries on."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from bots import broadcasts
from bots.worker import Options, run_worker
from bots.broadcasts import BroadcastRequest
from bots.runtime import Runtime, utcnow
from config.campaigns import load_catalog
from config.settings import Settings
from storage.models import Conversation, Member, ProcessedMessage, Signature
from storage.uow import Database
from tests.support import broadcasts as h
from tests.support import twilio_client
from tests.support.standins import TwilioStandIn
from tests.support.tcp_proxy import TcpProxy
from tests.support.twilio_client import messages, new_sid, post_sms
from webhooks import create_app

PHONE = "+13125550123"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once this socket is closed


@pytest.fixture
def settings():
    """Not the per-database fixture: these tests choose their database URL themselves."""
    return Settings(public_url=twilio_client.PUBLIC_URL, secret_key="test-secret", secret_key_generated=False,
                    twilio_account_sid="AC" + "0" * 32, twilio_auth_token=twilio_client.TOKEN)


def app_for(settings, catalog, clock, url):
    rt = Runtime.build(settings.with_(database_url=url), catalog=catalog)
    rt.clock = clock
    return rt, create_app({"TESTING": True}, rt)


def test_database_refusing_connections_gives_503(settings, catalog, clock):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/firma"
    rt, app = app_for(settings, catalog, clock, url)
    client = app.test_client()
    try:
        response = post_sms(client, PHONE, "SCOMM")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert b"database" in response.data
        health = client.get("/healthz")
        assert health.status_code == 503 and health.get_json() == {"status": "database unavailable"}
        assert client.get("/api/campaigns/end-scomm").status_code == 503
    finally:
        rt.db.dispose()


def _started_on_the_file(rt, caplog) -> bool:
    """Whether ``rt`` runs on the campaign file, not knowing the database's version, and said why."""
    said = [r.getMessage() for r in caplog.records if r.name == "firma.catalog"]
    return (rt.catalog == load_catalog() and rt.live.version is None and len(said) == 1
            and said[0].startswith("cannot read the campaigns from the database (")
            and "starting with the campaign file" in said[0])


@pytest.mark.parametrize("what", ["refused", "not migrated"])
def test_a_process_starts_on_the_campaign_file_when_the_database_cannot_be_read(settings, tmp_path, caplog, what):
    """bots.catalog.load: nothing to read the campaigns from (the server down, the tables not made
    yet); the process starts anyway, its watcher loads the database's when it answers."""
    url = {"refused": f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/firma",
           "not migrated": f"sqlite:///{tmp_path}/empty.db"}[what]
    rt = Runtime.build(settings.with_(database_url=url))
    try:
        assert _started_on_the_file(rt, caplog)
    finally:
        rt.db.dispose()


def test_a_process_starts_on_the_campaign_file_when_no_connection_is_free(settings, db_url, caplog):
    """Every pooled connection busy past the pool's timeout: the same as a database that is down."""
    db = Database(db_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    busy = db.engine.connect()
    try:
        rt = Runtime.build(settings.with_(database_url=db_url), db=db)
        assert _started_on_the_file(rt, caplog)
        assert "(TimeoutError)" in caplog.text
    finally:
        busy.close()
        db.dispose()


@pytest.fixture
def pg_through_proxy(postgres_database, settings, catalog, clock):
    """(direct engine, proxy, runtime, client): the app reaches PostgreSQL only through the proxy."""
    from tests.conftest import _truncate_all

    _truncate_all(postgres_database)
    url = make_url(postgres_database)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    via = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    rt, app = app_for(settings, catalog, clock, via)
    direct = create_engine(postgres_database)
    yield direct, proxy, rt, app.test_client()
    proxy.stop()
    rt.db.dispose()
    direct.dispose()


def state_of(direct, phone=PHONE):
    with direct.connect() as conn:
        member = conn.execute(select(Member.id).where(Member.address == phone)).scalar()
        step = conn.execute(select(Conversation.step).where(Conversation.member_id == member)).scalar()
        processed = conn.execute(select(func.count()).select_from(ProcessedMessage)).scalar()
        signatures = conn.execute(select(func.count()).select_from(Signature)).scalar()
    return step, processed, signatures


def test_database_going_away_and_coming_back(pg_through_proxy):
    direct, proxy, rt, client = pg_through_proxy
    assert "End S-Comm Now" in messages(post_sms(client, PHONE, "SCOMM"))[0]
    assert client.get("/healthz").status_code == 200
    assert state_of(direct) == ("awaiting_name", 1, 0)

    proxy.stop()  # the server goes away: pooled connections die, new ones are refused
    sid = new_sid()
    assert post_sms(client, PHONE, "Ana López", sid=sid).status_code == 503
    assert client.get("/healthz").status_code == 503
    assert state_of(direct) == ("awaiting_name", 1, 0), "nothing half-written"

    proxy.start()  # it is back: the same message (Twilio's fallback or a retry) is handled as new
    assert messages(post_sms(client, PHONE, "Ana López", sid=sid)) == \
        ["Thanks, Ana Lopez. Now reply with your 5-digit ZIP code."]
    assert "Chicago, IL" in messages(post_sms(client, PHONE, "60601"))[0]
    assert client.get("/healthz").status_code == 200
    assert state_of(direct) == ("idle", 3, 1)


@pytest.mark.slow
def test_a_hanging_database_gives_503_after_the_connect_timeout(pg_through_proxy):
    direct, proxy, rt, client = pg_through_proxy
    assert messages(post_sms(client, PHONE, "SCOMM"))
    proxy.blackhole()  # connections are accepted and never answered
    rt.db.engine.dispose()  # no pooled connection to fall back on
    assert post_sms(client, PHONE, "Ana López").status_code == 503  # bounded by connect_timeout
    assert client.get("/healthz").status_code == 503
    proxy.stop()
    proxy.start()
    assert messages(post_sms(client, PHONE, "Ana López")) == ["Thanks, Ana Lopez. Now reply with your 5-digit ZIP code."]
    assert state_of(direct) == ("awaiting_zip", 2, 0)


def test_connection_lost_in_the_middle_of_a_message_leaves_nothing_half_written(pg_through_proxy, monkeypatch):
    from storage import inbound as hot

    direct, proxy, rt, client = pg_through_proxy
    for body in ("SCOMM", "Ana López"):
        assert messages(post_sms(client, PHONE, body))
    real = hot.add_signature

    def cut_then_sign(*args, **kwargs):
        proxy.stop()  # the message id is claimed and the member locked: now the server vanishes
        return real(*args, **kwargs)

    monkeypatch.setattr(hot, "add_signature", cut_then_sign)
    sid = new_sid()
    assert post_sms(client, PHONE, "60601", sid=sid).status_code == 503
    assert state_of(direct) == ("awaiting_zip", 2, 0), "the claim, the signature and the state all rolled back"

    monkeypatch.setattr(hot, "add_signature", real)
    proxy.start()
    reply = messages(post_sms(client, PHONE, "60601", sid=sid))  # the same message again: handled once, now
    assert "Chicago, IL" in reply[0]
    assert state_of(direct) == ("idle", 3, 1)
    assert messages(post_sms(client, PHONE, "60601", sid=sid)) == reply  # and a retry changes nothing
    assert state_of(direct) == ("idle", 3, 1)


@pytest.mark.slow
def test_a_broadcast_worker_rides_out_a_database_restart(pg_through_proxy, caplog):
    """The database goes away in the middle of a broadcast and comes back 2 s later: the worker keeps
    the outcomes of the calls it made meanwhile, claims again once it can, and every message goes out
    once and is recorded `sent` (none `unknown`, none lost, none twice)."""
    _, proxy, rt, _ = pg_through_proxy
    caplog.set_level(logging.WARNING, logger="firma.worker")
    with TwilioStandIn(latency=0.02) as twilio:
        rt.clock = utcnow
        rt.settings = h.settings_for(rt, twilio, sms_rate=150.0, twilio_messaging_service_sid="MG" + "1" * 32)
        h.add_signers_bulk(rt, 450)
        b = broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Update"))
        result: dict = {}

        def work():
            try:
                result["stats"] = run_worker(rt, Options(drain=True, poll=0.2))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                result["error"] = exc

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        deadline = time.monotonic() + 30
        while len(twilio.messages) < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        proxy.stop()  # the database goes away mid-broadcast
        down_at = len(twilio.messages)
        time.sleep(2.0)
        proxy.start()
        worker.join(timeout=90)
        assert not worker.is_alive(), "the worker did not finish"
        assert "error" not in result, repr(result.get("error"))
        assert 100 <= down_at < 450
        assert len(twilio.messages) == 450 and len({m["To"] for m in twilio.messages}) == 450
        assert h.status_of(rt, b.id) == {"sent": 450}
        assert result["stats"]["sent"] == 450
        assert "the database is unavailable" in caplog.text and "the database is back" in caplog.text


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="TCP_USER_TIMEOUT is Linux's")
def test_postgresql_connections_give_up_on_a_vanished_host_in_seconds_not_minutes(postgres_database):
    """What the kernel will do with each pooled connection's socket: data unacknowledged for 10 s ends it
    (a host gone without a reset; the kernel's own default is about 15 minutes), and idle ones are
    probed. An operator's own setting in the database URL wins."""
    from storage.db import make_engine

    own = make_url(postgres_database).update_query_dict({"tcp_user_timeout": "20000"})
    for url, expected in ((postgres_database, 10_000), (own.render_as_string(hide_password=False), 20_000)):
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                sock = socket.socket(fileno=os.dup(conn.connection.dbapi_connection.pgconn.socket))
                with sock:
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == expected
                    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        finally:
            engine.dispose()
