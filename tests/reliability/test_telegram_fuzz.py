"""Property-based tests of the Telegram webhook and its update parser: whatever arrives at
POST /webhooks/telegram with the right secret, the answer is a 2xx or a 4xx, never a 500, and the
database never holds a half-handled update.

The updates start from the shapes Telegram really sends (tests/support/telegram_updates.py) and are
then damaged: fields dropped, repeated (duplicate JSON keys), given the wrong type (ids as strings,
text as a number, an object or null, nested junk), unicode of every kind (RTL marks, zero-width
characters, emoji, lone surrogates spelled "\\ud800"), invalid UTF-8 spliced into the bytes.
"""

from __future__ import annotations

import copy
import itertools
import json
import random

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from bots.channels.telegram import updates as telegram
from tests.reliability.test_sms_fuzz import check_no_partial_rows, table_counts
from tests.support import telegram_updates as tu
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures

ENDPOINT_EXAMPLES = hsettings(max_examples=max(20, hsettings().max_examples // 3))
USERS = [111_000_001, 111_000_002]
NEW_USERS = itertools.count(222_000_001)

unicode_text = st.text(max_size=120)  # every category, lone surrogates included
weird = st.one_of(
    unicode_text,
    st.sampled_from(["", "/start", "/start end-scomm", "/stop", "/language", "/idioma es", "SCOMM", "Ana López",
                     "60601", "\u200fAna\u200e López", "Ana\u200bLópez", "👍🏽 Ana", "\ud800", "Ana \udfff",
                     "x" * 5000, "lang:es", "lang:", "start:end-scomm", "start:" + "z" * 300, "\x00",
                     "111000001", "-1", "1e400"]),
    st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=False),  # json.dumps cannot write NaN the way Telegram would
    st.booleans(), st.none(),
    st.just({}), st.just([]), st.just({"id": "x"}), st.just([[{"text": 1}]]),
    st.just({"id": 111_000_001, "type": "private"}),
)


def shapes(user_id: int) -> list[dict]:
    return [
        tu.text_update(user_id, "/start end-scomm"), tu.text_update(user_id, "Ana María López"),
        tu.text_update(user_id, "60601"), tu.text_update(user_id, "/stop"), tu.text_update(user_id, "hola", "es"),
        tu.sticker_update(user_id), tu.photo_update(user_id, "SCOMM"), tu.voice_update(user_id),
        tu.contact_update(user_id, "+13125550101"), tu.contact_update(user_id, "13125550102", 42),
        tu.edited_update(user_id, "Ana"), tu.callback_update(user_id, "lang:es"),
        tu.callback_update(user_id, "start:end-scomm"), tu.group_update(), tu.channel_post_update(),
        tu.my_chat_member_update(user_id, "kicked"), tu.my_chat_member_update(user_id, "member"),
        {"update_id": tu.next_update_id(), "poll": {"id": "1", "question": "?", "options": []}},
    ]


class Pairs(list):
    """A JSON object written as these (key, value) pairs, so a key can appear twice."""


def encode(value) -> str:
    if isinstance(value, Pairs):
        return "{" + ", ".join(json.dumps(str(k)) + ": " + encode(v) for k, v in value) + "}"
    if isinstance(value, dict):
        return encode(Pairs(value.items()))
    if isinstance(value, list):
        return "[" + ", ".join(encode(v) for v in value) + "]"
    return json.dumps(value)  # ensure_ascii: a lone surrogate is written "\ud800", as JSON allows


def containers(value, found=None):
    """Every dict in the update (the places a mutation can hit)."""
    found = [] if found is None else found
    if isinstance(value, dict):
        found.append(value)
        for v in value.values():
            containers(v, found)
    elif isinstance(value, list):
        for v in value:
            containers(v, found)
    return found


def steady(update: dict) -> dict:
    """A copy without the clock and counters in it (hypothesis replays a draw and wants the same bytes)."""
    update = json.loads(json.dumps(update))
    for obj in containers(update):
        for key in ("date", "message_id", "edit_date"):
            if key in obj:
                obj[key] = 1_700_000_000 if key != "message_id" else 1
    return update


@st.composite
def damaged_updates(draw) -> bytes:
    update = steady(draw(st.sampled_from(shapes(draw(st.sampled_from(USERS))))))
    update["update_id"] = draw(st.integers(1, 2 ** 31))
    rnd = random.Random(draw(st.integers(0, 2 ** 32)))
    duplicates: list[tuple[dict, str]] = []
    for _ in range(draw(st.integers(0, 4))):
        target = rnd.choice(containers(update))
        if not target:
            continue
        key = rnd.choice(sorted(target))
        action = draw(st.sampled_from(["drop", "retype", "retype", "retype", "duplicate", "add"]))
        if action == "drop":
            del target[key]
        elif action == "retype":
            target[key] = copy.deepcopy(draw(weird))
        elif action == "add":
            target[draw(st.sampled_from(["text", "caption", "data", "language_code", "contact", "from", "chat",
                                         "message", "is_bot", "entities", "user_id", "phone_number"]))] = copy.deepcopy(draw(weird))
        else:
            duplicates.append((target, key))
    text = encode(update)
    for target, key in duplicates:  # repeat one key of one object with another value (first or last wins)
        twice = encode(Pairs(list(target.items()) + [(key, copy.deepcopy(draw(weird)))]))
        text = text.replace(encode(target), twice, 1)
    raw = text.encode("utf-8")
    if draw(st.integers(0, 4)) == 0:  # invalid UTF-8 spliced in
        at = draw(st.integers(0, 1000)) * len(raw) // 1000  # not a bound that depends on earlier draws
        raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])) + raw[at:]
    return raw


