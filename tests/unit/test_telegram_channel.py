"""The Telegram adapter's input side: real update JSON -> Event values (no database, no HTTP)."""

from __future__ import annotations

import pytest

from bots.channels import phones
from bots.channels.telegram import updates as tg
from bots.channels.telegram.replies import send_message
from tests.support import telegram_updates as tu

ANA = 5_001_002


def test_private_text_and_deep_link_start():
    e = tg.parse_update(tu.text_update(ANA, "/start end-scomm", "es-MX", update_id=42))
    assert (e.kind, e.update_id, e.chat_id) == (tg.MESSAGE, 42, ANA)
    i = e.inbound
    assert (i.channel, i.address, i.provider_id, i.command, i.argument, i.language_hint) == \
        ("telegram", str(ANA), "42", "start", "end-scomm", "es-MX")
    plain = tg.parse_update(tu.text_update(ANA, "Ana López")).inbound
    assert (plain.text, plain.command, plain.media) == ("Ana López", None, False)


@pytest.mark.parametrize("text, command, argument", [
    ("/start", "start", None), ("/stop", "stop", None), ("/help@firma_test_bot", "help", None),
    ("/language es", "language", "es"), ("/idioma", "language", None), ("/whatever", "help", None),
])
def test_commands(text, command, argument):
    i = tg.parse_update(tu.text_update(ANA, text)).inbound
    assert (i.command, i.argument) == (command, argument)


@pytest.mark.parametrize("make", [tu.sticker_update, tu.voice_update, lambda u: tu.photo_update(u)])
def test_media_is_flagged(make):
    e = tg.parse_update(make(ANA))
    assert e.kind == tg.MESSAGE and e.inbound.media and e.inbound.text == ""


def test_photo_caption_is_text():
    i = tg.parse_update(tu.photo_update(ANA, caption="60601")).inbound
    assert i.media and i.text == "60601"


def test_callback_query_language_button():
    e = tg.parse_update(tu.callback_update(ANA, "lang:es", "en"))
    assert e.kind == tg.MESSAGE and e.from_button and e.callback_query_id
    assert (e.inbound.command, e.inbound.argument, e.chat_id) == ("language", "es", ANA)
    assert tg.parse_update(tu.callback_update(ANA, "old-button")).kind == tg.IGNORED


def test_contact_share():
    e = tg.parse_update(tu.contact_update(ANA, "13125550101"))
    assert (e.kind, e.phone, e.own_contact) == (tg.CONTACT, "+13125550101", True)
    other = tg.parse_update(tu.contact_update(ANA, "+1 312 555 0101", contact_user_id=99))
    assert (other.phone, other.own_contact) == ("+13125550101", False)


@pytest.mark.parametrize("raw, e164", [
    ("13125550101", "+13125550101"), ("+1 (312) 555-0101", "+13125550101"), ("3125550101", "+13125550101"),
    ("17875550101", "+17875550101"),  # Puerto Rico
    ("447911123456", None), ("12345", None), ("", None), ("not a number", None),
])
def test_normalize_phone(raw, e164):
    assert phones.linkable(raw) == e164


def test_my_chat_member():
    kicked = tg.parse_update(tu.my_chat_member_update(ANA, "kicked"))
    assert (kicked.kind, kicked.reachable, kicked.inbound.address) == (tg.MEMBER_STATUS, False, str(ANA))
    assert tg.parse_update(tu.my_chat_member_update(ANA, "member")).reachable is True


def test_groups_channels_and_edits():
    assert tg.parse_update(tu.group_update()).kind == tg.GROUP
    assert tg.parse_update(tu.group_update(kind="group", chat_id=-42)).chat_id == -42
    assert tg.parse_update(tu.channel_post_update()).kind == tg.GROUP
    assert tg.parse_update(tu.edited_update(ANA, "x")).kind == tg.IGNORED
    # kinds not asked for in allowed_updates are ignored without being read, whatever their shape
    assert tg.parse_update({"update_id": 1, "message_reaction": {"new": "shape"}}).kind == tg.IGNORED
    assert tg.parse_update({"update_id": 2}).kind == tg.IGNORED


def test_messages_from_bots_are_ignored():
    update = tu.text_update(ANA, "hi")
    update["message"]["from"]["is_bot"] = True
    assert tg.parse_update(update).kind == tg.IGNORED


@pytest.mark.parametrize("data", [None, [], "x", {}, {"update_id": -1}, {"update_id": True},
                                  {"update_id": 3, "message": {"date": 1}}, {"update_id": 3, "callback_query": 7}])
def test_not_updates(data):
    with pytest.raises(tg.BadUpdate):
        tg.parse_update(data)


def test_webhook_body_is_a_bot_api_call():
    action = send_message(ANA, "<b>hi</b>")
    assert action.webhook_body() == {"method": "sendMessage", "chat_id": ANA, "text": "<b>hi</b>",
                                     "parse_mode": "HTML", "link_preview_options": {"is_disabled": True}}
