"""The WhatsApp channel end to end: Twilio-signed WhatsApp posts in (on either Twilio path), TwiML
out, one person across SMS and WhatsApp, consent per channel."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from storage.models import ConsentEvent, Member, Signature
from tests.e2e.test_staff import csrf_token, fast_hashing, sign_in, staff_user  # noqa: F401, F811 - fixtures
from tests.support.twilio_client import (SMS_PATH, WHATSAPP_PATH, messages, new_sid, post_sms, post_whatsapp,
                                        whatsapp_params)

PHONE = "+13125550177"


def say(client, text, phone=PHONE, **kw):
    r = post_whatsapp(client, phone, text, **kw)
    assert r.status_code == 200, r.data
    return messages(r)


def test_signing_in_spanish_keeps_accents_and_the_full_statement(client, rt, catalog):
    first = say(client, "FIRMA")
    statement = catalog.campaigns["end-scomm"].text("es").statement
    assert first[0].startswith("Fin a S-Comm Ya") and statement in first[0]  # the full statement
    assert "nombre completo" in first[1]
    # the one-line opt-in note, not the SMS carrier disclosure
    assert "PARAR para no recibir más mensajes" in first[1] and "tarifas" not in first[1]
    assert "código postal" in say(client, "José Núñez")[0]  # accents kept: no GSM-7 folding
    done = say(client, "78520")
    assert "José Núñez" in done[0] and "Brownsville, TX" in done[0] and "firmó" in done[0]
    with rt.db.uow() as uow:
        sig = uow.session.scalars(select(Signature)).one()
        assert (sig.channel, sig.name, sig.language) == ("whatsapp", "José Núñez", "es")
        member = uow.session.get(Member, sig.member_id)
        assert (member.channel, member.address) == ("whatsapp", PHONE)


def test_the_sms_path_takes_whatsapp_messages_too(client, rt):
    first = say(client, "SCOMM", path=SMS_PATH)
    assert first[0].startswith("End S-Comm Now") and "Reply STOP to stop." in first[1]
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Member.channel)).one() == "whatsapp"


def test_a_bad_signature_is_refused_before_anything_is_stored(client, rt):
    r = post_whatsapp(client, PHONE, "FIRMA", token="not-the-token")
    assert r.status_code == 403
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Member)) == 0


def test_a_replay_has_no_second_effect(client, rt):
    sid = new_sid()
    first = say(client, "FIRMA", sid=sid)
    again = say(client, "FIRMA", sid=sid)
    assert again == first
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(ConsentEvent)) == 1


def test_a_phoneless_whatsapp_id_is_a_clear_400(client, rt):
    params = whatsapp_params(PHONE, "FIRMA")
    params["From"] = "whatsapp:US.13491208655302741918"
    params.pop("WaId")
    r = post_whatsapp(client, PHONE, "", params=params)
    assert r.status_code == 400 and b"without a phone number" in r.data
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Member)) == 0


def test_media_locations_and_buttons(client, rt, catalog):
    say(client, "FIRMA")
    voice = say(client, "", NumMedia="1", MessageType="audio", MediaContentType0="audio/ogg",
                MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME")
    assert "nombre completo" in voice[-1]  # re-prompted, no error
    where = say(client, "", MessageType="location", Latitude="41.88", Longitude="-87.63")
    assert "nombre completo" in where[-1]
    say(client, "Ana López")
    # a template's quick-reply button: the payload is read, not the button's words
    stop = say(client, "Ya no, gracias", MessageType="button", ButtonText="Ya no, gracias", ButtonPayload="STOP")
    assert stop == [catalog.template("opted_out", "es").format(program=catalog.organization.program["es"])]
    with rt.db.uow() as uow:
        member = uow.session.scalars(select(Member)).one()
        assert member.opted_out_at is not None


def test_one_person_across_sms_and_whatsapp_with_consent_per_channel(client, rt):
    for text in ("SCOMM", "Ana López", "60601"):
        post_sms(client, PHONE, text)
    again = say(client, "SCOMM")
    # already signed, and this chat's first contact: the WhatsApp opt-in note, recorded for WhatsApp
    assert "already signed" in again[0] and again[0].endswith("Reply STOP to stop.")
    assert client.get("/api/campaigns/end-scomm").get_json()["signatures"] == 1
    with rt.db.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(ConsentEvent).where(
            ConsentEvent.channel == "whatsapp", ConsentEvent.kind == "opt_in")) == 1
    # STOP on WhatsApp stops WhatsApp, not SMS
    say(client, "STOP")
    with rt.db.uow() as uow:
        rows = {m.channel: m for m in uow.session.scalars(select(Member))}
        assert rows["whatsapp"].opted_out_at is not None and rows["sms"].opted_out_at is None
        assert rows["whatsapp"].person_id == rows["sms"].id
        kinds = [(e.channel, e.kind) for e in uow.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))]
        assert ("whatsapp", "opt_out") in kinds and ("sms", "opt_out") not in kinds
    assert messages(post_sms(client, PHONE, "HELP"))  # SMS still answers


def test_whatsapp_first_then_sms_is_one_person(client, rt):
    for text in ("SCOMM", "Ana López", "60601"):
        say(client, text)
    r = messages(post_sms(client, PHONE, "SCOMM"))
    assert "already signed" in r[0]
    assert client.get("/api/campaigns/end-scomm").get_json()["signatures"] == 1


def test_the_export_says_whatsapp_and_the_number_without_prefix(client, rt, db_url):
    for text in ("FIRMA", "José Núñez", "78520"):
        say(client, text)
    from click.testing import CliRunner

    from tests.e2e.test_cli import env_for
    from webhooks.cli import main

    result = CliRunner().invoke(main, ["export", "--campaign", "end-scomm", "--include-contact"],
                                env=env_for(db_url))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert rows[0]["channel"] == "whatsapp" and rows[0]["contact"] == PHONE and rows[0]["name"] == "José Núñez"


def test_the_member_page_shows_the_whatsapp_consent_history(client, rt, staff_user):
    for text in ("FIRMA", "Rosa Díaz", "60601", "STOP"):
        say(client, text)
    post_sms(client, PHONE, "HELP")  # the same number by SMS: two chats, one person
    assert sign_in(client).status_code == 303
    token = csrf_token(client, "/staff/members")
    r = client.post("/staff/members", data={"q": "(312) 555-0177", "csrf_token": token})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "WhatsApp" in page and "SMS" in page  # both chats are found
    with rt.db.uow() as uow:
        wa = uow.session.scalars(select(Member).where(Member.channel == "whatsapp")).one().id
    page = client.get(f"/staff/members/{wa}").get_data(as_text=True)
    assert "WhatsApp" in page and "Rosa Díaz" in page
    assert "Opted in" in page and "Opted out" in page and "<code>STOP</code>" in page


def test_the_simulator_offers_whatsapp_and_keeps_accents(client, rt):
    from tests.support.simulator import headers

    page = client.get("/simulator/").get_data(as_text=True)
    assert 'value="whatsapp"' in page and "WhatsApp" in page

    def sim(text):
        r = client.post("/simulator/send", json={"channel": "whatsapp", "address": "+13125550190", "text": text},
                        headers=headers(client))
        assert r.status_code == 200, r.data
        return r.get_json()["messages"]

    first = sim("FIRMA")
    assert first[0].startswith("Fin a S-Comm Ya") and "PARAR para no recibir más mensajes" in first[1]
    assert "código postal" in sim("Rosa Díaz")[0]
    assert "Rosa Díaz" in sim("60601")[0]
    assert client.get("/api/campaigns/end-scomm").get_json()["signatures"] == 0  # simulated: not counted


@pytest.mark.parametrize("path", [WHATSAPP_PATH, SMS_PATH])
@pytest.mark.parametrize("keyword,name,thanks", [("SCOMM", "Ana María López", "has signed"),
                                                 ("FIRMA", "José Núñez", "firmó")])
def test_signing_in_both_languages_on_both_paths(client, rt, path, keyword, name, thanks):
    say(client, keyword, path=path)
    say(client, name, path=path)
    done = say(client, "60601", path=path)
    assert name in done[0] and thanks in done[0]
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Signature.channel)).one() == "whatsapp"


@pytest.mark.parametrize("stop", ["STOP", "PARAR", "ya no me manden mensajes", "Cancelar"])
def test_firma_handles_stop_and_start_itself(client, rt, stop):
    say(client, "FIRMA")
    stopped = say(client, stop)
    assert "Cancelaste tu suscripción" in stopped[0]  # WhatsApp has no carrier STOP: firma answers
    assert say(client, "hola") == []  # STOP means stop
    helped = say(client, "AYUDA")
    assert "PARAR" in helped[0] and "tarifas" not in helped[0]
    back = say(client, "START")
    assert "aquí por WhatsApp" in back[0]
    with rt.db.uow() as uow:
        kinds = [e.kind for e in uow.session.scalars(select(ConsentEvent).order_by(ConsentEvent.id))]
        opted_out = uow.session.scalars(select(Member.opted_out_at)).one()
    assert kinds == ["opt_in", "opt_out", "help", "opt_in"] and opted_out is None