@pytest.mark.slow
@ENDPOINT_EXAMPLES
@given(st.lists(damaged_updates(), min_size=1, max_size=5))
def test_any_update_gets_2xx_or_4xx_and_no_partial_rows(client, rt, clock, standin, bodies):
    for raw in bodies:
        clock.advance(seconds=3)
        before = table_counts(rt)
        response = tu.post_update(client, None, raw=raw)
        assert response.status_code < 500, (raw[:500], response.status_code, response.data[:300])
        assert 200 <= response.status_code < 300 or 400 <= response.status_code < 500
        if response.status_code >= 400:
            assert table_counts(rt) == before, raw[:500]  # a refused update leaves no trace
        check_no_partial_rows(rt)


@ENDPOINT_EXAMPLES
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_get_a_4xx_and_leave_nothing(client, rt, standin, raw):
    before = table_counts(rt)
    response = tu.post_update(client, None, raw=raw)
    assert 400 <= response.status_code < 500 or response.status_code == 200
    if response.status_code != 200:
        assert table_counts(rt) == before
    check_no_partial_rows(rt)


@pytest.mark.slow
@ENDPOINT_EXAMPLES
@given(st.text(max_size=200))
def test_any_unicode_text_from_a_private_chat_gets_an_answer(client, rt, standin, clock, text):
    clock.advance(seconds=3)
    before = len(standin.sent)
    user_id = next(NEW_USERS)  # a first message: once opted out ("stop"), chatter rightly gets nothing
    response = tu.post_update(client, tu.text_update(user_id, text))
    assert response.status_code == 200, response.data[:300]
    answered = [response.get_json()["text"]] if response.data else [m["text"] for m in standin.sent[before:]]
    assert answered and all(answered), "every private text gets an answer"
    check_no_partial_rows(rt)


@ENDPOINT_EXAMPLES
@given(st.sampled_from([
    tu.edited_update(USERS[0], "Ana"), tu.channel_post_update(), tu.group_update(),
    {"update_id": 1, "poll": {"id": "1", "question": "?", "options": []}},
    {"update_id": 2, "message_reaction": {"chat": {"id": 1, "type": "private"}}},
    {"update_id": 3, "chat_join_request": {"whatever": [1, 2, 3]}},
    {"update_id": 4, "message": None}, {"update_id": 5},
]), st.integers(1, 2 ** 31))
def test_a_well_formed_update_it_cannot_use_gets_200(client, rt, standin, update, update_id):
    update = {**update, "update_id": update_id}
    response = tu.post_update(client, update)
    assert response.status_code == 200, response.data


