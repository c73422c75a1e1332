"""The inbound hot path (storage.inbound) below the service: what its connection is left as, and the
plans its statements get.

It runs on the driver's connection, and on PostgreSQL in the driver's autocommit mode with its own
BEGIN and COMMIT (storage.inbound.admit). The pooled connection it used must come back to everyone
else as an ordinary transactional one, after a message handled and after one that failed half way:
otherwise a later request's writes would each commit on their own, and a rollback would undo
nothing."""

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


@pytest.mark.slow
@pytest.mark.postgresql
def test_the_member_read_uses_indexes_even_as_planned_on_empty_tables():
    """psycopg prepares a statement after a few runs, and PostgreSQL then keeps one generic plan for it
    on that connection: for a new deployment, a plan made while the tables were empty. The member read
    of every message (storage.inbound's lock_state) must then still look its rows up by index: a plan
    that reads members or signatures whole makes every message slower as the campaign grows. (SQLite
    plans a statement when it prepares it, by its indexes.)"""
    import re

    from sqlalchemy import create_engine, text

    from storage import db as dbmod
    from storage import inbound as hot
    from tests.support.postgres import fresh_database

    with fresh_database("firma_plan") as url:
        dbmod.upgrade(url)  # empty tables, never analyzed
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                sql = hot._for(conn).lock_state.text
                names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
                positional = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", sql)
                conn.execute(text("SET plan_cache_mode = force_generic_plan"))
                conn.exec_driver_sql(f"PREPARE member_read AS {positional}")
                plan = "\n".join(r[0] for r in conn.exec_driver_sql(
                    "EXPLAIN EXECUTE member_read('sms', '+13125550101')"))
        finally:
            engine.dispose()
    assert "Seq Scan on members" not in plan and "Seq Scan on signatures" not in plan, plan


def test_the_web_apps_database_compiles_the_hot_path_at_start_up(settings, monkeypatch):
    """Database.for_requests (what `gunicorn 'webhooks:create_app()'` builds) compiles the inbound
    statements for its dialect before any message arrives, not in a process's first message."""
    from storage.inbound import sql

    monkeypatch.setattr(sql, "_compiled", {})
    db = Database.for_requests(settings.database_url)
    try:
        assert set(sql._compiled) == {db.dialect}
    finally:
        db.dispose()
