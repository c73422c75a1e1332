"""The SMS webhook end to end: Twilio-signed form posts in, TwiML out, rows in the database."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from storage.models import ConsentEvent, Member, ProcessedMessage, Signature
from tests.support.twilio_client import messages, new_sid, post_sms, sign, sms_params

PHONE = "+13125550101"


def sign_up(client, phone=PHONE, keyword="SCOMM", name="Ana María López", zip_code="60601"):
    return [messages(post_sms(client, phone, text)) for text in (keyword, name, zip_code)]


def count(rt, model, *where):
    with rt.db.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(model).where(*where))


def test_signing_in_english(client, rt):
    first, second, third = sign_up(client)
    assert len(first) == 2
    assert first[0].startswith("End S-Comm Now:")
    assert "reply with your full name" in first[1] and "Msg & data rates may apply" in first[1]
    assert second == ["Thanks, Ana Maria Lopez. Now reply with your 5-digit ZIP code."]
    assert "Chicago, IL" in third[0] and "signed" in third[0]
    with rt.db.uow() as uow:
        sig = uow.session.scalars(select(Signature)).one()
        assert (sig.name, sig.zip_code, sig.city, sig.state, sig.language, sig.channel) == \
            ("Ana María López", "60601", "Chicago", "IL", "en", "sms")
    assert client.get("/api/campaigns/end-scomm").get_json() == \
        {"slug": "end-scomm", "title": "End S-Comm Now", "signatures": 1, "goal": 100000}


def test_signing_in_spanish(client, rt):
    first, second, third = sign_up(client, keyword="firma", name="José Núñez", zip_code="78520")
    assert first[0].startswith("Fin a S-Comm Ya:")
    assert "nombre completo" in first[1] and "PARAR" in first[1]
    assert "codigo postal" in second[0]
    assert "Brownsville, TX" in third[0] and "firmo" in third[0]
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Signature.language)).one() == "es"


def test_a_webhook_ignores_any_session_cookie_and_sets_none(client, rt):
    """A provider never holds a staff session: a cookie sent along (a forged one) is not read, and the
    answer sets none; the message is handled all the same."""
    client.set_cookie("firma_session", "forged.cookie.value", domain="localhost")
    r = post_sms(client, "+13125550111", "SCOMM")
    assert r.status_code == 200 and "End S-Comm Now" in messages(r)[0]
    assert "Set-Cookie" not in r.headers


def test_twiml_content_type_and_escaping(client):
    post_sms(client, PHONE, "SCOMM")
    response = post_sms(client, PHONE, "Tom <b> & Jerry")
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert b"Tom &lt;b&gt; &amp; Jerry" in response.data


def test_replayed_message_sid_has_no_second_effect(client, rt):
    post_sms(client, PHONE, "SCOMM")
    post_sms(client, PHONE, "Ana López")
    sid = new_sid()
    first = post_sms(client, PHONE, "60601", sid=sid)
    again = post_sms(client, PHONE, "60601", sid=sid)
    assert again.status_code == 200
    assert messages(again) == messages(first)  # Twilio retried because it lost our answer: same answer
    assert count(rt, Signature) == 1
    assert client.get("/api/campaigns/end-scomm").get_json()["signatures"] == 1
    assert count(rt, ProcessedMessage) == 3


def test_a_retry_of_a_message_answered_before_an_upgrade_gets_its_answer(client, rt):
    """Replies stored by an earlier version (a bare list, before the language was kept) still replay."""
    sid = new_sid()
    post_sms(client, PHONE, "SCOMM", sid=sid)
    with rt.db.uow() as uow:
        uow.session.query(ProcessedMessage).filter_by(provider_id=sid).update({"response": '["Kept from before"]'})
        uow.commit()
    assert messages(post_sms(client, PHONE, "SCOMM", sid=sid)) == ["Kept from before"]


@pytest.mark.parametrize("header", [None, "", "bogus", "AAAA"])
def test_forged_or_missing_signature_is_403_and_stores_nothing(client, rt, header):
    params = sms_params(PHONE, "SCOMM")
    headers = {} if header is None else {"X-Twilio-Signature": header}
    r = client.post("/webhooks/twilio/sms", data=urlencode(params), headers=headers,
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 403
    assert count(rt, Member) == 0 and count(rt, ProcessedMessage) == 0


def test_signature_for_other_body_or_url_is_rejected(client, rt):
    params = sms_params(PHONE, "SCOMM")
    signature = sign(params)
    tampered = dict(params, Body="STOP")
    r = client.post("/webhooks/twilio/sms", data=urlencode(tampered), headers={"X-Twilio-Signature": signature},
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 403
    r = post_sms(client, PHONE, "SCOMM", url="https://evil.example.org/webhooks/twilio/sms")
    assert r.status_code == 403
    r = post_sms(client, PHONE, "SCOMM", token="another-token")
    assert r.status_code == 403
    assert count(rt, Member) == 0


def test_signature_checked_against_request_url_without_public_url(app, rt):
    from dataclasses import replace

    rt.settings = replace(rt.settings, public_url=None)
    client = app.test_client()
    assert post_sms(client, PHONE, "SCOMM").status_code == 403  # signed for the public URL
    assert post_sms(client, PHONE, "SCOMM", url="http://localhost/webhooks/twilio/sms").status_code == 200


def test_no_auth_token_means_503(app, rt):
    from dataclasses import replace

    rt.settings = replace(rt.settings, twilio_auth_token=None)
    assert post_sms(app.test_client(), PHONE, "SCOMM").status_code == 503


@pytest.mark.parametrize("change,reason", [
    ({"MessageSid": ""}, b"MessageSid"), ({"From": ""}, b"From"), ({"From": "not-a-number"}, b"E.164"),
    ({"MessageSid": "SMnothex"}, b"MessageSid"), ({"NumMedia": "lots"}, b"NumMedia"),
])
def test_malformed_but_signed_is_400_and_stores_nothing(client, rt, change, reason):
    params = sms_params(PHONE, "SCOMM")
    params.update(change)
    params["SmsSid"] = params["MessageSid"]
    r = client.post("/webhooks/twilio/sms", data=urlencode(params), headers={"X-Twilio-Signature": sign(params)},
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400 and reason in r.data
    assert count(rt, Member) == 0 and count(rt, ProcessedMessage) == 0


def test_repeated_field_is_400(client, rt):
    params = list(sms_params(PHONE, "SCOMM").items()) + [("From", "+13125550199")]
    r = client.post("/webhooks/twilio/sms", data=urlencode(params), headers={"X-Twilio-Signature": sign(params)},
                    content_type="application/x-www-form-urlencoded")
    assert r.status_code == 400
    assert count(rt, Member) == 0


def test_json_body_is_rejected_not_500(client):
    r = client.post("/webhooks/twilio/sms", data="{}", content_type="application/json",
                    headers={"X-Twilio-Signature": "x"})
    assert r.status_code == 403


def test_stop_start_help_are_logged_with_the_text_sent(client, rt):
    sign_up(client)
    stop = messages(post_sms(client, PHONE, "stop"))
    assert "unsubscribed" in stop[0]
    assert messages(post_sms(client, PHONE, "SCOMM please")) == []  # STOP means stop
    help_ = messages(post_sms(client, PHONE, "HELP"))
    assert "presente.org/contact" in help_[0]
    start = messages(post_sms(client, PHONE, "START"))
    assert "subscribed again" in start[0]
    with rt.db.uow() as uow:
        events = uow.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        assert [(e.kind, e.cause, e.channel) for e in events] == [
            ("opt_in", "SCOMM", "sms"), ("opt_out", "STOP", "sms"), ("help", "HELP", "sms"), ("opt_in", "START", "sms")]
        assert events[1].text_sent == stop[0] and events[2].text_sent == help_[0]
        assert "Msg & data rates may apply" in events[0].text_sent
        member = uow.session.scalars(select(Member)).one()
        assert member.opted_out_at is None


def test_advanced_opt_out_recorded_without_second_confirmation(client, rt):
    sign_up(client)
    assert messages(post_sms(client, PHONE, "STOP", OptOutType="STOP")) == []
    with rt.db.uow() as uow:
        member = uow.session.scalars(select(Member)).one()
        assert member.opted_out_at is not None
        event = uow.session.scalars(select(ConsentEvent).where(ConsentEvent.kind == "opt_out")).one()
        assert event.cause == "OptOutType:STOP:STOP" and event.text_sent is None
    assert messages(post_sms(client, PHONE, "START", OptOutType="START")) == []
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Member)).one().opted_out_at is None


def test_utf8_names_round_trip_into_the_export(client, rt, runner):
    from webhooks.cli import main

    sign_up(client, name="Zoë Ñandú-Çelik 李")
    sign_up(client, phone="+13125550102", name="=HYPERLINK(\"x\")", zip_code="10001")
    with rt.db.uow() as uow:
        uow.session.execute(Member.__table__.update().where(Member.address == "+13125550102")
                            .values(opted_out_at=rt.now()))
        uow.commit()
    from bots.exports import export_lines

    text = "".join(export_lines(rt, "end-scomm", include_contact=True))
    assert "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == ["signed_at", "campaign", "channel", "name", "zip", "city", "state", "language",
                             "opted_out", "contact"]
    assert rows[0]["name"] == "Zoë Ñandú-Çelik 李" and rows[0]["opted_out"] == "false"
    assert rows[0]["signed_at"] == "2026-11-27T18:00:00Z" and rows[0]["contact"] == PHONE
    assert rows[1]["name"] == "'=HYPERLINK(\"x\")" and rows[1]["opted_out"] == "true"
    assert rows[1]["city"] == "New York" and rows[1]["state"] == "NY"


def test_simulated_members_are_not_counted_or_exported(client, rt):
    import re

    page = client.get("/simulator/").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)  # CSRF
    for text in ("SCOMM", "Sim Person", "60601"):
        r = client.post("/simulator/send", json={"channel": "sms", "address": "+15550001111", "text": text},
                        headers={"X-CSRFToken": token})
        assert r.status_code == 200
    assert "Chicago" in r.get_json()["messages"][0]
    assert count(rt, Signature) == 1
    assert client.get("/api/campaigns/end-scomm").get_json()["signatures"] == 0
    from bots.exports import export_lines

    assert "".join(export_lines(rt, "end-scomm")).count("\r\n") == 1  # header only


def test_health_and_unknown_campaign(client):
    assert client.get("/healthz").status_code == 200
    r = client.get("/api/campaigns/nope")
    assert r.status_code == 404 and "nope" in r.get_json()["error"]


def test_export_times_are_utc_whatever_the_database_sessions_time_zone(client, rt, settings, db_kind):
    """PostgreSQL hands timestamps back in the session's TimeZone (a server set up in Chicago, say); the
    export reads them as the driver gives them (no per-row conversion by the models, for speed at a
    million rows) and turns each into UTC itself. On SQLite they are stored in UTC, without a zone."""
    from sqlalchemy import text

    from bots.exports import _row
    from storage import repository as repo
    from storage.uow import Database

    sign_up(client)
    chicago = db_kind == "postgresql"
    db = Database(settings.database_url, connect_args={"options": "-c timezone=America/Chicago"}) if chicago else rt.db
    try:
        with db.reader() as uow:
            if chicago:
                assert uow.session.execute(text("SHOW timezone")).scalar() == "America/Chicago"
            rows = [_row(row, include_contact=False) for row in repo.stream_export(uow.session, "end-scomm")]
    finally:
        if chicago:
            db.dispose()
    assert [r[0] for r in rows] == ["2026-11-27T18:00:00Z"]


def test_names_that_hide_a_formula_are_neutralised_in_the_export(client, rt):
    """Bidi isolates around a formula leave the name when it is signed; a fullwidth ＝, or invisible
    characters before a formula in a row stored before the cleaner existed, get the apostrophe too."""
    from bots.exports import export_lines

    sign_up(client, name="\u2066=HYPERLINK(\"http://x\")\u2069")
    sign_up(client, phone="+13125550102", name="＝HYPERLINK(\"http://x\")", zip_code="10001")
    sign_up(client, phone="+13125550103", name="Ana Old Row", zip_code="10001")
    sign_up(client, phone="+13125550104", name="Ana Old Row Two", zip_code="10001")
    with rt.db.uow() as uow:
        uow.session.execute(Signature.__table__.update().where(Signature.name == "Ana Old Row")
                            .values(name="\u200b\u2066+SUM(1,2)\u2069"))
        uow.session.execute(Signature.__table__.update().where(Signature.name == "Ana Old Row Two")
                            .values(name="\u00ad\ufe6bcmd"))
        uow.commit()
    with rt.db.uow() as uow:
        assert "\u2066" not in uow.session.scalars(select(Signature.name).order_by(Signature.id)).first()
    rows = list(csv.DictReader(io.StringIO("".join(export_lines(rt, "end-scomm")))))
    assert [r["name"] for r in rows] == ["'=HYPERLINK(\"http://x\")", "'＝HYPERLINK(\"http://x\")",
                                         "'\u200b\u2066+SUM(1,2)\u2069", "'\u00ad\ufe6bcmd"]
