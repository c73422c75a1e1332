"""The inbound hot path runs on the driver's connection, and on PostgreSQL in the driver's autocommit
mode with its own BEGIN and COMMIT (storage.inbound.admit). The pooled connection it used must come
back to everyone else as an ordinary transactional one, after a message handled and after one that
failed half way: otherwise a later request's writes would each commit on their own, and a rollback
would undo nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bots.runtime import Runtime
from storage.models import Member, Signature
from storage.uow import Database
from tests.support.twilio_client import messages, post_sms
from webhooks import create_app


@pytest.fixture
def one_connection(settings, catalog, clock):
    """(runtime, client) over a pool of exactly one connection, so every request reuses it."""
    rt = Runtime.build(settings, db=Database(settings.database_url, pool_size=1, max_overflow=0), catalog=catalog)
    rt.clock = clock
    yield rt, create_app({"TESTING": True}, rt).test_client()
    rt.db.dispose()


def rollback_undoes_a_write(rt) -> bool:
    with rt.db.uow() as uow:
        uow.session.add(Member(channel="sms", address="+13125550999", language="en", created_at=rt.now()))
        uow.session.flush()
        uow.rollback()
    with rt.db.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(Member).where(
            Member.address == "+13125550999")) == 0


def test_after_a_message_the_pooled_connection_is_transactional_again(one_connection):
    rt, client = one_connection
    for body in ("SCOMM", "Ana López", "60601"):
        assert messages(post_sms(client, "+13125550101", body))
    with rt.db.engine.connect() as conn:
        if rt.db.dialect == "postgresql":
            assert conn.connection.dbapi_connection.autocommit is False
    assert rollback_undoes_a_write(rt)


def test_after_a_message_that_failed_half_way_nothing_is_kept_and_the_connection_is_transactional(
        one_connection, monkeypatch):
    from storage import inbound as hot

    rt, client = one_connection
    for body in ("SCOMM", "Ana López"):
        assert messages(post_sms(client, "+13125550101", body))

    def fail(*args, **kwargs):
        raise RuntimeError("the signature write failed")

    monkeypatch.setattr(hot, "add_signature", fail)
    with pytest.raises(RuntimeError):
        post_sms(client, "+13125550101", "60601")
    monkeypatch.undo()
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Signature)) == 0
    assert rollback_undoes_a_write(rt)
    assert "Chicago, IL" in messages(post_sms(client, "+13125550101", "60601"))[0]  # and it works next time
