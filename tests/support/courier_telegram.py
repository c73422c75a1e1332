"""Telegram updates in the older Bot API shapes that RapidPro's courier still tests with
(nyaruka/courier, handlers/telegram/handler_test.go): users without ``is_bot``, media objects
without ``file_unique_id`` and with ``thumb`` rather than ``thumbnail``, stickers without their
``type``, contacts without ``user_id``. Values are ours; the shapes are theirs."""

from __future__ import annotations

USER_ID = 4815162
_FROM = {"id": USER_ID, "first_name": "Rosa", "last_name": "Parra", "username": "rosaparra"}  # no is_bot
_CHAT = {"id": USER_ID, "first_name": "Rosa", "last_name": "Parra", "type": "private"}


def _message(update_id: int, message_id: int, **fields) -> dict:
    return {"update_id": update_id, "message": {"message_id": message_id, "from": dict(_FROM), "chat": dict(_CHAT),
                                                "date": 1454119029, **fields}}


def payloads() -> dict[str, dict]:
    thumb = {"file_id": "AAQDABNW--abc", "file_size": 2510, "width": 77, "height": 90}
    return {
        "hello": _message(274114370, 41, text="Hello World"),
        "start": _message(274114371, 42, text="/start"),
        "empty": {"update_id": 274114372},
        "sticker": _message(274114373, 44, sticker={"width": 436, "height": 512, "thumb": thumb,
                                                    "file_id": "BQADAwADRQAD", "file_size": 38440}),
        "photo": _message(274114374, 85, caption="Photo Caption", photo=[
            {"file_id": "AgADAQADtKcx-1", "file_size": 1140, "width": 51, "height": 90},
            {"file_id": "AgADAQADtKcx-2", "file_size": 12138, "width": 180, "height": 320}]),
        "video": _message(274114375, 86, video={"duration": 1, "width": 360, "height": 640, "mime_type": "video/mp4",
                                                "thumb": thumb, "file_id": "BAADAQADBgAD", "file_size": 257507}),
        "voice": _message(274114376, 91, voice={"duration": 1, "mime_type": "audio/ogg", "file_id": "AwADAQADCQAD",
                                                "file_size": 4288}),
        "document": _message(274114377, 92, document={"file_name": "list.xls", "mime_type": "application/vnd.ms-excel",
                                                      "file_id": "BQADAQADCgAD", "file_size": 4540928}),
        "location": _message(274114378, 94, location={"latitude": -2.890287, "longitude": -79.004333}),
        "venue": _message(274114379, 95, location={"latitude": -2.898944, "longitude": -79.006835},
                          venue={"location": {"latitude": -2.898944, "longitude": -79.006835}, "title": "Cuenca",
                                 "address": "Provincia del Azuay", "foursquare_id": "4c21facd9a67a5"}),
        "contact": _message(274114380, 96, contact={"phone_number": "0788531373", "first_name": "Taxi"}),
        "web_app_data": _message(274114381, 97, web_app_data={"data": "{\"first_name\": \"Bob\"}",
                                                              "button_text": "Register"}),
    }
