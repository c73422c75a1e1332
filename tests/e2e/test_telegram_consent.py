"""The conversation's consent and repair paths on Telegram: real update JSON in, Bot API calls out,
rows in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select

from storage.models import ConsentEvent, Member
from tests.support import telegram_updates as tu
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures

ANA = 111_222_333


def say(client, standin, text, language_code="en", user_id=ANA):
    before = len(standin.sent)
    r = tu.post_update(client, tu.text_update(user_id, text, language_code))
    assert r.status_code == 200
    if r.data and r.get_json()["method"] == "sendMessage":
        return [r.get_json()["text"]]
    return [m["text"] for m in standin.sent[before:]]


def member(rt, user_id=ANA):
    with rt.db.uow() as uow:
        found = uow.session.scalars(select(Member).where(Member.channel == "telegram",
                                                         Member.address == str(user_id))).one()
        uow.session.expunge(found)
        return found


def test_after_stop_a_language_change_is_silent(client, rt, standin):
    say(client, standin, "/start end-scomm")
    assert say(client, standin, "/stop")[0].startswith("You are unsubscribed")
    assert say(client, standin, "/language es") == []
    assert say(client, standin, "español") == []
    assert member(rt).language == "es" and member(rt).opted_out_at is not None
    assert "Para firmar, envía /start" in say(client, standin, "/help")[0]


def test_an_opt_out_in_plain_words_is_a_stop(client, rt, standin):
    say(client, standin, "/start end-scomm")
    (confirmation,) = say(client, standin, "please stop sending me messages")
    assert confirmation.startswith("You are unsubscribed") and "/start" in confirmation
    assert say(client, standin, "Ana López") == []
    assert member(rt).opted_out_at is not None
    with rt.db.uow() as uow:
        event = uow.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id.desc())).first()
        assert (event.kind, event.cause, event.channel) == ("opt_out", "STOP SENDING ME MESSAGES", "telegram")


def test_start_after_stop_says_messages_come_again(client, rt, standin):
    say(client, standin, "/start end-scomm", "es")
    say(client, standin, "/stop", "es")
    *_, last = say(client, standin, "/start end-scomm", "es")
    assert "Te suscribiste de nuevo" in last and "Envía /help para ayuda, /stop para cancelar" in last
    assert member(rt).opted_out_at is None
