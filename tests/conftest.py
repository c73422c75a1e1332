"""Fixtures shared by every tier.

Databases: tests that take ``db_url`` run once per database named in FIRMA_TEST_DATABASES
(default "sqlite,postgresql"). PostgreSQL gets a fresh database per test session on the server in
FIRMA_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/postgres), dropped at
the end; when the server is down those tests are skipped, unless FIRMA_REQUIRE_POSTGRES=1 (CI),
which makes them fail.

FIRMA_TEST_POOLER=1 (CI's third leg) puts a PgBouncer of the session's own, in transaction pooling
mode, between every PostgreSQL test and the server, and tells firma so (FIRMA_DATABASE_POOLER=transaction,
inherited by the gunicorn and CLI subprocesses the tests start); CI runs the tests marked ``pooler``
that way.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, settings as hypothesis_settings
from sqlalchemy import text

from bots.runtime import Runtime, zip_directory
from config.campaigns import load_catalog
from config.settings import Settings
from storage import db as dbmod
from storage.models import Base
from storage.uow import Database
from tests.support import twilio_client
from tests.support.postgres import fresh_database

# Property-based tests: modest example counts so the suite stays fast; HYPOTHESIS_PROFILE=thorough for more.
hypothesis_settings.register_profile("firma", max_examples=60, deadline=None,
                                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
hypothesis_settings.register_profile("thorough", max_examples=1000, deadline=None,
                                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "firma"))

POOLED = os.environ.get("FIRMA_TEST_POOLER") == "1"
if POOLED:
    os.environ["FIRMA_DATABASE_POOLER"] = "transaction"

DATABASES = [d.strip() for d in os.environ.get("FIRMA_TEST_DATABASES", "sqlite,postgresql").split(",") if d.strip()]


def pytest_collection_modifyitems(items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec and callspec.params.get("db_kind") == "postgresql":
            item.add_marker(pytest.mark.postgresql)


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture(scope="session")
def zips():
    return zip_directory()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "template.db"
    dbmod.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pgbouncer():
    """A PgBouncer in transaction pooling mode in front of the test server (tests/support/pgbouncer.py)."""
    from tests.support import pgbouncer as bouncer

    try:
        context = bouncer.running()
        running = context.__enter__()
    except bouncer.PgBouncerMissing as exc:
        (pytest.fail if bouncer.REQUIRE_POOLER else pytest.skip)(str(exc))
    yield running
    context.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres_database(request):
    """A fresh, migrated PostgreSQL database for this test session; dropped afterwards. With
    FIRMA_TEST_POOLER=1, the same database through the session's PgBouncer (migrated through it too)."""
    with fresh_database() as url:
        if POOLED:
            url = request.getfixturevalue("pgbouncer").url(url)
        dbmod.upgrade(url)
        yield url


def _truncate_all(url: str) -> None:
    engine = dbmod.make_engine(url)  # through a pooler, as firma's own engines are
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def empty_postgres(postgres_database):
    """Empties the session's PostgreSQL database between tests, ids starting again at 1. DELETE, child
    tables first, then setval: a test's few rows go in 40 ms, where TRUNCATE of every table took
    400 ms (it makes each table a new file). Through PgBouncer its engine prepares nothing, as
    firma's own engines (dbmod.make_engine reads FIRMA_DATABASE_POOLER)."""
    engine = dbmod.make_engine(postgres_database)
    with engine.begin() as conn:
        sequences = list(conn.scalars(text("SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) "
                                           "FROM pg_sequences")))
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]

    def empty() -> None:
        with engine.begin() as conn:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))
            for seq in sequences:
                conn.execute(text("SELECT setval(CAST(:seq AS regclass), 1, false)"), {"seq": seq})

    yield empty
    engine.dispose()  # before the database is dropped


@pytest.fixture(params=DATABASES)
def db_kind(request):
    return request.param


@pytest.fixture
def db_url(db_kind, request, tmp_path):
    """A clean, migrated database of each kind under test."""
    if db_kind == "sqlite":
        path = tmp_path / "firma.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    if db_kind == "postgresql":
        request.getfixturevalue("empty_postgres")()
        return request.getfixturevalue("postgres_database")
    raise ValueError(f"unknown database kind {db_kind!r} in FIRMA_TEST_DATABASES")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime | None = None):
        self.now = now or datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs):
        from datetime import timedelta

        self.now += timedelta(**kwargs)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settings(db_url):
    return Settings(
        database_url=db_url, public_url=twilio_client.PUBLIC_URL, secret_key="test-secret",
        secret_key_generated=False, twilio_account_sid="AC" + "0" * 32, twilio_auth_token=twilio_client.TOKEN,
        twilio_messaging_service_sid="MG" + "1" * 32,
    )


@pytest.fixture
def rt(settings, catalog, clock):
    runtime = Runtime.build(settings, catalog=catalog)
    runtime.clock = clock
    yield runtime
    runtime.db.dispose()


@pytest.fixture
def database(rt) -> Database:
    return rt.db


@pytest.fixture
def twilio():
    """The Twilio REST stand-in on 127.0.0.1 (point TWILIO_API_URL at ``twilio.url``)."""
    from tests.support.standins import TwilioStandIn

    with TwilioStandIn() as standin:
        yield standin


@pytest.fixture
def telegram():
    """The Telegram Bot API stand-in on 127.0.0.1 (point TELEGRAM_API_URL at ``telegram.url``)."""
    from tests.support.broadcasts import TG_TOKEN
    from tests.support.standins import TelegramStandIn

    with TelegramStandIn(token=TG_TOKEN) as standin:
        yield standin


@pytest.fixture
def app(rt):
    from webhooks import create_app

    return create_app({"TESTING": True, "SIMULATOR_OPEN": True}, rt)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
