"""The Telegram webhook end to end: real update JSON in, Bot API calls out (in the response body or
through python-telegram-bot against the local stand-in), rows in the database."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from storage.models import ConsentEvent, Member, ProcessedMessage, Signature
from tests.support import telegram_updates as tu
from tests.support.standins import TELEGRAM_BLOCKED
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures

ANA = 111_222_333


def count(rt, model, *where):
    with rt.db.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model).where(*where))


def member(rt, user_id):
    with rt.db.uow() as uow:
        found = uow.session.scalars(select(Member).where(Member.channel == "telegram",
                                                         Member.address == str(user_id))).one()
        uow.session.expunge(found)  # a snapshot the test can read after the session ends
        return found


def texts_of(response, standin, before=0):
    """What the member read for one update: the body's sendMessage, or what went through the Bot API."""
    if response.data:
        body = response.get_json()
        if body["method"] == "sendMessage":
            return [body["text"]]
    return [m["text"] for m in standin.sent[before:]]


def say(client, standin, user_id, text, language_code="en"):
    before = len(standin.sent)
    r = tu.post_update(client, tu.text_update(user_id, text, language_code))
    assert r.status_code == 200
    return texts_of(r, standin, before)


def sign_up(client, standin, user_id=ANA, name="Ana María López", zip_code="60601", language_code="en"):
    return [say(client, standin, user_id, t, language_code) for t in ("/start end-scomm", name, zip_code)]


def test_deep_link_signing_in_english(client, rt, standin):
    start = tu.post_update(client, tu.text_update(ANA, "/start end-scomm"))
    assert start.status_code == 200 and not start.data  # two messages: both through the Bot API, in order
    intro, question = standin.sent
    assert str(intro["chat_id"]) == str(ANA) and intro["parse_mode"] == "HTML"
    assert intro["text"].startswith("<b>End S-Comm Now</b>") and "Our petition to the President" in intro["text"]
    assert "reply with your full name" in question["text"] and "/stop" in question["text"]
    buttons = json.loads(question["reply_markup"]) if isinstance(question["reply_markup"], str) else question["reply_markup"]
    assert [b["callback_data"] for b in buttons["inline_keyboard"][0]] == ["lang:en", "lang:es"]
    assert [b["text"] for b in buttons["inline_keyboard"][0]] == ["English", "Español"]

    name = tu.post_update(client, tu.text_update(ANA, "Ana María López"))
    body = name.get_json()  # one reply: in the webhook response, no outbound call
    assert body["method"] == "sendMessage" and body["chat_id"] == ANA and body["parse_mode"] == "HTML"
    assert body["text"] == "Thanks, Ana María López. Now reply with your 5-digit ZIP code."
    assert len(standin.sent) == 2

    done = tu.post_update(client, tu.text_update(ANA, "60601")).get_json()
    assert "Chicago, IL" in done["text"] and "signed" in done["text"]
    keyboard = done["reply_markup"]["keyboard"][0][0]
    assert keyboard == {"text": "Share my phone number", "request_contact": True}
    assert "share your phone number" in done["text"]
    with rt.db.uow() as uow:
        sig = uow.session.scalars(select(Signature)).one()
        assert (sig.channel, sig.name, sig.zip_code, sig.city, sig.state, sig.language) == \
            ("telegram", "Ana María López", "60601", "Chicago", "IL", "en")
    assert client.get("/api/campaigns/end-scomm").get_json()["signatures"] == 1


def test_spanish_from_language_code(client, rt, standin):
    replies = sign_up(client, standin, name="José Núñez", zip_code="78520", language_code="es-MX")
    assert replies[0][0].startswith("<b>Fin a S-Comm Ya</b>")
    assert "nombre completo" in replies[0][1]
    assert replies[1] == ["Gracias, José Núñez. Ahora responde con tu código postal (ZIP) de 5 dígitos."]
    assert "Brownsville, TX" in replies[2][0] and "firmó" in replies[2][0]
    assert "Compartir" not in replies[2][0]
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Signature.language)).one() == "es"


