"""Many threads of one process signing at once (gunicorn's gthread workers): every conversation is
answered and counted exactly once. On SQLite the threads queue on the process's write lock
(storage.db._QueuedWriterConnection) instead of polling in BEGIN IMMEDIATE; a lock that leaked would
stall every later message here."""

from __future__ import annotations

import threading

from bots import queries
from tests.support.twilio_client import messages, post_sms

THREADS, CONVERSATIONS = 8, 6


def test_threads_signing_at_once_are_all_answered_and_counted(app, rt):
    failures: list[str] = []

    def phone_owner(t: int) -> None:
        client = app.test_client()
        for c in range(CONVERSATIONS):
            phone = f"+1312555{t:02d}{c:02d}"
            for body, expected in (("SCOMM", "End S-Comm Now"), ("Ana López", "Ana Lopez"), ("60601", "Chicago, IL")):
                response = post_sms(client, phone, body)
                if response.status_code != 200 or expected not in messages(response)[0]:
                    failures.append(f"{phone} {body}: {response.status_code} {response.data[:200]!r}")
                    return

    threads = [threading.Thread(target=phone_owner, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer is stuck"
    assert failures == []
    assert queries.campaign_summary(rt, "end-scomm")["signatures"] == THREADS * CONVERSATIONS
