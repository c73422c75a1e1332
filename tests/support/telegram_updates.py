"""Bot API update JSON in the shapes Telegram really sends (https://core.telegram.org/bots/api#update),
and a helper that posts them to the webhook with the secret header."""

from __future__ import annotations

import itertools
import json
import time

SECRET = "s3cret-Token_for-tests"
TOKEN = "123456:TEST-token"
_ids = itertools.count(700_000_001)
_message_ids = itertools.count(1)


def next_update_id() -> int:
    return next(_ids)


def user(user_id: int, first_name: str = "Ana", language_code: str | None = "en", is_bot: bool = False) -> dict:
    u = {"id": user_id, "is_bot": is_bot, "first_name": first_name, "username": f"user{user_id}"}
    if language_code:
        u["language_code"] = language_code
    return u


def private_chat(user_id: int, first_name: str = "Ana") -> dict:
    return {"id": user_id, "first_name": first_name, "username": f"user{user_id}", "type": "private"}


def _message(user_id: int, language_code: str | None, **fields) -> dict:
    return {"message_id": next(_message_ids), "from": user(user_id, language_code=language_code),
            "chat": private_chat(user_id), "date": int(time.time()), **fields}


def text_update(user_id: int, text: str, language_code: str | None = "en", update_id: int | None = None) -> dict:
    message = _message(user_id, language_code, text=text)
    if text.startswith("/"):
        command = text.split(" ", 1)[0]
        message["entities"] = [{"offset": 0, "length": len(command), "type": "bot_command"}]
    return {"update_id": update_id or next_update_id(), "message": message}


def sticker_update(user_id: int, language_code: str | None = "en") -> dict:
    sticker = {"file_id": "CAACAgIAAxkBAAEB", "file_unique_id": "AgADcQADr8ZRGg", "type": "regular",
               "width": 512, "height": 512, "is_animated": False, "is_video": False, "emoji": "👍"}
    return {"update_id": next_update_id(), "message": _message(user_id, language_code, sticker=sticker)}


def photo_update(user_id: int, caption: str | None = None) -> dict:
    photo = [{"file_id": "AgACAgQAAxkBAAIB", "file_unique_id": "AQADsbkxG", "file_size": 1234, "width": 90, "height": 67}]
    fields = {"photo": photo}
    if caption:
        fields["caption"] = caption
    return {"update_id": next_update_id(), "message": _message(user_id, "en", **fields)}


def voice_update(user_id: int) -> dict:
    voice = {"file_id": "AwACAgQAAxkBAAIC", "file_unique_id": "AgADVw", "duration": 3, "mime_type": "audio/ogg"}
    return {"update_id": next_update_id(), "message": _message(user_id, "en", voice=voice)}


def contact_update(user_id: int, phone: str, contact_user_id: int | None = None) -> dict:
    contact = {"phone_number": phone, "first_name": "Ana", "user_id": user_id if contact_user_id is None else contact_user_id}
    return {"update_id": next_update_id(), "message": _message(user_id, "en", contact=contact)}


def edited_update(user_id: int, text: str) -> dict:
    message = _message(user_id, "en", text=text)
    message["edit_date"] = message["date"] + 5
    return {"update_id": next_update_id(), "edited_message": message}


def callback_update(user_id: int, data: str, language_code: str | None = "en") -> dict:
    bot_message = {"message_id": next(_message_ids), "date": int(time.time()), "chat": private_chat(user_id),
                   "from": {"id": 123456, "is_bot": True, "first_name": "Firma", "username": "firma_test_bot"},
                   "text": "To sign, reply with your full name."}
    return {"update_id": next_update_id(), "callback_query": {
        "id": str(4_382_000_000_000_000_000 + user_id), "from": user(user_id, language_code=language_code),
        "message": bot_message, "chat_instance": "-5379486733434957345", "data": data}}


def group_update(chat_id: int = -1001234567890, user_id: int = 5550001, text: str = "hello everyone",
                 kind: str = "supergroup") -> dict:
    message = {"message_id": next(_message_ids), "from": user(user_id), "date": int(time.time()),
               "chat": {"id": chat_id, "title": "Vecinos Unidos", "type": kind}, "text": text}
    return {"update_id": next_update_id(), "message": message}


def channel_post_update(chat_id: int = -1009876543210) -> dict:
    post = {"message_id": next(_message_ids), "date": int(time.time()), "text": "News",
            "chat": {"id": chat_id, "title": "Presente News", "type": "channel"},
            "sender_chat": {"id": chat_id, "title": "Presente News", "type": "channel"}}
    return {"update_id": next_update_id(), "channel_post": post}


def my_chat_member_update(user_id: int, status: str) -> dict:
    old = "member" if status == "kicked" else "kicked"
    bot = {"id": 123456, "is_bot": True, "first_name": "Firma", "username": "firma_test_bot"}
    def member(s):
        m = {"user": bot, "status": s}
        if s == "kicked":
            m["until_date"] = 0
        return m
    return {"update_id": next_update_id(), "my_chat_member": {
        "chat": private_chat(user_id), "from": user(user_id), "date": int(time.time()),
        "old_chat_member": member(old), "new_chat_member": member(status)}}


def post_update(client, update, secret: str | None = SECRET, raw: bytes | None = None):
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    body = raw if raw is not None else json.dumps(update).encode()
    return client.post("/webhooks/telegram", data=body, headers=headers, content_type="application/json")