def test_language_button_switches_and_repeats_the_question(client, rt, standin):
    say(client, standin, ANA, "/start")
    before = len(standin.sent)
    r = tu.post_update(client, tu.callback_update(ANA, "lang:es"))
    assert r.status_code == 200
    assert r.get_json()["method"] == "answerCallbackQuery"  # the button stops spinning
    sent = [m["text"] for m in standin.sent[before:]]
    assert sent == ["De acuerdo, te escribiremos en español.", "Para firmar, responde con tu nombre completo."]
    assert member(rt, ANA).language == "es"


def test_unknown_button_is_answered_and_harmless(client, rt, standin):
    r = tu.post_update(client, tu.callback_update(ANA, "something-old"))
    assert r.status_code == 200 and r.get_json() == {"method": "answerCallbackQuery",
                                                      "callback_query_id": str(4_382_000_000_000_000_000 + ANA)}
    assert count(rt, Member) == 0


def test_html_in_a_name_is_escaped(client, standin):
    say(client, standin, ANA, "/start")
    assert say(client, standin, ANA, "Tom <b> & Jerry") == \
        ["Thanks, Tom &lt;b&gt; &amp; Jerry. Now reply with your 5-digit ZIP code."]


def test_commands_stop_help_and_unknown(client, rt, standin):
    say(client, standin, ANA, "/start")
    assert "/stop stops all messages" in say(client, standin, ANA, "/help@firma_test_bot")[0]
    assert "/stop stops all messages" in say(client, standin, ANA, "/frobnicate")[0]  # not taken as a name
    assert say(client, standin, ANA, "/stop")[0].startswith("You are unsubscribed")
    assert member(rt, ANA).opted_out_at is not None
    assert say(client, standin, ANA, "Ana López") == []  # STOP means stop
    assert count(rt, ConsentEvent, ConsentEvent.kind == "opt_out", ConsentEvent.cause == "/stop") == 1


def test_redelivered_update_has_no_second_effect(client, rt, standin):
    say(client, standin, ANA, "/start")
    say(client, standin, ANA, "Ana López")
    update = tu.text_update(ANA, "60601")
    first = tu.post_update(client, update)
    again = tu.post_update(client, update)
    assert again.status_code == 200
    # Telegram lost our answer: the same answer again, its "share my number" keyboard too, nothing else
    assert again.get_json() == first.get_json()
    assert again.get_json()["text"].startswith("Done! Ana López of Chicago, IL")
    assert "keyboard" in again.get_json()["reply_markup"]
    assert count(rt, Signature) == 1
    assert client.get("/api/campaigns/end-scomm").get_json()["signatures"] == 1
    redelivered_start = tu.text_update(ANA, "/start")
    tu.post_update(client, redelivered_start)
    sent = len(standin.sent)
    assert tu.post_update(client, redelivered_start).status_code == 200
    assert len(standin.sent) == sent


def test_update_ids_are_not_compared_by_size(client, rt, standin):
    """Telegram restarts update ids after a week of silence: a smaller id is a new update."""
    tu.post_update(client, tu.text_update(ANA, "/help", update_id=900_000_000))
    r = tu.post_update(client, tu.text_update(ANA, "/help", update_id=5))
    assert r.get_json()["method"] == "sendMessage"
    assert count(rt, ProcessedMessage) == 2


@pytest.mark.parametrize("secret", [None, "", "wrong", tu.SECRET + "x", tu.SECRET[:-1]])
def test_wrong_or_missing_secret_is_403_before_the_body_is_read(client, rt, standin, secret):
    r = tu.post_update(client, None, secret=secret, raw=b"{not json at all")
    assert r.status_code == 403
    r = tu.post_update(client, tu.text_update(ANA, "/start"), secret=secret)
    assert r.status_code == 403
    assert count(rt, Member) == 0 and count(rt, ProcessedMessage) == 0 and standin.sent == []


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"message": {"text": "hi"}}', "update_id"),
    (b'{"update_id": "12"}', "update_id"),
    (b'{"update_id": 12, "message": {"text": "hi"}}', "message.chat"),
    (b'{"update_id": 12, "message": "hello"}', "does not parse"),
])
def test_malformed_body_is_400_and_stores_nothing(client, rt, raw, reason):
    r = tu.post_update(client, None, raw=raw)
    assert r.status_code == 400
    assert reason in r.get_json()["error"]
    assert count(rt, ProcessedMessage) == 0 and count(rt, Member) == 0


