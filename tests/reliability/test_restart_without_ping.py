"""The pool no longer pings each connection before use (issue 6: a round trip per request). A database
restart must still not lose an SMS: the webhook's first statement on a dead pooled connection fails,
and the message is handled once more on a new connection, within the same request."""

from __future__ import annotations

from tests.reliability.test_faults import PHONE, pg_through_proxy, settings, state_of  # noqa: F401 (fixtures)
from tests.support.twilio_client import messages, new_sid, post_sms


def test_a_database_restart_between_messages_loses_no_message(pg_through_proxy):  # noqa: F811
    direct, proxy, rt, client = pg_through_proxy
    assert "End S-Comm Now" in messages(post_sms(client, PHONE, "SCOMM"))[0]
    proxy.stop()   # the server restarts: every pooled connection is dead
    proxy.start()
    assert messages(post_sms(client, PHONE, "Ana López")) == \
        ["Thanks, Ana Lopez. Now reply with your 5-digit ZIP code."]
    assert state_of(direct) == ("awaiting_zip", 2, 0)


def test_a_retry_after_a_lost_commit_answer_changes_nothing(pg_through_proxy, monkeypatch):  # noqa: F811
    """The connection dies while COMMIT's answer is on its way: the message was recorded, the second
    attempt finds its id claimed and answers what the first one did."""
    from storage.uow import UnitOfWork

    direct, proxy, rt, client = pg_through_proxy
    for body in ("SCOMM", "Ana López"):
        assert messages(post_sms(client, PHONE, body))
    real_commit = UnitOfWork.commit
    calls = []

    def commit_then_lose_the_connection(self):
        real_commit(self)
        if not calls:
            calls.append(1)
            proxy.stop()
            proxy.start()
            self.session.connection().exec_driver_sql("SELECT 1")  # fails: the answer never arrives

    monkeypatch.setattr(UnitOfWork, "commit", commit_then_lose_the_connection)
    sid = new_sid()
    reply = messages(post_sms(client, PHONE, "60601", sid=sid))
    assert "Chicago, IL" in reply[0]
    assert state_of(direct) == ("idle", 3, 1), "signed once"
