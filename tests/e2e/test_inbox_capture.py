"""Members' own words reach the inbox: signed Twilio webhooks and Telegram updates in, rows and
acknowledgements out (one a day, in the member's language); opt-outs in plain words never land;
forgetting erases the thread; `firma db purge` drops old closed conversations; the export has none."""

from __future__ import annotations

from sqlalchemy import func, select
from click.testing import CliRunner

from storage.models import InboxMessage, InboxThread, Member
from tests.support import telegram_updates as tu
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures
from tests.support.twilio_client import messages, post_sms

PHONE = "+13125550187"
ACK = "Thanks! Someone from our team will read your message. To sign End S-Comm Now, text SCOMM."


def texts(client, *bodies, phone=PHONE):
    return [messages(post_sms(client, phone, body)) for body in bodies]


def inbox(rt, address=PHONE):
    """(sender, text, media) of the member's inbox messages in order, and their thread row."""
    with rt.db.uow() as uow:
        s = uow.session
        member = s.scalars(select(Member).where(Member.address == address)).first()
        if member is None:
            return [], None
        rows = [(m.sender, m.text, m.media) for m in
                s.scalars(select(InboxMessage).where(InboxMessage.member_id == member.id).order_by(InboxMessage.id))]
        thread = s.get(InboxThread, member.id)
        if thread is not None:
            s.expunge(thread)
        return rows, thread


def test_free_text_after_signing_lands_with_one_acknowledgement_a_day(client, rt, clock):
    texts(client, "SCOMM", "Ana López", "60601")
    (first,) = texts(client, "How else can I help? I can volunteer on Saturdays")
    assert len(first) == 1 and first[0].startswith(ACK)
    (second,) = texts(client, "Also Sundays after church")
    assert second == []  # the same day: kept, no second note
    rows, thread = inbox(rt)
    assert rows == [("member", "How else can I help? I can volunteer on Saturdays", False),
                    ("bot", first[0], False), ("member", "Also Sundays after church", False)]
    assert (thread.status, thread.unread, thread.campaign, thread.channel, thread.language) == \
        ("open", 2, "end-scomm", "sms", "en")
    assert thread.last_text == "Also Sundays after church" and thread.last_at == clock.now

    clock.advance(hours=6)  # 18:00 UTC + 6 h = 19:00 in New York: still the same day there
    assert texts(client, "one more thing") == [[]]
    clock.advance(hours=6)  # 01:00 the next day in New York
    (next_day,) = texts(client, "good morning")
    assert next_day and next_day[0].startswith(ACK)


def test_the_acknowledgement_is_in_spanish_for_a_spanish_member(client, rt):
    texts(client, "FIRMA", "José Pérez", "60601")
    (ack,) = texts(client, "¿Cuándo es la próxima reunión?")
    assert ack[0].startswith("¡Gracias! Alguien de nuestro equipo leera tu mensaje. Para firmar Fin a S-Comm Ya, "
                             "envia FIRMA.")
    rows, thread = inbox(rt)
    assert rows[0] == ("member", "¿Cuándo es la próxima reunión?", False) and thread.language == "es"


def test_a_stranger_s_first_message_is_kept(client, rt):
    (ack,) = texts(client, "Hi, is this the immigrant rights group?", phone="+13125550111")
    assert ack[0].startswith(ACK) and "En español" in ack[0]
    rows, thread = inbox(rt, "+13125550111")
    assert rows[0] == ("member", "Hi, is this the immigrant rights group?", False)
    assert thread.status == "open" and thread.campaign is None


def test_what_the_conversation_uses_never_lands(client, rt):
    texts(client, "SCOMM", "Ana López")  # the name answered a question: not for staff
    texts(client, "60601", "HELP", "ESPAÑOL", "ENGLISH", "SCOMM")
    assert inbox(rt)[0] == []


def test_a_plain_words_opt_out_never_lands_and_an_opted_out_member_is_not_kept(client, rt):
    texts(client, "SCOMM", "Ana López", "60601")
    (stop,) = texts(client, "please stop texting me")
    assert "unsubscribed" in stop[0]
    assert texts(client, "why did you text me?") == [[]]
    assert inbox(rt) == ([], None)


def test_a_photo_is_kept_with_its_media_flag(client, rt):
    texts(client, "SCOMM", "Ana López", "60601")
    post_sms(client, PHONE, "", NumMedia="1", MediaUrl0="https://api.twilio.com/media/ME1",
             MediaContentType0="image/jpeg")
    rows, thread = inbox(rt)
    assert rows[0] == ("member", "", True) and thread.last_text == "[media]"


def test_a_retry_of_the_same_message_keeps_it_once(client, rt):
    texts(client, "SCOMM", "Ana López", "60601")
    first = post_sms(client, PHONE, "question about the march", sid="SM" + "a" * 32)
    again = post_sms(client, PHONE, "question about the march", sid="SM" + "a" * 32)
    assert messages(again) == messages(first)
    assert [r for r in inbox(rt)[0] if r[0] == "member"] == [("member", "question about the march", False)]


