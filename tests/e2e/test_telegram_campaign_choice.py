"""With several active petitions, a bare /start starts the default one and offers the others as
buttons; a deep link picks its petition; an unknown slug gets the default with a word about it."""

from __future__ import annotations

import json

import pytest

from tests.support import telegram_updates as tu
from tests.support.campaigns import two_campaigns
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures


@pytest.fixture
def catalog(tmp_path):
    return two_campaigns(tmp_path)


def markup(message):
    value = message.get("reply_markup")
    return json.loads(value) if isinstance(value, str) else value


def test_bare_start_offers_the_other_petitions(client, standin):
    tu.post_update(client, tu.text_update(1, "/start"))
    intro, question = standin.sent
    assert intro["text"].startswith("<b>End S-Comm Now</b>")
    rows = markup(question)["inline_keyboard"]
    assert rows[0] == [{"text": "Pass the Dream Act", "callback_data": "start:dream-act"}]
    assert [b["callback_data"] for b in rows[-1]] == ["lang:en", "lang:es"]
    before = len(standin.sent)
    r = tu.post_update(client, tu.callback_update(1, "start:dream-act"))
    assert r.get_json()["method"] == "answerCallbackQuery"
    texts = [m["text"] for m in standin.sent[before:]]
    assert texts[0].startswith("<b>Pass the Dream Act</b>") and "full name" in texts[1]


def test_deep_link_picks_the_petition_and_unknown_slug_says_so(client, standin):
    tu.post_update(client, tu.text_update(2, "/start dream-act", "es"))
    first = standin.sent[0]
    assert first["text"].startswith("<b>Aprueben el Dream Act</b>")
    assert "start:" not in json.dumps(markup(standin.sent[-1]))  # a deep link offers no other petition
    before = len(standin.sent)
    tu.post_update(client, tu.text_update(3, "/start no-such-thing"))
    texts = [m["text"] for m in standin.sent[before:]]
    assert texts[0] == "We couldn't find that petition, so here is our main one."
    assert texts[1].startswith("<b>End S-Comm Now</b>")
