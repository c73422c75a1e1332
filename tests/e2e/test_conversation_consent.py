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
