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


def snapshot(url, like: dict | None = None) -> dict[str, list[tuple]]:
    """The data tables' rows, in the columns the database has now; with ``like`` (an earlier snapshot),
    in the columns that one had (a later migration's column is left out of the comparison)."""
    engine = dbmod.make_engine(url)
    try:
        with engine.connect() as conn:
            found = {}
            for m in DATA_TABLES:
                present = {c["name"] for c in inspect(conn).get_columns(m.__tablename__)}
                columns = [c for c in m.__table__.columns if c.name in present]
                found[m.__tablename__] = sorted(tuple(r) for r in conn.execute(select(*columns)).all())
                found[m.__tablename__ + ".columns"] = [c.name for c in columns]
            return found
    finally:
        engine.dispose()


def same_data(now: dict, before: dict) -> bool:
    """``now`` holds ``before``'s rows in the columns both have."""
    for table in DATA_TABLES:
        name = table.__tablename__
        cols_now, cols_before = now[name + ".columns"], before[name + ".columns"]
        keep = [i for i, c in enumerate(cols_before) if c in cols_now]
        pick_now = [cols_now.index(cols_before[i]) for i in keep]
        if sorted(tuple(r[i] for i in keep) for r in before[name]) != sorted(tuple(r[i] for i in pick_now) for r in now[name]):
            return False
    return True


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
        assert same_data(snapshot(url), before)

        dbmod.upgrade(url)
        assert same_data(snapshot(url), before)
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


def test_a_message_in_flight_during_the_upgrade_counts_as_with_the_provider(empty_db_url):
    """A worker of the earlier code may have sent the rows it holds `sending`: after the upgrade they
    count as handed to the provider, so a cancel leaves them to finish (and says so) instead of
    reporting them as not sent, and an opt-out waits for them; queued rows stay not handed over."""
    from sqlalchemy import text

    url = empty_db_url
    dbmod.upgrade(url, "0008_campaigns")
    engine = dbmod.make_engine(url)
    try:
        with engine.begin() as c:
            c.execute(text("INSERT INTO members (id, channel, address, language, simulated, created_at) VALUES "
                           "(1, 'sms', '+13125550001', 'en', false, '2026-12-01 10:00:00'), "
                           "(2, 'sms', '+13125550002', 'en', false, '2026-12-01 10:00:00')"))
            c.execute(text("INSERT INTO broadcasts (id, campaign, message_en, channel, created_by, created_at, "
                           "recipients, timezones) VALUES (1, 'end-scomm', 'Hi', 'all', 'cli', "
                           "'2026-12-01 10:00:00', 2, '')"))
            c.execute(text("INSERT INTO deliveries (broadcast_id, member_id, channel, address, language, name, "
                           "status, due_at, lease_until, attempts, updated_at) VALUES "
                           "(1, 1, 'sms', '+13125550001', 'en', 'Ana', 'sending', '2026-12-01 10:00:00', "
                           "'2026-12-01 10:05:00', 1, '2026-12-01 10:00:01'), "
                           "(1, 2, 'sms', '+13125550002', 'en', 'Bea', 'pending', '2026-12-01 10:00:00', NULL, 0, NULL)"))
        dbmod.upgrade(url)
        with engine.connect() as c:
            rows = dict(c.execute(text("SELECT member_id, handed_over_at IS NOT NULL FROM deliveries")).all())
        assert rows == {1: True, 2: False}
    finally:
        engine.dispose()
