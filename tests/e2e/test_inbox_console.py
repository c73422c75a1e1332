"""The inbox in the staff console through Flask's test client, with members writing through signed
Twilio webhooks and Telegram updates, and staff replies reaching the Twilio and Telegram stand-ins
through the real client libraries: the list and its filters, the unread count, a thread in order
with who sent each message, a reply sent at once (quiet hours do not apply), refused for an opted-out
or unreachable member, done and reopen, saved replies, roles."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bots import staff_accounts as accounts
from config.settings import parse_quiet_hours
from storage.models import AuditLog, ConsentEvent, Member
from tests.e2e.test_staff import PASSWORD, csrf_token, fast_hashing, sign_in  # noqa: F401
from tests.support import broadcasts as h
from tests.support import telegram_updates as tu
from tests.support.standins import TELEGRAM_BLOCKED, TWILIO_UNSUBSCRIBED
from tests.support.twilio_client import messages, post_sms

ANA, JOSE, ROSA = "+13125550101", "+13125550102", "+13125550103"
LUPE = 777001
ADMIN, ORGANIZER, VIEWER = "admin@example.org", "organizer@example.org", "viewer@example.org"


@pytest.fixture
def world(rt, client, twilio, telegram):
    """Members who wrote in their own words on SMS and Telegram, and three staff logins."""
    rt.settings = h.settings_for(rt, twilio, telegram, telegram_webhook_secret=tu.SECRET,
                                 quiet_hours=parse_quiet_hours("00:00-23:59"))
    accounts.add_staff(rt.db, ADMIN, PASSWORD, rt.now())
    accounts.add_staff(rt.db, ORGANIZER, PASSWORD, rt.now())
    accounts.add_staff(rt.db, VIEWER, PASSWORD, rt.now(), role="viewer")
    for phone, keyword, name in ((ANA, "SCOMM", "Ana López"), (JOSE, "FIRMA", "José Pérez"),
                                 (ROSA, "SCOMM", "Rosa Díaz")):
        for body in (keyword, name, "60601"):
            post_sms(client, phone, body)
    post_sms(client, ANA, "How else can I help? I can volunteer on Saturdays")
    rt.clock.advance(minutes=1)
    post_sms(client, JOSE, "¿Hay una reunión esta semana?")
    rt.clock.advance(minutes=1)
    for text in ("/start end-scomm", "Lupe Ramírez", "60614", "Can I bring my kids to the vigil?"):
        assert tu.post_update(client, tu.text_update(LUPE, text)).status_code == 200
    rt.clock.advance(minutes=1)
    return rt


def member_id(rt, address):
    with rt.db.uow() as uow:
        return uow.session.scalars(select(Member.id).where(Member.address == address)).one()


def page(client, path, status=200):
    r = client.get(path)
    assert r.status_code == status, (path, r.status_code, r.get_data(as_text=True)[:500])
    return r.get_data(as_text=True)


def reply(client, mid, text):
    token = csrf_token(client, f"/staff/inbox/{mid}")
    return client.post(f"/staff/inbox/{mid}/reply", data={"csrf_token": token, "text": text})


def test_the_list_newest_first_with_filters_and_the_unread_count(client, world):
    assert sign_in(client, ORGANIZER).status_code == 303
    html = page(client, "/staff/inbox")
    order = [html.index(n) for n in ("Lupe Ramírez", "José Pérez", "Ana López")]
    assert order == sorted(order)  # newest first
    assert "Rosa" not in html  # she only signed: nothing for staff
    assert re.search(r'Inbox <span class="badge" aria-label="3 unread">3</span>', html)
    assert "How else can I help? I can volunteer on Saturdays" in html
    spanish = page(client, "/staff/inbox?language=es")
    assert "José Pérez" in spanish and "Ana López" not in spanish
    telegram = page(client, "/staff/inbox?channel=telegram")
    assert "Lupe Ramírez" in telegram and "José Pérez" not in telegram
    assert "Ana López" in page(client, "/staff/inbox?campaign=end-scomm")
    assert client.get("/staff/inbox?channel=fax").status_code == 400
    assert "No conversation marked done" in page(client, "/staff/inbox?status=done")


def test_a_reply_reaches_the_member_by_sms_at_once_and_the_thread_shows_who_sent_what(client, world, twilio):
    rt = world
    assert sign_in(client, ORGANIZER).status_code == 303
    ana = member_id(rt, ANA)
    thread = page(client, f"/staff/inbox/{ana}")
    assert "How else can I help?" in thread and "Bot (automatic)" in thread and "Someone from our team" in thread
    assert 'aria-label="2 unread"' in page(client, "/staff/inbox")  # reading it marked it read
    r = reply(client, ana, "Thank you Ana! Sí: Saturday 10am at the church. ¿Vienes?")
    assert r.status_code == 303
    again = reply(client, ana, "Thank you Ana! Sí: Saturday 10am at the church. ¿Vienes?")  # a double submit
    assert again.status_code == 422 and "a second click" in again.get_data(as_text=True)
    sent = [m for m in twilio.messages if m["To"] == ANA]
    # quiet hours (all day here) do not hold a reply: the member wrote first
    assert [m["Body"] for m in sent] == ["Thank you Ana! Si: Saturday 10am at the church. ¿Vienes?"]  # GSM-7
    thread = page(client, f"/staff/inbox/{ana}")
    thread = thread[thread.index('<ol class="thread"'):thread.index("</ol>")]
    assert thread.index("How else can I help?") < thread.index("Bot (automatic)") < thread.index(ORGANIZER) \
        < thread.index("Saturday 10am")
    with rt.db.uow() as uow:
        s = uow.session
        assert s.scalars(select(AuditLog.action).where(AuditLog.staff_email == ORGANIZER)).all()[-1] == "inbox_reply"
        event = s.scalars(select(ConsentEvent).where(ConsentEvent.member_id == ana, ConsentEvent.kind == "message")).one()
        assert event.text_sent == sent[0]["Body"]
    # the member answers: the conversation is unread again, and not acknowledged twice the same day
    assert messages(post_sms(client, ANA, "Great, see you there")) == []
    assert 'aria-label="3 unread"' in page(client, "/staff/inbox")


def test_a_reply_reaches_the_member_on_telegram(client, world, telegram):
    rt = world
    assert sign_in(client, ORGANIZER).status_code == 303
    lupe = member_id(rt, str(LUPE))
    before = len(telegram.sent)
    assert reply(client, lupe, "Yes, kids are welcome <3").status_code == 303
    (sent,) = telegram.sent[before:]
    assert str(sent["chat_id"]) == str(LUPE) and sent["text"] == "Yes, kids are welcome <3"


def test_an_opted_out_member_is_refused_with_the_reason(client, world, twilio):
    rt = world
    post_sms(client, JOSE, "PARAR")
    assert sign_in(client, ORGANIZER).status_code == 303
    jose = member_id(rt, JOSE)
    thread = page(client, f"/staff/inbox/{jose}")
    assert "opted out" in thread and 'name="text"' not in thread  # no reply box
    r = reply(client, jose, "Hola José")
    assert r.status_code == 409 and "opted out" in r.get_data(as_text=True)
    assert not [m for m in twilio.messages if m["To"] == JOSE and m["Body"] == "Hola Jose"]


def test_the_provider_s_verdicts_refuse_and_mark_the_member(client, world, twilio, telegram):
    rt = world
    assert sign_in(client, ORGANIZER).status_code == 303
    twilio.fail(ANA, TWILIO_UNSUBSCRIBED)
    r = reply(client, member_id(rt, ANA), "Hi Ana")
    assert r.status_code == 409 and "opted out" in r.get_data(as_text=True)
    telegram.fail(str(LUPE), TELEGRAM_BLOCKED)
    r = reply(client, member_id(rt, str(LUPE)), "Hi Lupe")
    assert r.status_code == 409 and "cannot be reached" in r.get_data(as_text=True)
    ana, lupe = member_id(rt, ANA), member_id(rt, str(LUPE))
    with rt.db.uow() as uow:
        s = uow.session
        assert s.get(Member, ana).opted_out_at is not None
        assert s.get(Member, lupe).unreachable_at is not None
    r = reply(client, member_id(rt, str(LUPE)), "Hi again")  # now refused before any call
    assert r.status_code == 409 and "unreachable" in r.get_data(as_text=True)


def test_an_empty_or_too_long_reply_is_refused_with_the_reason(client, world):
    assert sign_in(client, ORGANIZER).status_code == 303
    ana = member_id(world, ANA)
    assert reply(client, ana, "   ").status_code == 422
    r = reply(client, ana, "x" * 1001)
    assert r.status_code == 422 and "the most is 1000" in r.get_data(as_text=True)
    assert client.post("/staff/inbox/999999/reply", data={"csrf_token": csrf_token(client, "/staff/inbox"),
                                                          "text": "hi"}).status_code == 404


def test_done_and_reopen(client, world):
    rt = world
    assert sign_in(client, ORGANIZER).status_code == 303
    ana = member_id(rt, ANA)
    token = csrf_token(client, f"/staff/inbox/{ana}")
    assert client.post(f"/staff/inbox/{ana}/status", data={"csrf_token": token, "status": "done"}).status_code == 303
    assert "Ana López" not in page(client, "/staff/inbox") and "Ana López" in page(client, "/staff/inbox?status=done")
    assert client.post(f"/staff/inbox/{ana}/status", data={"csrf_token": token, "status": "open"}).status_code == 303
    assert "Ana López" in page(client, "/staff/inbox")
    client.post(f"/staff/inbox/{ana}/status", data={"csrf_token": token, "status": "done"})
    post_sms(client, ANA, "One more question")  # writing again opens it again
    assert "One more question" in page(client, "/staff/inbox")


def test_saved_replies_are_managed_by_admins_and_offered_in_the_reply_box(client, world):
    rt = world
    assert sign_in(client, ADMIN).status_code == 303
    token = csrf_token(client, "/staff/inbox/saved")
    r = client.post("/staff/inbox/saved", data={"csrf_token": token, "language": "es", "title": "Reunión",
                                                "text": "La reunión es el sábado a las 10."})
    assert r.status_code == 303
    assert client.post("/staff/inbox/saved", data={"csrf_token": token, "language": "xx", "title": "t",
                                                   "text": "t"}).status_code == 422
    for bad in ({"title": "Reu\x00nión", "text": "t"}, {"title": "t", "text": "La\x00 reunión"}):
        r = client.post("/staff/inbox/saved", data={"csrf_token": token, "language": "es", **bad})
        assert r.status_code == 422 and "control character" in r.get_data(as_text=True), bad  # not a 500
    jose = member_id(rt, JOSE)
    thread = page(client, f"/staff/inbox/{jose}")
    assert "Reunión" in thread and 'data-text="La reunión es el sábado a las 10."' in thread
    saved_id = re.search(r'<option value="(\d+)" data-text', thread).group(1)
    assert ">La reunión es el sábado a las 10.</textarea>" in page(client, f"/staff/inbox/{jose}?saved={saved_id}")
    client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/")})

    assert sign_in(client, ORGANIZER).status_code == 303
    assert client.get("/staff/inbox/saved").status_code == 403
    token = csrf_token(client, "/staff/inbox")
    assert client.post(f"/staff/inbox/saved/{saved_id}/delete", data={"csrf_token": token}).status_code == 403


def test_viewers_may_not_read_the_inbox(client, world):
    assert sign_in(client, VIEWER).status_code == 303
    assert client.get("/staff/inbox").status_code == 403
    assert client.get(f"/staff/inbox/{member_id(world, ANA)}").status_code == 403
    assert "Inbox" not in page(client, "/staff/")


def test_a_whatsapp_reply_outside_the_24_hours_is_refused_before_the_provider(client, world, twilio):
    """Past WhatsApp's window the page says why instead of offering a reply box, and a reply posted
    anyway never reaches Twilio; inside it the reply goes, and Twilio's own 63016 reads the same."""
    from html import unescape

    from tests.support.standins import WHATSAPP_OUTSIDE_WINDOW
    from tests.support.twilio_client import WHATSAPP_NUMBER, post_whatsapp

    rt = world
    rt.settings = rt.settings.with_(twilio_whatsapp_from=WHATSAPP_NUMBER)
    wa = "+13125550177"
    for body in ("FIRMA", "Lupe Ramírez", "60614", "¿A qué hora es la vigilia?"):
        assert post_whatsapp(client, wa, body).status_code == 200
    lupe = member_id(rt, wa)
    assert sign_in(client, ORGANIZER).status_code == 303
    open_page = unescape(page(client, f"/staff/inbox/{lupe}"))
    assert 'name="text"' in open_page
    # 18:00 UTC plus the 3 minutes the fixture's members took: she wrote at 18:03
    assert "WhatsApp takes a free reply until Nov 28, 18:03 UTC (24 hours after the member's last message)" \
        in open_page
    rt.clock.advance(hours=25)
    assert sign_in(client, ORGANIZER).status_code == 303  # the session did not last a day
    thread = unescape(page(client, f"/staff/inbox/{lupe}"))
    window = "WhatsApp allows a free reply only within 24 hours of the member's last message"
    assert window in thread and "their last was 25 hours ago" in thread and 'name="text"' not in thread
    sent_before = len(twilio.messages)
    r = reply(client, lupe, "A las 7")
    assert r.status_code == 409 and window in unescape(r.get_data(as_text=True))
    assert len(twilio.messages) == sent_before

    assert post_whatsapp(client, wa, "¿Hola?").status_code == 200
    twilio.fail("whatsapp:" + wa, WHATSAPP_OUTSIDE_WINDOW)  # Twilio's clock disagrees with ours
    r = reply(client, lupe, "A las 7")
    assert r.status_code == 409 and window in unescape(r.get_data(as_text=True))
    twilio.fail("whatsapp:" + wa, None)
    assert reply(client, lupe, "A las 7").status_code == 303
    assert [(m["To"], m["Body"]) for m in twilio.messages][-1] == ("whatsapp:" + wa, "A las 7")


