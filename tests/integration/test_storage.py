"""Storage against SQLite and PostgreSQL alike: the same tests, parametrised by database URL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from storage import db as dbmod
from storage import inbound as hot
from storage import repository as repo
from storage.models import Member, Signature
from storage.uow import Database

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def database(db_url):
    d = Database(db_url)
    yield d
    d.dispose()


def make_member(database, address="+13125550101", simulated=False):
    with database.uow() as uow:
        found, _ = hot.lock_or_create(hot.Transaction.within(uow.session), "sms", address, NOW, simulated, None)
        member = repo.member(uow.session, found.id)
        uow.commit()
        return member


def test_member_get_or_create_is_idempotent(database):
    with database.uow() as uow:
        tx = hot.Transaction.within(uow.session)
        m1, created1 = hot.lock_or_create(tx, "sms", "+13125550101", NOW, False, None)
        m2, created2 = hot.lock_or_create(tx, "sms", "+13125550101", NOW, False, None)
        uow.commit()
    assert (created1, created2) == (True, False) and m1.id == m2.id


def test_same_address_on_two_channels_is_two_members(database):
    with database.uow() as uow:
        tx = hot.Transaction.within(uow.session)
        a, _ = hot.lock_or_create(tx, "sms", "12345", NOW, False, None)
        b, _ = hot.lock_or_create(tx, "telegram", "12345", NOW, False, None)
        uow.commit()
    assert a.id != b.id


def test_a_forgotten_contact_starts_opted_out(database):
    with database.uow() as uow:
        tx = hot.Transaction.within(uow.session)
        hot.lock_or_create(tx, "sms", "forgotten:abc", NOW, False, None)
        again, created = hot.lock_or_create(tx, "sms", "+13125550101", NOW, False, "forgotten:abc")
        other, _ = hot.lock_or_create(tx, "sms", "+13125550102", NOW, False, "forgotten:def")
        uow.commit()
    assert created and again.opted_out and not other.opted_out


def test_claim_message_once_and_replay_response(database):
    with database.uow() as uow:
        tx = hot.Transaction.within(uow.session)
        assert hot.claim(tx, "sms", "SM1", NOW)
        hot.store_response(tx, "sms", "SM1", '["hi"]')
        uow.commit()
    with database.uow() as uow:
        tx = hot.Transaction.within(uow.session)
        assert not hot.claim(tx, "sms", "SM1", NOW)
        assert hot.stored_response(tx, "sms", "SM1") == '["hi"]'
        assert hot.claim(tx, "telegram", "SM1", NOW)


def test_uncommitted_claim_leaves_nothing(database):
    with database.uow() as uow:
        tx = hot.Transaction.within(uow.session)
        hot.claim(tx, "sms", "SM2", NOW)
        hot.lock_or_create(tx, "sms", "+13125550109", NOW, False, None)
        # no commit: the unit of work rolls back
    with database.uow() as uow:
        assert hot.claim(hot.Transaction.within(uow.session), "sms", "SM2", NOW)
        assert repo.find_member(uow.session, "sms", "+13125550109") is None


def sign(tx: hot.Transaction, member: Member, **fields) -> bool:
    """The inbound hot path's signature write (storage.inbound), for a member made here."""
    state = hot.MemberState(id=member.id, simulated=member.simulated, person_id=member.person_id,
                            language=member.language)
    return hot.add_signature(tx, state, member.channel, **fields)


def test_one_signature_per_member_and_campaign_and_the_counter(database):
    member = make_member(database)
    sim = make_member(database, "sim:+1555", simulated=True)
    fields = dict(campaign="end-scomm", name="Ana", zip_code="60601", city="Chicago", state="IL",
                  timezone="America/Chicago", language="en", now=NOW)
    with database.uow().inbound() as tx:
        assert sign(tx, member, **fields) is True
        assert sign(tx, member, **fields) is False
        assert sign(tx, sim, **fields) is True
        tx.commit()
    with database.uow() as uow:
        assert repo.signature_count(uow.session, "end-scomm") == 1  # simulated is not counted
        assert repo.recount(uow.session, "end-scomm") == 1
        assert len(uow.session.scalars(select(Signature)).all()) == 2


def test_unique_constraint_is_the_last_line_of_defence(database):
    member = make_member(database)
    with database.uow() as uow:
        for _ in range(2):
            uow.session.add(Signature(member_id=member.id, campaign="end-scomm", channel="sms", name="Ana",
                                      zip_code="60601", city="Chicago", state="IL", language="en", signed_at=NOW))
        with pytest.raises(IntegrityError):
            uow.session.flush()


def test_times_come_back_aware_utc(database):
    member = make_member(database)
    with database.uow() as uow:
        m = uow.session.get(Member, member.id)
        assert m.created_at == NOW and m.created_at.tzinfo is not None
        m.opted_out_at = NOW.astimezone(timezone(timedelta(hours=-6)))
        uow.commit()
    with database.uow() as uow:
        assert uow.session.get(Member, member.id).opted_out_at == NOW


def test_export_streams_in_signing_order_and_leaves_simulated_out(database):
    rows = []
    for i in range(25):
        member = make_member(database, f"+1312555{i:04d}", simulated=(i % 5 == 0))
        with database.uow().inbound() as tx:
            sign(tx, member, campaign="end-scomm", name=f"N{i}", zip_code="60601", city="Chicago", state="IL",
                 timezone=None, language="en", now=NOW + timedelta(minutes=25 - i))
            tx.commit()
    with database.reader() as uow:
        rows = list(repo.stream_export(uow.session, "end-scomm", batch=3))
    assert len(rows) == 20
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert rows[0][3] == "N24"


