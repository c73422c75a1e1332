"""The simulator page as a newcomer reads it: one sentence per campaign with its keywords as staff
wrote them, and a note where the bot sends nothing."""

from __future__ import annotations

import re

import pytest

from bots import campaigns as svc
from bots.runtime import Runtime
from tests.integration.test_campaigns import new_campaign
from tests.support.simulator import headers
from webhooks import create_app


@pytest.fixture
def app_rt(settings, clock):
    runtime = Runtime.build(settings)  # campaigns from the database, as the app has them
    runtime.clock = clock
    yield runtime
    runtime.db.dispose()


@pytest.fixture
def sim_client(app_rt):
    return create_app({"TESTING": True, "SIMULATOR_OPEN": True}, app_rt).test_client()


def hint(client) -> str:
    page = client.get("/simulator/").get_data(as_text=True)
    text = re.search(r'<p class="hint">(.*?)</p>', page, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", "", text).split())


def test_the_hint_has_one_sentence_per_campaign_with_keywords_as_written(sim_client, app_rt):
    assert svc.create_campaign(app_rt, new_campaign(), svc.Actor("admin@example.org")).ok
    text = hint(sim_client)
    assert "To sign “End S-Comm Now”, text SCOMM or FIRMA. To sign “Dream Act Now”, text DREAM or SUEÑO." in text
    assert "SUENO" not in text
    page = sim_client.get("/simulator/").get_data(as_text=True)
    assert 'placeholder="Type SCOMM or FIRMA"' in page


def send(client, text, channel="sms", address="+15550001111"):
    r = client.post("/simulator/send", json={"channel": channel, "address": address, "text": text},
                    headers=headers(client))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_no_reply_says_why(sim_client):
    assert send(sim_client, "SCOMM")["note"] is None
    assert send(sim_client, "STOP")["messages"]
    quiet = send(sim_client, "hello?")
    assert quiet["messages"] == []
    assert quiet["note"] == "no reply: this member has opted out (START, HELP or a keyword gets an answer)"
    assert send(sim_client, "START")["note"] is None