def test_bodies_that_are_not_updates_get_400(client, rt, standin):
    before = table_counts(rt)
    for raw in (b"", b"null", b"[]", b'"text"', b"42", b'{"message": {}}', b'{"update_id": "7"}',
                b'{"update_id": -1}', b'{"update_id": 1.5}', b'{"update_id": true}', b"[" * 100_000,
                b'{"update_id": 99999999999999999999999999, "message": {}}'):
        response = tu.post_update(client, None, raw=raw)
        assert 400 <= response.status_code < 500, (raw[:80], response.status_code)
    assert table_counts(rt) == before


def test_a_huge_update_gets_413_and_stores_nothing(client, rt, standin):
    before = table_counts(rt)
    response = tu.post_update(client, tu.text_update(USERS[0], "/start " + "x" * 400_000))
    assert response.status_code == 413
    assert table_counts(rt) == before


def test_parse_update_raises_only_bad_update(catalog):
    """The parser alone, on a few thousand damaged updates: an Event or BadUpdate, nothing else."""
    for seed in range(2000):
        rnd = random.Random(seed)
        update = rnd.choice(shapes(rnd.choice(USERS)))
        for target in rnd.sample(containers(update), k=min(2, len(containers(update)))):
            if target:
                target[rnd.choice(sorted(target))] = rnd.choice(
                    ["7", 7, -7, 2 ** 80, 1.5, None, True, {}, [], {"id": "x"}, "\ud800", "", [["a"]]])
        try:
            event = telegram.parse_update(update)
        except telegram.BadUpdate:
            continue
        assert event.kind in (telegram.MESSAGE, telegram.CONTACT, telegram.MEMBER_STATUS, telegram.GROUP,
                              telegram.IGNORED)
        if event.inbound is not None:
            assert isinstance(event.inbound.address, str) and event.inbound.address.lstrip("-").isdigit()
            assert event.inbound.text is None or isinstance(event.inbound.text, str)


# --- regressions: each of these was a 500 before (found by the fuzz above) ---------------------------


def _with(update: dict, kind: str, **fields) -> dict:
    return {**update, kind: {**update[kind], **fields}}


def _text(**fields):
    return _with(tu.text_update(7_777_777, "x"), "message", **fields)


REGRESSIONS = {  # name: (update, status now)
    "text is a number": (lambda: _text(text=5), 400),  # AttributeError in text_inbound
    "text is an object": (lambda: _text(text={"a": 1}), 400),
    "caption is a number": (lambda: _with(tu.photo_update(7_777_777), "message", caption=5), 400),
    "date out of range": (lambda: _text(date=10 ** 20), 400),  # OverflowError in de_json
    "user id over 64 bits": (lambda: _text(**{"from": {"id": 10 ** 70, "is_bot": False, "first_name": "A"}}), 400),
    "update_id over 64 bits": (lambda: {**tu.text_update(7_777_777, "x"), "update_id": 10 ** 70}, 400),  # PostgreSQL
    "language_code is a number": (lambda: _with(tu.contact_update(7_777_777, "+13125550101"), "message", **{
        "from": {"id": 7_777_777, "is_bot": False, "first_name": "A", "language_code": 5}}), 400),
    "button data is a number": (lambda: _with(tu.callback_update(7_777_777, "x"), "callback_query", data=5), 400),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REGRESSIONS))
def test_damaged_updates_that_were_500s(client, rt, standin, name):
    make, status = REGRESSIONS[name]
    before = table_counts(rt)
    response = tu.post_update(client, make())
    assert response.status_code == status, response.data
    assert b"wrong type" in response.data or b"does not parse" in response.data or b"64-bit" in response.data
    assert table_counts(rt) == before


def test_a_lone_surrogate_in_a_name_is_read_as_a_replacement_character(client, rt, standin):
    # It reached the database as a name, which neither SQLite nor PostgreSQL can encode: a 500.
    assert tu.post_update(client, tu.text_update(7_777_777, "/start end-scomm")).status_code == 200
    raw = json.dumps(tu.text_update(7_777_777, "Ana \ud800 Lopez")).encode()  # written "\ud800"
    assert b"\\ud800" in raw
    response = tu.post_update(client, None, raw=raw)
    assert response.status_code == 200
    assert response.get_json()["text"] == "Thanks, Ana \ufffd Lopez. Now reply with your 5-digit ZIP code."
    check_no_partial_rows(rt)