def test_the_member_page_links_to_their_conversation(client, world):
    rt = world
    assert sign_in(client, ORGANIZER).status_code == 303
    jose, rosa = member_id(rt, JOSE), member_id(rt, ROSA)
    html = page(client, f"/staff/members/{jose}")
    link = re.search(r'<a href="(/staff/inbox/\d+)">Conversation in the inbox</a>(.{0,120})', html, re.S)
    assert link and link.group(1) == f"/staff/inbox/{jose}", html
    assert "open" in link.group(2)
    assert "Conversation in the inbox" not in page(client, f"/staff/members/{rosa}")  # she never wrote words for staff
    reply_page = page(client, f"/staff/inbox/{jose}")
    assert f'href="/staff/members/{jose}"' in reply_page


def test_a_stop_while_the_reply_waits_for_its_slot_wins(client, world, twilio, monkeypatch):
    """The member's last word before the provider call is theirs: a STOP that arrives while a staff
    reply waits for its rate slot stops the reply too."""
    from bots import inbox as isvc

    rt = world
    assert sign_in(client, ORGANIZER).status_code == 303
    ana = member_id(rt, ANA)
    token = csrf_token(client, f"/staff/inbox/{ana}")
    waited = []

    def stop_arrives(*args):
        waited.append(post_sms(client, ANA, "STOP").status_code)

    monkeypatch.setattr(isvc, "_wait_for_slot", stop_arrives)
    r = client.post(f"/staff/inbox/{ana}/reply", data={"csrf_token": token, "text": "See you Saturday!"})
    assert waited == [200]
    assert r.status_code == 409 and "opted out" in r.get_data(as_text=True)
    assert not [m for m in twilio.messages if m["To"] == ANA and m["Body"] == "See you Saturday!"]