def test_telegram_free_text_lands_with_one_acknowledgement(client, rt, standin):
    def say(text):
        before = len(standin.sent)
        r = tu.post_update(client, tu.text_update(4242, text))
        assert r.status_code == 200
        body = r.get_json() if r.data else None
        return ([body["text"]] if body and body.get("method") == "sendMessage" else []) + \
            [m["text"] for m in standin.sent[before:]]

    for text in ("/start end-scomm", "Ana López", "60601"):
        say(text)
    (ack,) = say("Can I bring my kids to the vigil?")
    assert ack.startswith("Thanks! Someone from our team will read your message.") and "/start" in ack
    assert say("and my neighbour?") == []
    rows, thread = inbox(rt, "4242")
    assert [r[0] for r in rows] == ["member", "bot", "member"] and thread.channel == "telegram"


def cli(rt, *args):
    from webhooks.cli import Context, main

    ctx = Context()
    ctx._settings = rt.settings
    ctx._runtime = rt
    return CliRunner().invoke(main, list(args), obj=ctx, catch_exceptions=False)


def test_forget_erases_the_thread(client, rt):
    texts(client, "SCOMM", "Ana López", "60601", "My cousin was detained, who can help?")
    texts(client, "SCOMM", "Rosa Martínez", "60614", "Rosa's own question", phone="+13125550190")
    result = cli(rt, "member", "forget", PHONE, "--yes")
    assert result.exit_code == 0, result.output
    with rt.db.uow() as uow:
        s = uow.session
        assert s.scalar(select(func.count()).select_from(InboxMessage).where(InboxMessage.text.like("%cousin%"))) == 0
        assert s.scalar(select(func.count()).select_from(InboxThread)) == 1  # Rosa's stays
    assert inbox(rt, "+13125550190")[0][0] == ("member", "Rosa's own question", False)


def test_purge_drops_done_conversations_older_than_inbox_days(client, rt, clock):
    from bots import inbox as inbox_svc

    texts(client, "SCOMM", "Ana López", "60601", "old question")
    texts(client, "SCOMM", "Rosa Martínez", "60614", "open question", phone="+13125550190")
    texts(client, "SCOMM", "Lupe Díaz", "60614", "recently closed", phone="+13125550191")
    ana, rosa, lupe = (inbox(rt, p)[1].member_id for p in (PHONE, "+13125550190", "+13125550191"))
    inbox_svc.set_status(rt, ana, True, "organizer@example.org")
    clock.advance(days=100)
    inbox_svc.set_status(rt, lupe, True, "organizer@example.org")
    clock.advance(days=81)  # Ana's was closed 181 days ago, Lupe's 81; Rosa's is open
    result = cli(rt, "db", "purge")
    assert result.exit_code == 0 and "1 inbox conversation(s) done more than 180 days ago" in result.output
    assert inbox(rt) == ([], None)
    assert inbox(rt, "+13125550190")[1].status == "open" and inbox(rt, "+13125550191")[1].status == "done"
    result = cli(rt, "db", "purge", "--inbox-days", "30")
    assert "1 inbox conversation(s) done more than 30 days ago" in result.output
    assert inbox(rt, "+13125550191") == ([], None) and inbox(rt, "+13125550190")[1] is not None


def test_the_export_never_includes_inbox_messages(client, rt):
    texts(client, "SCOMM", "Ana López", "60601", "PRIVATE-WORDS about my case")
    result = cli(rt, "export", "--campaign", "end-scomm", "--include-contact")
    assert result.exit_code == 0 and "Ana López" in result.output
    assert "PRIVATE-WORDS" not in result.output


def test_forget_a_number_erases_its_whatsapp_and_sms_conversations(client, rt):
    """One number on SMS and on WhatsApp is one person: forgetting it erases the words they wrote on
    each, whichever channel the number is found on first."""
    from tests.support.twilio_client import post_whatsapp

    for body in ("FIRMA", "Lupe Ramírez", "60614", "Mi hermano fue detenido, ¿quién ayuda?"):
        assert post_whatsapp(client, PHONE, body).status_code == 200
    texts(client, "Otra pregunta por SMS sobre mi hermano")
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(InboxThread)) == 2  # one per channel
    result = cli(rt, "member", "forget", PHONE, "--yes")
    assert result.exit_code == 0, result.output
    with rt.db.uow() as uow:
        s = uow.session
        assert s.scalar(select(func.count()).select_from(InboxMessage).where(InboxMessage.text.like("%hermano%"))) == 0
        assert s.scalar(select(func.count()).select_from(InboxThread)) == 0
        assert s.scalar(select(func.count()).select_from(Member).where(Member.address == PHONE)) == 0


def test_forget_a_whatsapp_only_member_erases_their_conversation(client, rt):
    from tests.support.twilio_client import post_whatsapp

    for body in ("Hola, ¿qué es esto?", "FIRMA", "Lupe Ramírez", "60614", "¿Hay reunión el sábado?"):
        assert post_whatsapp(client, PHONE, body).status_code == 200
    assert len([r for r in inbox(rt)[0] if r[0] == "member"]) == 2
    result = cli(rt, "member", "forget", PHONE, "--yes")
    assert result.exit_code == 0, result.output
    with rt.db.uow() as uow:
        s = uow.session
        assert s.scalar(select(func.count()).select_from(InboxMessage)) == 0
        assert s.scalar(select(func.count()).select_from(InboxThread)) == 0
        assert s.scalar(select(func.count()).select_from(Member).where(Member.address == PHONE)) == 0
