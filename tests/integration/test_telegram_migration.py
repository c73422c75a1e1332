"""Migration 0002_telegram goes up and down on SQLite and PostgreSQL without losing rows."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from storage import db as dbmod
from tests.support.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    with fresh_database("firma_mig") as url:
        yield url


@pytest.mark.slow
def test_upgrade_downgrade_upgrade_keeps_signatures(empty_url):
    dbmod.upgrade(empty_url, "0001")
    engine = dbmod.make_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO members (id, channel, address, language, simulated, created_at) "
                          "VALUES (1, 'sms', '+13125550101', 'en', false, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO signatures (id, member_id, campaign, channel, name, zip_code, city, state, "
                          "language, simulated, signed_at) VALUES (1, 1, 'end-scomm', 'sms', 'Ana', '60601', "
                          "'Chicago', 'IL', 'en', false, CURRENT_TIMESTAMP)"))
    dbmod.upgrade(empty_url, "0002_telegram")
    insp = inspect(engine)
    assert "person_id" in {c["name"] for c in insp.get_columns("members")}
    assert "telegram_group_notices" in insp.get_table_names()
    dbmod.downgrade(empty_url, "0001")
    insp = inspect(engine)
    assert "person_id" not in {c["name"] for c in insp.get_columns("members")}
    assert "telegram_group_notices" not in insp.get_table_names()
    dbmod.upgrade(empty_url, "0002_telegram")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM signatures")).scalar() == 1
    engine.dispose()