def test_unconfigured_bot_is_503(client, app, rt):
    for changes in ({"telegram_bot_token": None}, {"telegram_webhook_secret": None}):
        rt.settings = rt.settings.with_(**changes)
        r = tu.post_update(client, tu.text_update(ANA, "/start"))
        assert r.status_code == 503
    assert count(rt, Member) == 0


def test_media_gets_a_reprompt(client, rt, standin):
    say(client, standin, ANA, "/start")
    for update in (tu.sticker_update(ANA), tu.voice_update(ANA)):
        body = tu.post_update(client, update).get_json()
        assert body["text"] == "We can only read text messages.\n\nTo sign, reply with your full name."
    body = tu.post_update(client, tu.photo_update(ANA, caption="Ana López")).get_json()
    assert body["text"].startswith("Thanks, Ana López.")  # a caption is text


def test_edited_message_is_ignored(client, rt, standin):
    say(client, standin, ANA, "/start")
    r = tu.post_update(client, tu.edited_update(ANA, "Ana López"))
    assert r.status_code == 200 and not r.data
    with rt.db.uow() as uow:
        from storage.models import Conversation
        assert uow.session.get(Conversation, member(rt, ANA).id).step == "awaiting_name"


def test_group_posts_get_one_private_invitation_per_group(client, rt, standin):
    first = tu.post_update(client, tu.group_update(text="/start")).get_json()
    assert first["chat_id"] == -1001234567890
    assert "https://t.me/firma_test_bot?start=end-scomm" in first["text"] and "Escríbeme" in first["text"]
    for update in (tu.group_update(text="hola"), tu.group_update(user_id=5550002, text="/start")):
        r = tu.post_update(client, update)
        assert r.status_code == 200 and not r.data
    other = tu.post_update(client, tu.group_update(chat_id=-1005555, kind="group")).get_json()
    assert other["chat_id"] == -1005555
    channel = tu.post_update(client, tu.channel_post_update()).get_json()
    assert channel["chat_id"] == -1009876543210
    assert tu.post_update(client, tu.channel_post_update()).data == b""
    assert count(rt, Member) == 0 and count(rt, Signature) == 0
    assert len(standin.calls("getMe")) == 1  # the bot's username is asked once


def test_blocked_user_becomes_unreachable_and_writing_again_makes_them_reachable(client, rt, standin):
    standin.fail(ANA, TELEGRAM_BLOCKED)
    r = tu.post_update(client, tu.text_update(ANA, "/start"))  # two replies: sent through the API -> 403
    assert r.status_code == 200
    assert member(rt, ANA).unreachable_at is not None
    standin.failures.clear()
    say(client, standin, ANA, "Ana López")
    assert member(rt, ANA).unreachable_at is None


def test_my_chat_member_kicked_and_member(client, rt, standin):
    say(client, standin, ANA, "/help")
    r = tu.post_update(client, tu.my_chat_member_update(ANA, "kicked"))
    assert r.status_code == 200 and not r.data
    assert member(rt, ANA).unreachable_at is not None
    tu.post_update(client, tu.my_chat_member_update(ANA, "member"))
    assert member(rt, ANA).unreachable_at is None
    tu.post_update(client, tu.my_chat_member_update(987, "kicked"))  # never wrote to us: nothing to store
    assert count(rt, Member) == 1


def test_update_kinds_not_used_are_200_and_harmless(client, rt, standin):
    for update in ({"update_id": tu.next_update_id(), "message_reaction": {"chat": {"id": 1}}},
                   {"update_id": tu.next_update_id(), "inline_query": {"id": "1", "query": "x"}}):
        r = tu.post_update(client, update)
        assert r.status_code == 200 and not r.data
    assert count(rt, Member) == 0 and standin.sent == []


@pytest.mark.slow
def test_flood_control_on_a_reply_waits_and_retries(client, rt, standin):
    from tests.support.standins import telegram_too_many

    standin.fail(ANA, telegram_too_many(1), None)  # one 429 (retry after 1 s), then fine
    r = tu.post_update(client, tu.text_update(ANA, "/start"))
    assert r.status_code == 200
    delivered = [m["text"] for m in standin.sent]
    assert len(delivered) == 3  # the first reply twice (429, then accepted), the second once
    assert delivered[0] == delivered[1] and "full name" in delivered[2]
    assert member(rt, ANA).unreachable_at is None
