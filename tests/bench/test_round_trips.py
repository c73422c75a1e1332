"""Round trips per inbound SMS: every wait on the database costs the webhook, so the hot path
has a budget. Counted for whole conversations (a first one, and a second from another phone that
texts the keyword again after signing); a change that adds a round trip to a message fails here.

What is counted is what the driver really does, below SQLAlchemy (the hot path runs on the driver's
connection): on PostgreSQL the round trips, at a TCP proxy between the app and the server (psycopg's
pipeline sends several statements, its BEGIN and the COMMIT in one); on SQLite, which runs in the
process and has no round trips, the statements SQLite executes (BEGIN IMMEDIATE and COMMIT included).
"""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url

from bots.runtime import Runtime
from storage.uow import Database
from tests.support.tcp_proxy import TcpProxy
from tests.support.twilio_client import messages, post_sms
from webhooks import create_app

# Before the driver-level hot path (statements, SQLite): 11, 10, 13, 9; PostgreSQL a statement fewer each, plus psycopg's
# BEGIN. After its third round, on PostgreSQL 7, 5, 6, 5 round trips (BEGIN included). Now two: BEGIN
# with the admission and the read, then the writes with COMMIT; one more when the message signs, and one
# more for a first message, which inserts the member.
BUDGET = {
    "sqlite": {"first keyword": 10, "name": 8, "zip": 10, "second keyword": 8, "words for staff": 11},
    "postgresql": {"first keyword": 3, "name": 2, "zip": 3, "second keyword": 2, "words for staff": 2},
}


@pytest.fixture
def counted(db_kind, settings, catalog, clock):
    """(client, take): the web app as gunicorn builds it, and take() -> what was counted since last."""
    if db_kind == "postgresql":
        url = make_url(settings.database_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
        via = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        rt = Runtime.build(settings.with_(database_url=via), db=Database.for_requests(via), catalog=catalog)
        seen = [0]

        def take() -> int:
            now = proxy.round_trips
            taken, seen[0] = now - seen[0], now
            return taken
    else:
        rt = Runtime.build(settings, db=Database.for_requests(settings.database_url), catalog=catalog)
        statements: list[str] = []

        @event.listens_for(rt.db.engine, "checkout")
        def trace(dbapi_connection, _record, _proxy):
            dbapi_connection.set_trace_callback(statements.append)

        def take() -> int:
            taken = len(statements)
            statements.clear()
            return taken
    rt.clock = clock
    client = create_app({"TESTING": True}, rt).test_client()
    assert messages(post_sms(client, "+13125550100", "SCOMM"))  # the pool connects (not counted)
    take()
    yield client, take
    rt.db.dispose()
    if db_kind == "postgresql":
        proxy.stop()


@pytest.mark.slow
def test_round_trips_per_message(counted, db_kind, capsys):
    client, take = counted
    counts = {}
    phone = "+13125550123"
    for label, body in (("first keyword", "SCOMM"), ("name", "Ana López"), ("zip", "60601")):
        assert messages(post_sms(client, phone, body))
        counts[label] = take()
    phone = "+13125550124"
    for body in ("SCOMM", "Ana López"):
        assert messages(post_sms(client, phone, body))
    assert "Chicago, IL" in messages(post_sms(client, phone, "60601"))[0]
    take()
    assert "already signed" in messages(post_sms(client, phone, "SCOMM"))[0]
    counts["second keyword"] = take()
    # words for the inbox are kept in the same pipeline as the rest of the message's writes
    assert "Someone from our team will read your message" in messages(post_sms(client, phone, "When is the march?"))[0]
    counts["words for staff"] = take()
    with capsys.disabled():
        print(f"\n{db_kind}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    assert all(counts.values()), counts  # the counter sees the work (a count of 0 would pass any budget)
    for label, count in counts.items():
        assert count <= BUDGET[db_kind][label], (label, count, BUDGET[db_kind][label])
