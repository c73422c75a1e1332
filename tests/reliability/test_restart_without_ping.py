"""The web app's pool no longer pings each connection before use (a round trip per request;
Database.for_requests, as `gunicorn 'webhooks:create_app()'` builds it). A database restart must still
not lose an SMS: the webhook's first statement on a dead pooled connection fails, and the message is
handled once more on a new connection, within the same request."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from bots.runtime import Runtime
from storage.uow import Database
from tests.reliability.test_faults import PHONE, settings, state_of  # noqa: F401 (fixture)
from tests.support.tcp_proxy import TcpProxy
from tests.support.twilio_client import messages, new_sid, post_sms
from webhooks import create_app


@pytest.fixture
def pg_through_proxy(postgres_database, settings, catalog, clock):  # noqa: F811
    """(direct engine, proxy, runtime, client): the web app's database, reached through the proxy."""
    from tests.conftest import _truncate_all

    _truncate_all(postgres_database)
    url = make_url(postgres_database)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    via = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    rt = Runtime.build(settings.with_(database_url=via), db=Database.for_requests(via), catalog=catalog)
    rt.clock = clock
    direct = create_engine(postgres_database)
    yield direct, proxy, rt, create_app({"TESTING": True}, rt).test_client()
    proxy.stop()
    rt.db.dispose()
    direct.dispose()


def test_the_web_app_does_not_ping_each_connection_but_commands_do(monkeypatch):
    built = []

    def build(cls, settings=None, db=None, catalog=None):
        built.append(db)
        raise RuntimeError("built")  # the rest of create_app is not under test here

    monkeypatch.setattr(Runtime, "build", classmethod(build))
    monkeypatch.setenv("FIRMA_DATABASE_URL", "postgresql://firma@127.0.0.1:1/firma")  # never connected
    with pytest.raises(RuntimeError, match="built"):
        create_app()
    assert built[0].engine.pool._pre_ping is False
    assert Database("postgresql://firma@127.0.0.1:1/firma").engine.pool._pre_ping is True  # workers, commands


def test_a_database_restart_between_messages_loses_no_message(pg_through_proxy):
    direct, proxy, rt, client = pg_through_proxy
    assert "End S-Comm Now" in messages(post_sms(client, PHONE, "SCOMM"))[0]
    proxy.stop()   # the server restarts: every pooled connection is dead
    proxy.start()
    assert messages(post_sms(client, PHONE, "Ana López")) == \
        ["Thanks, Ana Lopez. Now reply with your 5-digit ZIP code."]
    assert state_of(direct) == ("awaiting_zip", 2, 0)


def test_a_retry_after_a_lost_commit_answer_changes_nothing(pg_through_proxy, monkeypatch):
    """The connection dies while COMMIT's answer is on its way: the message was recorded, the second
    attempt finds its id claimed and answers what the first one did."""
    from storage.uow import UnitOfWork

    direct, proxy, rt, client = pg_through_proxy
    for body in ("SCOMM", "Ana López"):
        assert messages(post_sms(client, PHONE, body))
    real_commit = UnitOfWork.commit
    calls = []

    def commit_then_lose_the_connection(self):
        real_commit(self)
        if not calls:
            calls.append(1)
            proxy.stop()
            proxy.start()
            self.session.connection().exec_driver_sql("SELECT 1")  # fails: the answer never arrives

    monkeypatch.setattr(UnitOfWork, "commit", commit_then_lose_the_connection)
    sid = new_sid()
    reply = messages(post_sms(client, PHONE, "60601", sid=sid))
    assert "Chicago, IL" in reply[0]
    assert state_of(direct) == ("idle", 3, 1), "signed once"