def _database_fails(monkeypatch, times: int) -> list[int]:
    """The recording of a sent reply meets a database that does not answer ``times`` times."""
    from sqlalchemy.exc import OperationalError

    from bots import inbox

    real, calls = inbox.q.add_message, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("INSERT INTO inbox_messages", {}, Exception("server closed the connection"))
        return real(*args, **kwargs)

    monkeypatch.setattr(inbox.q, "add_message", flaky)
    monkeypatch.setattr(inbox, "RECORD_RETRY_WAITS", (0.01, 0.01, 0.01))
    return calls


def test_a_sent_reply_is_recorded_when_the_database_comes_back_a_moment_later(client, world, twilio, monkeypatch):
    rt = world
    assert sign_in(client, ORGANIZER).status_code == 303
    ana = member_id(rt, ANA)
    calls = _database_fails(monkeypatch, times=2)
    assert reply(client, ana, "See you Saturday!").status_code == 303
    assert len(calls) == 3 and [m["Body"] for m in twilio.messages if m["To"] == ANA] == ["See you Saturday!"]
    assert "See you Saturday!" in page(client, f"/staff/inbox/{ana}")
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(ConsentEvent.text_sent).where(
            ConsentEvent.member_id == ana, ConsentEvent.kind == "message")).all() == ["See you Saturday!"]


def test_a_sent_reply_the_database_cannot_record_says_so_and_is_not_sent_twice(client, world, twilio, monkeypatch,
                                                                             caplog):
    rt = world
    assert sign_in(client, ORGANIZER).status_code == 303
    ana = member_id(rt, ANA)
    _database_fails(monkeypatch, times=99)
    r = reply(client, ana, "See you Saturday!")
    html = r.get_data(as_text=True)
    assert r.status_code == 503 and "was sent" in html and "do not send it again" in html, html[:2000]
    assert [m["Body"] for m in twilio.messages if m["To"] == ANA] == ["See you Saturday!"]
    assert any("sent but could not be recorded" in rec.getMessage() for rec in caplog.records)
