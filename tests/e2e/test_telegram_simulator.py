"""The simulator's Telegram mode: inline buttons come back as buttons, and pressing one takes the
same path as a real callback query."""

from __future__ import annotations

from tests.support.simulator import headers


def sim(client, text="", button=None, language="en"):
    body = {"channel": "telegram", "address": "tg-ana", "text": text, "language": language}
    if button is not None:
        body["button"] = button
    r = client.post("/simulator/send", json=body, headers=headers(client))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_start_shows_language_buttons_and_pressing_one_switches(client):
    first = sim(client, "/start")
    assert first["html"] is True
    assert first["messages"][0].startswith("<b>End S-Comm Now</b>")
    assert first["buttons"] == [{"text": "English", "data": "lang:en"}, {"text": "Español", "data": "lang:es"}]
    pressed = sim(client, "lang:es", button="lang:es")
    assert pressed["language"] == "es"
    assert pressed["messages"] == ["De acuerdo, te escribiremos en español.",
                                   "Para firmar, responde con tu nombre completo."]
    assert pressed["buttons"] == []
    assert sim(client, "Ana López")["messages"][0].startswith("Gracias, Ana López.")


def test_signing_in_the_simulator_offers_no_contact_button(client):
    for text in ("/start", "Ana López"):
        sim(client, text)
    done = sim(client, "60601")
    assert "Chicago, IL" in done["messages"][0] and done["buttons"] == []


def test_bad_buttons_are_400(client):
    r = client.post("/simulator/send", json={"channel": "telegram", "address": "x1", "text": "", "button": "nope:1"},
                    headers=headers(client))
    assert r.status_code == 400
    r = client.post("/simulator/send", json={"channel": "sms", "address": "+15550001111", "text": "", "button": "lang:es"},
                    headers=headers(client))
    assert r.status_code == 400
    r = client.post("/simulator/send", json={"channel": "telegram", "address": "x1", "text": "", "button": 5})
    assert r.status_code == 400
