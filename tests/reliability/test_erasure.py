"""`firma member forget` leaves nothing that names the person in a logical dump of the database
(sqlite3 `.dump`, pg_dump): not the number in any spelling, not the name, not in deliveries, not in
the audit log's lookups."""

from __future__ import annotations

import re
import subprocess

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bots import broadcasts
from bots import staff_accounts as staff_svc
from bots.broadcasts import BroadcastRequest
from storage.models import AuditLog
from tests.support.staff import cheap_password_hashing
from tests.support.twilio_client import post_sms

PHONE = "+13125550102"
NAME = "Ana María López"
EMAIL = "organizer@example.org"
PASSWORD = "correct horse battery staple"
# Every way the number or the name can be written down.
NUMBER_FORMS = ("3125550102", "312) 555-0102", "312-555-0102", "312.555.0102", "312 555 0102", "555-0102",
                "5550102")
NAME_FORMS = ("Ana", "María", "Maria", "López", "Lopez", "L\\u00f3pez", "Mar\\u00eda", "L&oacute;pez")


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


def _csrf(client, path) -> str:
    html = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'name="csrf-token" content="([^"]+)"', html)
    return m.group(1)


def dump(db_url: str) -> str:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        out = subprocess.run(["sqlite3", url.database, ".dump"], capture_output=True, text=True, check=True)
    else:
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        out = subprocess.run(["pg_dump", "--no-owner", plain], capture_output=True, text=True, check=True)
    return out.stdout


def invoke(rt, *args):
    from webhooks.cli import Context, main

    ctx = Context()
    ctx._settings = rt.settings
    ctx._runtime = rt
    return CliRunner().invoke(main, list(args), obj=ctx, catch_exceptions=False)


def test_after_forget_a_dump_holds_neither_the_number_nor_the_name(client, rt, clock):
    for body in ("SCOMM", NAME, "60601"):
        assert post_sms(client, PHONE, body).status_code == 200
    broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Thanks {first_name}, we won!", None))
    staff_svc.add_staff(rt.db, EMAIL, PASSWORD, rt.now())
    client.post("/staff/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": _csrf(client, "/staff/login")})
    for typed in ("(312) 555-0102", PHONE, "312.555.0102"):
        r = client.post("/staff/members", data={"q": typed, "csrf_token": _csrf(client, "/staff/members")})
        assert r.status_code == 303
    before = dump(rt.settings.database_url)
    assert "3125550102" in before and "Ana" in before  # the dump does show them while they are kept

    result = invoke(rt, "member", "forget", "(312) 555-0102", "--yes")  # a national spelling: an SMS contact
    assert result.exit_code == 0, result.output

    after = dump(rt.settings.database_url)
    for form in NUMBER_FORMS + NAME_FORMS:
        assert form not in after, form
    # The audit log still says who looked a member up, and when.
    with rt.db.uow() as uow:
        lookups = [(a.staff_email, a.detail, a.at is not None)
                   for a in uow.session.scalars(select(AuditLog).where(AuditLog.action == "member_lookup"))]
    assert lookups == [(EMAIL, "1 found", True)] * 3


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)  # PostgreSQL's counterpart is VACUUM (SECURITY.md)
def test_after_forget_the_sqlite_files_hold_neither_the_number_nor_the_name(client, rt):
    """SQLite keeps deleted and overwritten rows in free space and in the write-ahead log until they
    are reused: forget overwrites them (secure_delete) and checkpoints the log."""
    for body in ("SCOMM", NAME, "60601"):
        assert post_sms(client, PHONE, body).status_code == 200
    broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Thanks {first_name}, we won!", None))
    assert invoke(rt, "member", "forget", PHONE, "--yes").exit_code == 0
    path = make_url(rt.settings.database_url).database
    raw = b""
    for suffix in ("", "-wal"):
        try:
            with open(path + suffix, "rb") as fh:
                raw += fh.read()
        except FileNotFoundError:
            pass
    for form in ("3125550102", "Ana Mar", "Ana Maria", "Lopez", "López"):
        assert form.encode() not in raw, form


@pytest.fixture
def empty_db_url(db_kind, tmp_path):
    from tests.support.postgres import fresh_database

    if db_kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with fresh_database("firma_mig") as url:
        yield url


def test_the_migration_scrubs_lookups_and_deliveries_written_before(empty_db_url):
    """Rows written before this release: lookups that kept what was typed, and deliveries of members
    forgotten then."""
    from sqlalchemy import text

    from storage import db as dbmod

    dbmod.upgrade(empty_db_url, "0008_campaigns")
    engine = dbmod.make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO audit_log (id, at, staff_email, action, target, detail, ip) VALUES "
                              "(1, '2026-11-01 00:00:00+00', 'a@b.org', 'member_lookup', NULL, "
                              "'(312) 555-0102 -> 1 found', '127.0.0.1'), "
                              "(2, '2026-11-01 00:00:00+00', 'a@b.org', 'export', 'end-scomm', 'with contact', NULL)"))
            conn.execute(text("INSERT INTO members (id, channel, address, language, simulated, created_at) VALUES "
                              "(7, 'sms', 'forgotten:abc', 'en', false, '2026-11-01 00:00:00+00')"))
            conn.execute(text("INSERT INTO broadcasts (id, campaign, message_en, channel, created_by, created_at, "
                              "recipients, timezones) VALUES (1, 'end-scomm', 'Hi', 'all', 'cli', "
                              "'2026-11-01 00:00:00+00', 1, '')"))
            conn.execute(text("INSERT INTO deliveries (id, broadcast_id, member_id, channel, address, language, name, "
                              "status, due_at, attempts) VALUES (1, 1, 7, 'sms', '+13125550102', 'en', 'Ana López', "
                              "'sent', '2026-11-01 00:00:00+00', 1)"))
        dbmod.upgrade(empty_db_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT detail FROM audit_log ORDER BY id")).scalars().all() == \
                ["1 found", "with contact"]
            assert conn.execute(text("SELECT address, name FROM deliveries")).one() == ("forgotten:abc", "")
    finally:
        engine.dispose()
