"""WhatsApp broadcasts end to end against the Twilio stand-in (the real twilio client runs): free text
inside the 24-hour window, an approved template (Content API) outside it or nothing, WhatsApp's
error codes, one message per person across SMS and WhatsApp, status callbacks."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, update

from bots import broadcasts
from bots.worker import Options, run_worker
from bots.broadcasts import BroadcastError, BroadcastRequest
from bots.runtime import utcnow
from storage.models import ConsentEvent, Member
from tests.support import broadcasts as h
from tests.support.standins import (TWILIO_UNSUBSCRIBED, WHATSAPP_INVALID_RECIPIENT, WHATSAPP_NOT_ON_WHATSAPP,
                                    WHATSAPP_OUTSIDE_WINDOW, WHATSAPP_RATE_LIMITED)
from tests.support.twilio_client import PUBLIC_URL, WHATSAPP_NUMBER, post_sms, post_whatsapp, sign

TEMPLATE = "HX" + "ab" * 16
ANA, BETO = "+13125550141", "+13125550142"


@pytest.fixture
def wrt(rt, twilio):
    rt.settings = h.settings_for(rt, twilio, twilio_whatsapp_from=WHATSAPP_NUMBER, whatsapp_rate=1000.0)
    return rt


def sign_on_whatsapp(client, phone, name, keyword="FIRMA"):
    for text in (keyword, name, "60601"):
        assert post_whatsapp(client, phone, text).status_code == 200


def last_seen(rt, phone, ago: timedelta, channel="whatsapp"):
    with rt.db.uow() as uow:
        uow.session.execute(update(Member).where(Member.channel == channel, Member.address == phone)
                            .values(last_seen_at=utcnow() - ago))
        uow.commit()


def member(rt, channel, phone) -> Member:
    with rt.db.uow() as uow:
        m = uow.session.scalars(select(Member).where(Member.channel == channel, Member.address == phone)).one()
        uow.session.expunge(m)
        return m


def drain(rt):
    rt.clock = utcnow
    return run_worker(rt, Options(drain=True, poll=0.1))


def test_free_text_inside_the_window_none_outside_without_a_template(wrt, twilio, client):
    sign_on_whatsapp(client, ANA, "Ana María López")
    sign_on_whatsapp(client, BETO, "Beto Núñez")
    wrt.clock = utcnow
    last_seen(wrt, ANA, timedelta(hours=2))
    last_seen(wrt, BETO, timedelta(days=3))
    req = BroadcastRequest("end-scomm", "Hi {first_name}!", "¡Hola {first_name}! Mañana votamos.", channel="whatsapp")
    pv = broadcasts.preview(wrt, req)
    assert pv.recipients == {"whatsapp": 2} and pv.outside_window == {"whatsapp": 1}
    assert any("1 outside the WhatsApp window" in w and "not sent" in w for w in pv.warnings)
    b = broadcasts.create_broadcast(wrt, req)
    stats = drain(wrt)
    assert stats["sent"] == 1 and stats["outside_window"] == 1
    [sent] = twilio.messages
    assert sent["To"] == "whatsapp:" + ANA and sent["From"] == WHATSAPP_NUMBER
    assert sent["Body"] == "¡Hola Ana! Mañana votamos. Responde STOP para no recibir más mensajes."  # accents kept
    assert sent["StatusCallback"] == PUBLIC_URL + "/webhooks/twilio/status"
    assert h.status_of(wrt, b.id) == {"sent": 1, "outside_window": 1}
    assert broadcasts.progress(wrt, b.id).open == 0


def test_outside_the_window_the_approved_template_goes(wrt, twilio, client):
    sign_on_whatsapp(client, BETO, "Beto Núñez")
    wrt.clock = utcnow
    last_seen(wrt, BETO, timedelta(days=3))
    req = BroadcastRequest("end-scomm", "Hi {first_name}!", channel="whatsapp", window_template=TEMPLATE)
    pv = broadcasts.preview(wrt, req)
    assert any(f"get the approved template {TEMPLATE}" in w for w in pv.warnings)
    b = broadcasts.create_broadcast(wrt, req)
    drain(wrt)
    [sent] = twilio.messages
    assert sent["To"] == "whatsapp:" + BETO and sent["ContentSid"] == TEMPLATE and "Body" not in sent
    assert json.loads(sent["ContentVariables"]) == {"1": "Beto"}
    assert h.status_of(wrt, b.id) == {"sent": 1}


def test_a_bad_template_sid_is_refused_before_anything_is_written(wrt):
    with pytest.raises(BroadcastError, match="Content SID"):
        broadcasts.create_broadcast(wrt, BroadcastRequest("end-scomm", "Hi", window_template="hello"))


def test_63016_retries_as_the_template_or_counts_outside_the_window(wrt, twilio, client):
    sign_on_whatsapp(client, ANA, "Ana López")
    wrt.clock = utcnow
    last_seen(wrt, ANA, timedelta(hours=1))  # inside by our clock; WhatsApp says otherwise
    twilio.fail("whatsapp:" + ANA, WHATSAPP_OUTSIDE_WINDOW, None)
    b = broadcasts.create_broadcast(wrt, BroadcastRequest("end-scomm", "Hi", channel="whatsapp",
                                                          window_template=TEMPLATE))
    drain(wrt)
    assert [m.get("ContentSid") for m in twilio.messages] == [None, TEMPLATE]
    assert h.status_of(wrt, b.id) == {"sent": 1}

    twilio.fail("whatsapp:" + ANA, WHATSAPP_OUTSIDE_WINDOW)
    b2 = broadcasts.create_broadcast(wrt, BroadcastRequest("end-scomm", "Again", channel="whatsapp"))
    drain(wrt)
    assert h.status_of(wrt, b2.id) == {"outside_window": 1}
    assert member(wrt, "whatsapp", ANA).opted_out_at is None


@pytest.mark.parametrize("failure", [WHATSAPP_NOT_ON_WHATSAPP, WHATSAPP_INVALID_RECIPIENT])
def test_not_on_whatsapp_makes_the_member_unreachable_there(wrt, twilio, client, failure):
    sign_on_whatsapp(client, ANA, "Ana López")
    wrt.clock = utcnow
    last_seen(wrt, ANA, timedelta(hours=1))
    twilio.fail("whatsapp:" + ANA, failure)
    b = broadcasts.create_broadcast(wrt, BroadcastRequest("end-scomm", "Hi", channel="whatsapp"))
    drain(wrt)
    assert h.status_of(wrt, b.id) == {"failed": 1}
    assert member(wrt, "whatsapp", ANA).unreachable_at is not None


def test_21610_opts_out_on_whatsapp_only(wrt, twilio, client):
    for text in ("SCOMM", "Ana López", "60601"):
        post_sms(client, ANA, text)
    post_whatsapp(client, ANA, "HELP")
    wrt.clock = utcnow
    last_seen(wrt, ANA, timedelta(hours=1))
    twilio.fail("whatsapp:" + ANA, TWILIO_UNSUBSCRIBED)
    broadcasts.create_broadcast(wrt, BroadcastRequest("end-scomm", "Hi", channel="whatsapp"))
    drain(wrt)
    assert member(wrt, "whatsapp", ANA).opted_out_at is not None
    assert member(wrt, "sms", ANA).opted_out_at is None
    with wrt.db.uow() as uow:
        causes = [(e.channel, e.cause) for e in uow.session.scalars(
            select(ConsentEvent).where(ConsentEvent.kind == "opt_out"))]
    assert causes == [("whatsapp", "twilio:21610")]


def test_63018_pauses_the_channel_and_the_message_goes_later(wrt, twilio, client):
    sign_on_whatsapp(client, ANA, "Ana López")
    wrt.clock = utcnow
    last_seen(wrt, ANA, timedelta(hours=1))
    twilio.fail("whatsapp:" + ANA, WHATSAPP_RATE_LIMITED, None)
    from bots.channels import whatsapp

    whatsapp.PAUSE_SECONDS, saved = 0.3, whatsapp.PAUSE_SECONDS
    try:
        b = broadcasts.create_broadcast(wrt, BroadcastRequest("end-scomm", "Hi", channel="whatsapp"))
        stats = drain(wrt)
    finally:
        whatsapp.PAUSE_SECONDS = saved
    assert stats["paused"] == 1 and h.status_of(wrt, b.id) == {"sent": 1}
    assert len(twilio.messages) == 2


def test_one_person_gets_one_message_on_the_channel_they_last_wrote_on(wrt, twilio, client):
    for text in ("SCOMM", "Ana López", "60601"):
        post_sms(client, ANA, text)
    post_whatsapp(client, ANA, "HELP")  # then wrote on WhatsApp
    wrt.clock = utcnow
    last_seen(wrt, ANA, timedelta(hours=3), channel="sms")
    last_seen(wrt, ANA, timedelta(hours=1))
    pv = broadcasts.preview(wrt, BroadcastRequest("end-scomm", "Hi {first_name}"))
    assert pv.recipients == {"whatsapp": 1}
    assert broadcasts.preview(wrt, BroadcastRequest("end-scomm", "Hi", channel="sms")).recipients == {"sms": 1}
    broadcasts.create_broadcast(wrt, BroadcastRequest("end-scomm", "Hi {first_name}"))
    drain(wrt)
    assert [m["To"] for m in twilio.messages] == ["whatsapp:" + ANA]
    # stopped on WhatsApp: `all` reaches them by SMS
    post_whatsapp(client, ANA, "STOP")
    assert broadcasts.preview(wrt, BroadcastRequest("end-scomm", "Hi")).recipients == {"sms": 1}
    assert broadcasts.preview(wrt, BroadcastRequest("end-scomm", "Hi", channel="whatsapp")).recipients == {}


def _post_status(client, **params):
    path = "/webhooks/twilio/status"
    return client.post(path, data=urlencode(params), content_type="application/x-www-form-urlencoded",
                       headers={"X-Twilio-Signature": sign(params, PUBLIC_URL + path)})


def test_status_callbacks_map_whatsapp_errors(wrt, twilio, client):
    sign_on_whatsapp(client, ANA, "Ana López")
    sign_on_whatsapp(client, BETO, "Beto Núñez")
    wrt.clock = utcnow
    last_seen(wrt, ANA, timedelta(hours=1))
    last_seen(wrt, BETO, timedelta(hours=1))
    b = broadcasts.create_broadcast(wrt, BroadcastRequest("end-scomm", "Hi", channel="whatsapp"))
    drain(wrt)
    sids = {d.address: d.provider_id for d in h.deliveries(wrt, b.id)}
    assert _post_status(client, MessageSid=sids[ANA], MessageStatus="undelivered", ErrorCode="63016",
                        To="whatsapp:" + ANA, From=WHATSAPP_NUMBER).status_code == 204
    assert _post_status(client, MessageSid=sids[BETO], MessageStatus="failed", ErrorCode="63024",
                        To="whatsapp:" + BETO, From=WHATSAPP_NUMBER).status_code == 204
    assert {d.address: d.status for d in h.deliveries(wrt, b.id)} == {ANA: "outside_window", BETO: "failed"}
    assert member(wrt, "whatsapp", BETO).unreachable_at is not None
    assert member(wrt, "whatsapp", ANA).unreachable_at is None


def test_quiet_hours_hold_whatsapp_broadcasts_as_they_hold_sms(wrt, twilio, client):
    from config.settings import parse_quiet_hours

    sign_on_whatsapp(client, ANA, "Ana López")
    wrt.clock = utcnow
    last_seen(wrt, ANA, timedelta(hours=1))
    wrt.settings = wrt.settings.with_(quiet_hours=parse_quiet_hours("00:00-23:59"))
    created = broadcasts.create_broadcast(wrt, BroadcastRequest("end-scomm", "Hi", channel="whatsapp"))
    assert created.held == 1
    drain(wrt)
    assert twilio.messages == [] and h.status_of(wrt, created.id) == {"held": 1}


def test_the_whatsapp_rate_setting():
    from bots.channels.whatsapp import WHATSAPP
    from config.settings import Settings, SettingsError

    assert WHATSAPP.rate(Settings.from_env({})) == 10.0
    assert WHATSAPP.rate(Settings.from_env({"FIRMA_WHATSAPP_RATE": "80"})) == 80.0
    with pytest.raises(SettingsError, match="FIRMA_WHATSAPP_RATE"):
        Settings.from_env({"FIRMA_WHATSAPP_RATE": "fast"})


def test_without_a_whatsapp_sender_the_worker_says_what_is_missing(rt):
    from bots.worker import make_senders
    from bots.broadcast_plan import BroadcastError

    with pytest.raises(BroadcastError, match="TWILIO_WHATSAPP_FROM"):
        make_senders(rt, ("whatsapp",), required=True)
