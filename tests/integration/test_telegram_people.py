"""One person, two chats: the SMS member and the Telegram chat linked to it answer their ZIP at the
same moment. One signature is recorded and the counter says one."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from bots import service
from bots.engine import Inbound
from storage import repository as repo
from storage.models import Signature

PHONE, TG = "+13125550101", "777001"


def send(rt, channel, address, text, **kw):
    return service.handle_inbound(rt.db.uow(), Inbound(channel=channel, address=address, text=text, **kw),
                                  rt.engine, rt.now())


def test_linked_chats_signing_at_once_count_once(rt):
    send(rt, "telegram", TG, "", command="help")
    outcome = service.handle_contact(rt.db.uow(), Inbound(channel="telegram", address=TG), PHONE, True,
                                     rt.engine, rt.now())
    assert outcome.messages[0].startswith("Thank you!")
    for _ in range(5):
        rt.db.dispose()
        send(rt, "sms", PHONE, "SCOMM")
        send(rt, "sms", PHONE, "Ana López")
        send(rt, "telegram", TG, "", command="start")
        send(rt, "telegram", TG, "Ana María López")
        barrier = threading.Barrier(2)
        results = []

        def answer(channel, address):
            barrier.wait()
            results.append(send(rt, channel, address, "60601"))

        threads = [threading.Thread(target=answer, args=a) for a in (("sms", PHONE), ("telegram", TG))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(bool(r.signed) for r in results) == [False, True]
        with rt.db.uow() as uow:
            assert uow.session.scalar(select(func.count()).select_from(Signature)) == 1
            assert repo.signature_count(uow.session, "end-scomm") == 1
            uow.session.execute(Signature.__table__.delete())
            uow.session.execute(repo.CampaignCount.__table__.delete())
            uow.commit()
