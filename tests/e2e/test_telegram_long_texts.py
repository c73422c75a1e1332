"""A campaign whose petition text is longer than one Telegram message: it arrives in parts under
4,096 characters, in order, and the stand-in (which rejects longer texts, as Telegram does) takes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.campaigns import load_catalog
from config.settings import SHIPPED_CAMPAIGNS
from tests.support import telegram_updates as tu
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures

PARAGRAPH = "We demand an end to S-Comm & every program like it. " * 20


@pytest.fixture
def catalog(tmp_path):
    text = SHIPPED_CAMPAIGNS.read_text(encoding="utf-8")
    long_statement = "\n\n".join(f"{i}. {PARAGRAPH}" for i in range(12))  # about 12,500 characters
    start = text.index('statement = """Our petition')
    end = text.index('"""', start + len('statement = """')) + 3
    text = text[:start] + f'statement = """{long_statement}"""' + text[end:]
    path = Path(tmp_path) / "campaigns.toml"
    path.write_text(text, encoding="utf-8")
    return load_catalog(path)


def test_long_petition_is_split_under_the_limit(client, standin):
    r = tu.post_update(client, tu.text_update(8080, "/start end-scomm"))
    assert r.status_code == 200
    texts = [m["text"] for m in standin.sent]
    assert len(texts) >= 5  # intro in parts, then the question
    assert all(len(t) <= 4096 for t in texts)
    assert texts[0].startswith("<b>End S-Comm Now</b>")
    joined = "\n\n".join(texts)
    assert "0. We demand" in joined and "11. We demand" in joined
    assert joined.index("0. We demand") < joined.index("11. We demand")
    assert "S-Comm &amp; every program" in joined  # escaped for HTML
    assert "reply with your full name" in texts[-1]