def test_migrations_downgrade_to_base_and_up_again(db_url):
    dbmod.downgrade(db_url, "base")
    engine = dbmod.make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        dbmod.upgrade(db_url)
        assert {"members", "signatures", "consent_events", "processed_messages", "conversations",
                "campaign_counts"} <= set(inspect(engine).get_table_names())
        assert dbmod.current_revision(engine) == dbmod.head_revision(db_url)
    finally:
        engine.dispose()


def test_sqlite_pragmas(tmp_path):
    engine = dbmod.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == dbmod.SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()


def test_postgres_url_forms_use_psycopg():
    assert dbmod.normalize_url("postgres://u:p@h/db").startswith("postgresql+psycopg://u:p@h/db")
    assert dbmod.normalize_url("postgresql://h/db").startswith("postgresql+psycopg://")
    assert dbmod.normalize_url("sqlite:///firma.db") == "sqlite:///firma.db"


def test_export_batches_come_in_order_from_a_fetching_thread_that_stops_with_the_caller():
    """stream_export fetches the next batches in a thread (repo._prefetched) while the export formats
    the current one: every batch arrives once and in order, an error while fetching reaches the caller,
    and a caller that stops early (a staff download cancelled) leaves no thread fetching behind."""
    import threading

    assert list(repo._prefetched(iter([[1], [2, 3], [4]]))) == [[1], [2, 3], [4]]

    def failing():
        yield [1]
        raise RuntimeError("the database went away")

    got = []
    with pytest.raises(RuntimeError, match="went away"):
        for rows in repo._prefetched(failing()):
            got.append(rows)
    assert got == [[1]]

    fetched = []

    def endless():
        for i in range(1_000_000):
            fetched.append(i)
            yield [i]

    gen = repo._prefetched(endless(), ahead=2)
    assert next(gen) == [0]
    gen.close()
    assert not any(t.name == "export-fetch" for t in threading.enumerate())
    assert len(fetched) <= 4  # at most the batches queued ahead and one in the thread's hands


def test_the_member_read_brings_the_persons_latest_signature(database):
    """lock_state reads, under the member's lock, the latest signature of the person (their own chat or
    a linked one): what a second campaign offers to sign with."""
    sms, tg, other = (make_member(database, a) for a in ("+13125550101", "+13125550102", "+13125550103"))
    fields = dict(zip_code="60601", city="Chicago", state="IL", timezone="America/Chicago", language="en", now=NOW)
    with database.uow().inbound() as tx:
        assert hot.lock_state(tx, "sms", "+13125550101").last_signature is None
        sign(tx, sms, campaign="end-scomm", name="Ana López", **fields)
        sign(tx, sms, campaign="dream-act", name="Ana M. López", **dict(fields, zip_code="90210", city="Beverly Hills",
                                                                         state="CA", timezone="America/Los_Angeles"))
        tx.commit()
    with database.uow().inbound() as tx:
        last = hot.lock_state(tx, "sms", "+13125550101").last_signature
        assert last == ("dream-act", "Ana M. López", "90210", "Beverly Hills", "CA", "America/Los_Angeles")
        assert hot.lock_state(tx, "sms", "+13125550102").last_signature is None
    with database.uow() as uow:  # the second chat is linked to the first as one person
        uow.session.get(Member, tg.id).person_id = sms.id
        uow.commit()
    with database.uow().inbound() as tx:
        assert hot.lock_state(tx, "sms", "+13125550102").last_signature[1] == "Ana M. López"
        sign(tx, other, campaign="end-scomm", name="Someone Else", **fields)
        tx.commit()
    with database.uow() as uow:  # a linked chat's newer signature is the person's latest
        uow.session.add(Signature(member_id=tg.id, campaign="third", channel="telegram", name="Ana Lopez",
                                  zip_code="10001", city="New York", state="NY", language="en", signed_at=NOW))
        uow.commit()
    with database.uow().inbound() as tx:
        assert hot.lock_state(tx, "sms", "+13125550101").last_signature[2] == "10001"
        assert hot.lock_state(tx, "sms", "+13125550102").last_signature[2] == "10001"
        assert hot.lock_state(tx, "sms", "+13125550103").last_signature[1] == "Someone Else"


def test_first_messages_of_one_number_on_two_channels_at_once_make_one_person(database):
    """The same number's first messages on SMS and on WhatsApp at the same moment: the second waits
    until the first has committed, then sees that member and joins its person (one person, one
    signature), instead of each missing the other's uncommitted row."""
    import threading
    import time

    phone, result = "+13125550177", {}

    def second():
        with hot.Transaction(database.engine) as tx:
            result["whatsapp"] = hot.create_member(tx, "whatsapp", phone, NOW, False, None, link=True)
            tx.commit()

    with hot.Transaction(database.engine) as first:
        sms = hot.create_member(first, "sms", phone, NOW, False, None, link=True)
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        waited = thread.is_alive()
        first.commit()
    thread.join(10)
    assert waited, "the second first message did not wait for the first"
    assert sms.person_id is None and result["whatsapp"].person_id == sms.id
