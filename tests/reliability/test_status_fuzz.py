"""Property-based test of Twilio's status callbacks for broadcasts: whatever arrives, a 2xx or a 4xx,
never a 500; a refused callback changes nothing; a failed delivery stays failed."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, strategies as st

from bots import broadcasts
from bots.broadcasts import BroadcastRequest
from storage.models import Delivery
from tests.reliability.test_sms_fuzz import ENDPOINT_EXAMPLES, table_counts, unicode_text
from tests.support import broadcasts as h
from tests.support.twilio_client import PUBLIC_URL, new_sid, sign

PATH = "/webhooks/twilio/status"
STATUSES = ["queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled", "accepted",
            "scheduled", "receiving", "bogus", "", "DELIVERED", "failed\x00"]


@pytest.fixture
def sids(rt):
    """Two SMS deliveries that the provider has accepted (provider ids set as a worker would)."""
    h.add_signer(rt, "+13125550001")
    h.add_signer(rt, "+13125550002")
    broadcasts.create_broadcast(rt, BroadcastRequest("end-scomm", "Update"))
    out = []
    with rt.db.uow() as uow:
        for d in uow.session.query(Delivery).order_by(Delivery.id):
            d.provider_id = new_sid()
            d.status = "sent"
            out.append(d.provider_id)
        uow.commit()
    return out


@st.composite
def callbacks(draw, known):
    params = {
        "MessageSid": draw(st.one_of(st.sampled_from(known), st.just(new_sid()), unicode_text,
                                     st.sampled_from(["", "SM" + "z" * 32, "MM" + "a" * 32]))),
        "MessageStatus": draw(st.one_of(st.sampled_from(STATUSES), unicode_text)),
        "To": draw(st.sampled_from(["+13125550001", "+13125550002", "", "not-a-number", "+1" + "9" * 30])),
        "AccountSid": "AC" + "0" * 32,
    }
    if draw(st.booleans()):
        params["ErrorCode"] = draw(st.one_of(st.sampled_from(["21610", "30003", "0", "", "-1", "٣٠٠٠٣", "1" * 40,
                                                              "99999999999999999999999999999999999"]),
                                             unicode_text))
    for name in draw(st.lists(st.sampled_from(list(params)), max_size=2)):
        params.pop(name, None)
    pairs = list(params.items())
    if pairs and draw(st.booleans()):
        pairs.append(pairs[0])  # a repeated field
    signing = draw(st.sampled_from(["good", "good", "good", "none"]))
    return pairs, signing


@pytest.mark.slow
@ENDPOINT_EXAMPLES
@given(data=st.data())
def test_any_status_callback_gets_2xx_or_4xx_and_final_states_hold(client, rt, sids, data):
    pairs, signing = data.draw(callbacks(sids))
    raw = "&".join(quote(k, safe="") + "=" + quote(v, safe="") for k, v in pairs)
    headers = {}
    if signing == "good":
        from werkzeug.datastructures import MultiDict

        headers["X-Twilio-Signature"] = sign(MultiDict(pairs), PUBLIC_URL + PATH)
    before = table_counts(rt)
    with rt.db.uow() as uow:
        states_before = {d.provider_id: d.status for d in uow.session.query(Delivery)}
    response = client.post(PATH, data=raw, content_type="application/x-www-form-urlencoded", headers=headers)
    assert response.status_code < 500, (pairs, response.status_code, response.data[:200])
    if response.status_code >= 400:
        assert table_counts(rt) == before
    with rt.db.uow() as uow:
        for d in uow.session.query(Delivery):
            if states_before[d.provider_id] == "failed":
                assert d.status == states_before[d.provider_id]


@pytest.mark.parametrize("code", ["1" * 40, "٣٠٠٠٣", "21610x"])
def test_an_error_code_that_is_not_twilios_is_400(client, rt, sids, code):
    params = {"MessageSid": sids[0], "MessageStatus": "failed", "ErrorCode": code, "To": "+13125550001"}
    before = table_counts(rt)
    r = client.post(PATH, data=params, headers={"X-Twilio-Signature": sign(params, PUBLIC_URL + PATH)})
    assert r.status_code == 400 and table_counts(rt) == before
