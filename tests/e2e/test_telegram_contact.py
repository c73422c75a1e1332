"""Contact sharing: a Telegram chat linked to the SMS member with the same number is one person, for
the counter, the public API and the export."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from bots.exports import export_lines
from storage import repository as repo
from storage.models import Member, Signature
from tests.support import telegram_updates as tu
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures
from tests.support.twilio_client import messages, post_sms

ANA_TG = 424_242
PHONE = "+13125550101"
OTHER_PHONE = "+17735550123"


def sms_sign(client, phone=PHONE, name="Ana López", zip_code="60601"):
    return [messages(post_sms(client, phone, t)) for t in ("SCOMM", name, zip_code)]


def tg_say(client, user_id, text):
    r = tu.post_update(client, tu.text_update(user_id, text))
    assert r.status_code == 200
    return r


def tg_sign(client, user_id=ANA_TG, name="Ana María López", zip_code="60601"):
    for text in ("/start end-scomm", name, zip_code):
        last = tg_say(client, user_id, text)
    return last.get_json()


def share(client, user_id, phone, contact_user_id=None):
    r = tu.post_update(client, tu.contact_update(user_id, phone, contact_user_id))
    assert r.status_code == 200
    return r.get_json()


def counter(client):
    return client.get("/api/campaigns/end-scomm").get_json()["signatures"]


def export_rows(rt, include_contact=True):
    return list(csv.DictReader(io.StringIO("".join(export_lines(rt, "end-scomm", include_contact)))))


def recount(rt):
    with rt.db.uow() as uow:
        n = repo.recount(uow.session, "end-scomm")
        uow.rollback()
    return n


def test_sharing_merges_an_sms_signer_and_counts_one_person(client, rt, clock):
    sms_sign(client)
    clock.advance(minutes=5)
    done = tg_sign(client)
    assert done["reply_markup"]["keyboard"][0][0]["request_contact"] is True
    assert counter(client) == 2  # two chats, nobody knows yet that they are one person
    reply = share(client, ANA_TG, PHONE[1:])  # Telegram sends the number without '+'
    assert reply["text"].startswith("Thank you! We saved your number")
    assert reply["reply_markup"] == {"remove_keyboard": True}
    assert counter(client) == 1
    assert recount(rt) == 1  # the stored counter is exact, not merely lowered
    rows = export_rows(rt)
    assert len(rows) == 1
    assert (rows[0]["channel"], rows[0]["name"], rows[0]["contact"]) == ("sms", "Ana López", PHONE)  # the first
    # sharing again changes nothing
    share(client, ANA_TG, PHONE)
    assert counter(client) == 1 and len(export_rows(rt)) == 1


def test_linked_first_then_texting_the_keyword_says_already_signed(client, rt):
    tg_sign(client)
    share(client, ANA_TG, "+1 (312) 555-0101")
    assert counter(client) == 1
    first = messages(post_sms(client, PHONE, "SCOMM"))
    assert first and "already signed" in first[0]
    assert counter(client) == 1
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Signature)) == 1
    assert len(export_rows(rt)) == 1


def test_sms_signer_links_before_telegram_signature(client, rt):
    sms_sign(client)
    tg_say(client, ANA_TG, "/help")
    share(client, ANA_TG, PHONE)
    body = tg_say(client, ANA_TG, "/start end-scomm").get_json()
    assert "already signed" in body["text"]
    assert counter(client) == 1


def test_moving_to_another_number_keeps_the_count_exact(client, rt):
    sms_sign(client)
    sms_sign(client, phone=OTHER_PHONE, name="Luis Pérez")
    tg_sign(client)
    assert counter(client) == 3
    share(client, ANA_TG, PHONE)
    assert counter(client) == 2
    share(client, ANA_TG, OTHER_PHONE)  # Ana's chat now belongs with the other number: still two people
    assert counter(client) == 2 == recount(rt)
    assert len(export_rows(rt)) == 2


def test_someone_elses_contact_is_not_linked(client, rt):
    sms_sign(client)
    tg_sign(client)
    reply = share(client, ANA_TG, PHONE, contact_user_id=999)
    assert reply["text"].startswith("Please share your own number")
    assert counter(client) == 2
    reply = share(client, ANA_TG, "12345")
    assert reply["text"].startswith("We could not read that phone number")
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Member.person_id).where(Member.channel == "telegram")).one() is None


def test_redelivered_contact_has_no_second_effect(client, rt):
    sms_sign(client)
    tg_sign(client)
    update = tu.contact_update(ANA_TG, PHONE[1:])
    first = tu.post_update(client, update).get_json()
    again = tu.post_update(client, update).get_json()
    assert again["text"] == first["text"]
    assert counter(client) == 1 == recount(rt)


def test_a_shared_number_without_an_sms_member_waits_for_them(client, rt):
    tg_sign(client)
    share(client, ANA_TG, PHONE)
    assert counter(client) == 1
    with rt.db.uow() as uow:
        sms_member = repo.find_member(uow.session, "sms", PHONE)
        assert sms_member is not None and sms_member.disclosed_at is None  # a row, nothing sent to it


def test_a_shared_number_met_first_on_whatsapp_joins_that_person(client, rt, clock):
    from tests.support.twilio_client import post_whatsapp

    for text in ("SCOMM", "Ana López", "60601"):
        assert post_whatsapp(client, PHONE, text).status_code == 200
    tg_sign(client)
    assert counter(client) == 2  # two people until the number is shared
    share(client, ANA_TG, PHONE, ANA_TG)
    assert counter(client) == 1 and recount(rt) == 1
    with rt.db.uow() as uow:
        rows = {m.channel: m for m in uow.session.scalars(select(Member))}
        assert "sms" not in rows  # no SMS member made up for a number that never texted
        assert rows["telegram"].person_id == rows["whatsapp"].id


def test_forgetting_a_whatsapp_number_forgets_the_telegram_chat_that_shared_it(client, rt):
    """`firma member forget NUMBER`: the person is the WhatsApp member and the Telegram chat linked
    to it; both lose their data and their words in the inbox."""
    from storage.models import InboxMessage, InboxThread
    from tests.e2e.test_inbox_capture import cli
    from tests.support.twilio_client import post_whatsapp

    for text in ("SCOMM", "Ana López", "60601", "¿Dónde firmo en papel?"):
        assert post_whatsapp(client, PHONE, text).status_code == 200
    tg_sign(client)
    share(client, ANA_TG, PHONE, ANA_TG)
    tg_say(client, ANA_TG, "My cousin wants to sign too")
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(InboxThread)) == 2
    result = cli(rt, "member", "forget", PHONE, "--yes")
    assert result.exit_code == 0 and "with 1 contact(s) linked to the same person" in result.output, result.output
    with rt.db.uow() as uow:
        s = uow.session
        assert s.scalar(select(func.count()).select_from(InboxMessage)) == 0
        assert s.scalar(select(func.count()).select_from(InboxThread)) == 0
        assert all(m.address.startswith("forgotten:") for m in s.scalars(select(Member)))
        assert s.scalar(select(func.count()).select_from(Signature).where(Signature.name != "")) == 0


def test_a_number_shared_while_its_first_whatsapp_message_is_handled_joins_that_person(client, rt):
    """The chat shares the number while that number's first WhatsApp message is still in its
    transaction: the share waits for it, then the SMS row it makes joins the WhatsApp member's person
    (it used to miss the uncommitted row: two people)."""
    import threading
    import time

    from storage import inbound as hot

    tg_sign(client)
    shared = {}
    with hot.Transaction(rt.db.engine) as whatsapp:
        first = hot.create_member(whatsapp, "whatsapp", PHONE, rt.now(), False, None, link=True)
        thread = threading.Thread(target=lambda: shared.update(answer=share(client, ANA_TG, PHONE, ANA_TG)))
        thread.start()
        time.sleep(0.5)
        waited = thread.is_alive()
        whatsapp.commit()
    thread.join(10)
    assert waited and shared["answer"]
    with rt.db.uow() as uow:
        people = {m.channel: repo.person_of(m) for m in uow.session.scalars(select(Member))}
    # one person (on PostgreSQL by way of an SMS row made for the shared number, which waited for the
    # WhatsApp member and joined it; on SQLite the share began after the WhatsApp message committed)
    assert {"whatsapp", "telegram"} <= set(people) and set(people.values()) == {first.id}, people
