"""Round trips per inbound SMS (issue 6): every statement is a wait on the database, so the hot path
has a budget. Counts the statements the driver executes (and the pool's pings) for whole
conversations, a first one and a second from the same phone; a change that adds a round trip to every
message fails here, with the statements listed."""

from __future__ import annotations

from sqlalchemy import event

from tests.support.twilio_client import messages, post_sms

# Statements per message, COMMIT included (and SQLite's BEGIN IMMEDIATE; psycopg sends its BEGIN itself,
# which the events do not see). On PostgreSQL each is a round trip; SQLite runs in the process, where a
# statement costs CPU only, so the hot path there keeps separate statements where PostgreSQL merges them
# (storage.inbound). Before issue 6: 11, 10, 13, 9 on SQLite; after its second round 11, 8, 11, 7 on
# SQLite and one fewer on PostgreSQL.
BUDGET = {
    "sqlite": {"first keyword": 10, "name": 8, "zip": 10, "second keyword": 8},
    "postgresql": {"first keyword": 6, "name": 4, "zip": 5, "second keyword": 4},
}


class Recorder:
    def __init__(self, engine):
        self.statements: list[str] = []
        self.pings = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)
        self._engine = engine

    def _statement(self, conn, cursor, statement, params, context, executemany):
        self.statements.append(statement.split("\n")[0][:90])

    def _commit(self, conn):
        self.statements.append("COMMIT")

    def take(self) -> list[str]:
        taken, self.statements = self.statements, []
        return taken


def test_round_trips_per_message(client, rt, capsys):
    recorder = Recorder(rt.db.engine)
    phone = "+13125550123"
    counts = {}
    for label, body in (("first keyword", "SCOMM"), ("name", "Ana López"), ("zip", "60601")):
        assert messages(post_sms(client, phone, body))
        counts[label] = recorder.take()
    phone = "+13125550124"
    for body in ("SCOMM", "Ana López"):
        assert messages(post_sms(client, phone, body))
    recorder.take()
    assert "Chicago, IL" in messages(post_sms(client, phone, "60601"))[0]
    recorder.take()
    assert messages(post_sms(client, phone, "SCOMM"))  # signed already: told so
    counts["second keyword"] = recorder.take()
    with capsys.disabled():
        print(f"\n{rt.db.dialect}: " + ", ".join(f"{k} {len(v)}" for k, v in counts.items()))
    for label, statements in counts.items():
        budget = BUDGET[rt.db.dialect][label]
        assert len(statements) <= budget, (label, "\n".join(statements))
