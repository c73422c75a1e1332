"""Migrations on a populated database: upgrade, downgrade, upgrade again, data intact where expected."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import inspect, select

from bots import service
from bots.engine import Inbound
from bots.runtime import Runtime
from storage import db as dbmod
from storage.models import ConsentEvent, Conversation, Member, Signature
from tests.support.postgres import fresh_database

DATA_TABLES = (Member, Conversation, Signature, ConsentEvent)


@pytest.fixture
def empty_db_url(db_kind, tmp_path):
    """A database with no tables at all (not the migrated template)."""
    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with fresh_database("firma_mig") as url:
        yield url


def converse(rt, phone, *texts):
    for body in texts:
        service.handle_inbound(rt.db.uow(), Inbound("sms", phone, body, provider_id=f"SM{uuid.uuid4().hex}"),
                               rt.engine, rt.now())


def snapshot(url) -> dict[str, list[tuple]]:
    engine = dbmod.make_engine(url)
    try:
        with engine.connect() as conn:
            return {m.__tablename__: sorted(tuple(r) for r in conn.execute(select(m.__table__)).all())
                    for m in DATA_TABLES}
    finally:
        engine.dispose()


def tables(url) -> set[str]:
    engine = dbmod.make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_upgrade_downgrade_upgrade_on_a_populated_database(empty_db_url, settings, catalog, clock):
    url = empty_db_url
    dbmod.upgrade(url)
    rt = Runtime.build(settings.with_(database_url=url), catalog=catalog)
    rt.clock = clock
    try:
        converse(rt, "+13125550001", "SCOMM", "Ana María López", "60601")
        converse(rt, "+13125550002", "FIRMA", "José Pérez")  # mid-conversation: the ZIP is still to come
        converse(rt, "+13125550003", "SCOMM", "STOP")
        rt.db.dispose()
        before = snapshot(url)
        assert len(before["signatures"]) == 1 and len(before["members"]) == 3
        assert "inbound_counters" in tables(url)

        dbmod.downgrade(url, "0004_staff")  # this area's migration (and any newer) goes; the rest stays as it was
        assert "inbound_counters" not in tables(url)
        assert snapshot(url) == before

        dbmod.upgrade(url)
        assert snapshot(url) == before
        converse(rt, "+13125550002", "60614")  # the conversation carries on where it was
        rt.db.dispose()
        after = snapshot(url)
        assert [s[4] for s in after["signatures"]] == ["Ana María López", "José Pérez"]
        assert len(after["members"]) == 3

        dbmod.downgrade(url, "base")
        assert tables(url) == set()
        dbmod.upgrade(url)
        assert tables(url) >= {"members", "signatures", "inbound_counters"}
        converse(rt, "+13125550004", "SCOMM", "Rosa Martínez", "60601")
        rt.db.dispose()
        assert len(snapshot(url)["signatures"]) == 1
    finally:
        rt.db.dispose()
