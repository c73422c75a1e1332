"""Property-based tests of the other endpoints that take input: the simulator's JSON and the public
counter's slug. Always a 2xx or a 4xx, never a 500; nothing stored for a refused request."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import given, strategies as st

from tests.reliability.test_sms_fuzz import ENDPOINT_EXAMPLES, check_no_partial_rows, table_counts

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) |
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6)
fields = st.fixed_dictionaries({}, optional={
    "channel": st.one_of(st.sampled_from(["sms", "telegram"]), json_values),
    "address": st.one_of(st.sampled_from(["+13125550101", "4242", "a" * 33, "", "x y"]), json_values),
    # (a lone surrogate, as JSON can spell it: "\ud800")
    "text": st.one_of(st.sampled_from(["SCOMM", "/start end-scomm", "/start \x00", "Ana\x00", "60601", "STOP",
                                       "/language xx", "x" * 1601, "Ana \ud800 López"]), json_values),
    "language": st.one_of(st.sampled_from(["es", "en-US", "", "\x00"]), json_values),
})
conversations = st.fixed_dictionaries({  # well-formed envelopes, so texts reach a conversation under way
    "channel": st.sampled_from(["sms", "telegram"]), "address": st.just("4242"),
    "text": st.sampled_from(["SCOMM", "/start", "Ana \ud800 López", "Ana\x00 Ló", "60601", "\u200fFIRMA"]),
})
bodies = st.one_of(conversations.map(lambda d: json.dumps(d).encode()), conversations.map(lambda d: json.dumps(d).encode()),
                   fields.map(lambda d: json.dumps(d).encode()),
                   json_values.map(lambda v: json.dumps(v).encode()),
                   st.binary(max_size=200),
                   st.sampled_from([b'{"channel": "sms", "address": "1", "text": "\xff\xfe"}', b"{", b"",
                                    b'{"channel": "sms", "address": "1", "text": "\\ud800"}']))


@pytest.mark.slow
@ENDPOINT_EXAMPLES
@given(st.lists(st.tuples(bodies, st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"])),
                min_size=1, max_size=6))
def test_simulator_send_never_500(client, rt, clock, requests):
    from tests.support.simulator import headers

    csrf = headers(client)
    for body, content_type in requests:
        clock.advance(seconds=3)
        before = table_counts(rt)
        response = client.post("/simulator/send", data=body, content_type=content_type, headers=csrf)
        assert response.status_code < 500, (body, response.status_code, response.data[:200])
        if response.status_code != 200:
            assert table_counts(rt) == before
        else:
            assert isinstance(response.get_json()["messages"], list)
        check_no_partial_rows(rt)


@ENDPOINT_EXAMPLES
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80))
def test_campaign_counter_never_500(client, slug):
    response = client.get("/api/campaigns/" + quote(slug, safe=""))
    assert response.status_code in (200, 404, 308), (slug, response.status_code)
