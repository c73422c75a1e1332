"""The conversation's consent and repair paths end to end: signed Twilio webhooks and Telegram updates
in, replies out, rows in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import ConsentEvent, Member, Signature
from tests.support.twilio_client import messages, post_sms

PHONE = "+13125550101"


def texts(client, *bodies, phone=PHONE):
    return [messages(post_sms(client, phone, body)) for body in bodies]


@pytest.mark.parametrize("keyword,start_again,question", [
    ("SCOMM", "To start again, text SCOMM", "ZIP"),
    ("FIRMA", "Para empezar de nuevo, envia FIRMA", "codigo postal"),
])
def test_after_three_bad_zips_the_reply_only_says_it_starts_again(client, rt, keyword, start_again, question):
    *_, third = texts(client, keyword, "Ana López", "abc", "123", "Chicago")
    assert len(third) == 1 and start_again in third[0]
    assert question not in third[0] and "responde" not in third[0].lower() and "reply" not in third[0].lower()
    # what it says is true: the conversation was reset, and a ZIP now starts nothing
    assert keyword in texts(client, "60601")[0][0]
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Signature)).all() == []


def test_a_stranger_who_writes_ayuda_gets_the_help_in_spanish(client, rt):
    (help_,) = texts(client, "AYUDA")
    assert len(help_) == 1 and "Para firmar, envia FIRMA" in help_[0] and "PARAR" in help_[0]
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Member.language)).one() == "es"


def test_after_parar_a_language_switch_is_silent_and_si_opts_back_in(client, rt):
    texts(client, "FIRMA")
    assert "No recibiras mas mensajes" in texts(client, "PARAR")[0][0]
    assert texts(client, "ENGLISH", "hola", "Ana López") == [[], [], []]  # STOP means stop
    (again,) = texts(client, "Sí")
    assert len(again) == 1 and "subscribed again" in again[0]  # ENGLISH was recorded, silently
    with rt.db.uow() as uow:
        member = uow.session.scalars(select(Member)).one()
        assert member.opted_out_at is None and member.language == "en"
        events = uow.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        assert [(e.kind, e.cause) for e in events] == [("opt_in", "FIRMA"), ("opt_out", "PARAR"), ("opt_in", "SI")]


@pytest.mark.parametrize("words,cause", [("Please stop texting me!", "STOP TEXTING ME"),
                                         ("Bórrenme de la lista por favor", "BORRENME DE LA LISTA")])
def test_an_opt_out_in_plain_words_is_a_stop(client, rt, words, cause):
    texts(client, "SCOMM", "Ana López", "60601")
    (confirmation,) = texts(client, words)
    (stop_confirmation,) = texts(client, "STOP", phone="+13125550199")
    assert confirmation == stop_confirmation and "unsubscribed" in confirmation[0]
    assert texts(client, "hello", "Ana López") == [[], []]  # STOP means stop
    with rt.db.uow() as uow:
        member = uow.session.scalars(select(Member).where(Member.address == PHONE)).one()
        assert member.opted_out_at is not None
        event = uow.session.scalars(select(ConsentEvent).where(ConsentEvent.member_id == member.id)
                                    .order_by(ConsentEvent.id.desc())).first()
        assert (event.kind, event.cause, event.text_sent) == ("opt_out", cause, confirmation[0])


def test_ordinary_words_about_stopping_are_not_an_opt_out(client, rt):
    texts(client, "SCOMM", "Ana López", "60601")
    first, second = texts(client, "We need to stop S-Comm now!", "How can I help stop deportations?")
    assert first and "unsubscribed" not in first[0]
    assert second == []  # kept for staff like the first; one acknowledgement a day
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Member.opted_out_at)).one() is None


def test_a_plain_words_opt_out_is_heard_over_the_inbound_limit(client, rt):
    from bots.service import INBOUND_LIMIT_PER_MINUTE

    for i in range(INBOUND_LIMIT_PER_MINUTE + 5):
        post_sms(client, PHONE, f"spam {i}")
    assert texts(client, "hello") == [[]]  # throttled
    (confirmation,) = texts(client, "no más mensajes")
    assert len(confirmation) == 1 and "unsubscribed" in confirmation[0]
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Member.opted_out_at)).one() is not None


@pytest.mark.parametrize("stop,keyword,words", [
    ("STOP", "SCOMM", ("subscribed again", "up to 4 msgs/month", "Msg & data rates may apply",
                       "Reply HELP for help, STOP to cancel")),
    ("PARAR", "FIRMA", ("suscribiste de nuevo", "hasta 4 msjs/mes", "Pueden aplicar tarifas de mensajes y datos",
                        "Responde AYUDA para ayuda, PARAR para cancelar")),
    ("no más mensajes", "FIRMA", ("suscribiste de nuevo", "hasta 4 msjs/mes", "Responde AYUDA para ayuda")),
])
def test_a_keyword_after_an_opt_out_resubscribes_with_the_disclosure(client, rt, stop, keyword, words):
    texts(client, keyword, "Ana López", "60601", stop)
    (again,) = texts(client, keyword)
    assert len(again) == 1 and ("already signed" in again[0] or "Ya firmaste" in again[0])
    for needed in words:
        assert needed in again[0], again[0]
    with rt.db.uow() as uow:
        member = uow.session.scalars(select(Member)).one()
        assert member.opted_out_at is None
        event = uow.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
        assert (event.kind, event.cause, event.text_sent) == ("opt_in", keyword, again[0])


def test_a_member_who_stopped_before_signing_gets_the_disclosure_again(client, rt):
    first, _stop = texts(client, "SCOMM", "STOP")
    intro, question = texts(client, "SCOMM")[0]
    assert intro == first[0]
    assert question.startswith("To sign, reply with your full name.") and "subscribed again" in question
    assert "Msg & data rates may apply" in question and "STOP to cancel" in question
    assert "Thanks, Ana Lopez" in texts(client, "Ana López")[0][0]


@pytest.mark.parametrize("keyword,first,full,zip_code,says", [
    ("SCOMM", "Ana", "Ana María López", "60601", "We'll sign as Ana Maria Lopez"),
    ("FIRMA", "José", "José Núñez Ortiz", "78520", "Firmaremos como José Nuñez Ortiz"),
])
def test_a_full_name_sent_for_the_zip_corrects_a_one_word_name(client, rt, keyword, first, full, zip_code, says):
    _, ask_zip, corrected, done = texts(client, keyword, first, full, zip_code)
    assert first in ask_zip[0]
    assert len(corrected) == 1 and says in corrected[0] and ("ZIP" in corrected[0] or "codigo postal" in corrected[0])
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Signature.name)).one() == full
