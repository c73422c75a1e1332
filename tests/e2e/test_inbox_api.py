"""The inbox in the staff API (/api/staff/inbox…): the list with opaque member ids, a conversation's
messages, a reply that reaches the Twilio stand-in (202) or is refused (409), done (204); roles, and a
broadcast's replies counted from the inbox. Members write through signed Twilio webhooks."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bots import api_tokens
from bots import staff_accounts as svc
from bots.worker import Options, run_worker
from storage.models import AuditLog, ConsentEvent, Member
from tests.e2e.test_staff import PASSWORD, fast_hashing  # noqa: F401
from tests.support import broadcasts as h
from tests.support.twilio_client import post_sms

ANA, JOSE = "+13125550101", "+13125550102"
ADMIN, ORGANIZER, VIEWER = "admin@example.org", "organizer@example.org", "viewer@example.org"


@pytest.fixture
def tokens(rt, client, twilio):
    rt.settings = h.settings_for(rt, twilio)
    svc.add_staff(rt.db, ADMIN, PASSWORD, rt.now())
    svc.add_staff(rt.db, ORGANIZER, PASSWORD, rt.now())
    svc.add_staff(rt.db, VIEWER, PASSWORD, rt.now(), role="viewer")
    for phone, keyword, name in ((ANA, "SCOMM", "Ana López"), (JOSE, "FIRMA", "José Pérez")):
        for body in (keyword, name, "60601"):
            post_sms(client, phone, body)
    post_sms(client, ANA, "Can I volunteer on Saturdays?")
    rt.clock.advance(minutes=1)
    post_sms(client, JOSE, "¿Dónde es la reunión?")
    return {role: api_tokens.create_token(rt.db, email, f"{role} script", rt.now())[0]
            for role, email in (("admin", ADMIN), ("organizer", ORGANIZER), ("viewer", VIEWER))}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_list_and_conversation_name_members_by_opaque_ids(client, rt, tokens):
    r = client.get("/api/staff/inbox", headers=bearer(tokens["organizer"]))
    assert r.status_code == 200
    listed = r.get_json()
    assert [c["last_text"] for c in listed] == ["¿Dónde es la reunión?", "Can I volunteer on Saturdays?"]
    first = listed[0]
    assert set(first) == {"member", "channel", "language", "campaign", "last_text", "last_at", "status"}
    assert (first["channel"], first["language"], first["campaign"], first["status"]) == ("sms", "es", "end-scomm",
                                                                                          "open")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["last_at"])
    body = r.get_data(as_text=True)
    assert "3125550101" not in body and "3125550102" not in body and not first["member"].isdigit()

    ana = listed[1]["member"]
    thread = client.get(f"/api/staff/inbox/{ana}", headers=bearer(tokens["admin"])).get_json()
    assert thread["member"] == ana
    assert [(m["from"], m["text"][:30]) for m in thread["messages"]] == [
        ("member", "Can I volunteer on Saturdays?"), ("bot", "Thanks! Someone from our team ")]
    assert client.get("/api/staff/inbox?language=en", headers=bearer(tokens["organizer"])).get_json()[0]["member"] == ana
    assert client.get("/api/staff/inbox?status=done", headers=bearer(tokens["organizer"])).get_json() == []


def test_pages_link_the_next_one(client, tokens):
    r = client.get("/api/staff/inbox?limit=1", headers=bearer(tokens["organizer"]))
    assert len(r.get_json()) == 1
    nxt = re.fullmatch(r"<([^>]+)>; rel=\"next\"", r.headers["Link"]).group(1)
    second = client.get(nxt, headers=bearer(tokens["organizer"]))
    assert second.get_json()[0]["last_text"] == "Can I volunteer on Saturdays?"
    assert second.get_json()[0]["member"] != r.get_json()[0]["member"]


def test_reply_reaches_the_member_and_done_closes_it(client, rt, tokens, twilio):
    ana = client.get("/api/staff/inbox?language=en", headers=bearer(tokens["organizer"])).get_json()[0]["member"]
    r = client.post(f"/api/staff/inbox/{ana}/reply", json={"text": "Yes! Saturday 10am."},
                    headers=bearer(tokens["organizer"]))
    assert r.status_code == 202
    assert [m["Body"] for m in twilio.messages if m["To"] == ANA] == ["Yes! Saturday 10am."]
    thread = client.get(f"/api/staff/inbox/{ana}", headers=bearer(tokens["organizer"])).get_json()
    assert thread["messages"][-1] == {"at": thread["messages"][-1]["at"], "from": "staff", "text": "Yes! Saturday 10am."}
    assert client.post(f"/api/staff/inbox/{ana}/done", headers=bearer(tokens["organizer"])).status_code == 204
    assert [c["member"] for c in client.get("/api/staff/inbox?status=done",
                                            headers=bearer(tokens["organizer"])).get_json()] == [ana]
    with rt.db.reader() as uow:
        actions = [(a.staff_email, a.action) for a in uow.session.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert ("api:organizer script (organizer@example.org)", "inbox_reply") in actions
    assert ("api:organizer script (organizer@example.org)", "inbox_status") in actions


def test_an_opted_out_member_is_refused_with_409_and_the_reason(client, tokens, twilio):
    post_sms(client, JOSE, "PARAR")
    jose = client.get("/api/staff/inbox?language=es", headers=bearer(tokens["organizer"])).get_json()[0]["member"]
    r = client.post(f"/api/staff/inbox/{jose}/reply", json={"text": "Hola"}, headers=bearer(tokens["organizer"]))
    assert r.status_code == 409 and "opted out" in r.get_json()["error"]
    assert not [m for m in twilio.messages if m["To"] == JOSE and m["Body"] == "Hola"]


def test_wrong_bodies_unknown_members_and_roles(client, rt, tokens):
    org = bearer(tokens["organizer"])
    ana = client.get("/api/staff/inbox?language=en", headers=org).get_json()[0]["member"]
    assert client.post(f"/api/staff/inbox/{ana}/reply", json={"txt": "hi"}, headers=org).status_code == 422
    assert client.post(f"/api/staff/inbox/{ana}/reply", json={"text": ""}, headers=org).status_code == 422
    assert client.post(f"/api/staff/inbox/{ana}/reply", data="not json", headers=org).status_code == 422
    for unknown in ("m999999", "13125550101", "x"):
        assert client.get(f"/api/staff/inbox/{unknown}", headers=org).status_code == 404
        assert client.post(f"/api/staff/inbox/{unknown}/reply", json={"text": "hi"}, headers=org).status_code == 404
        assert client.post(f"/api/staff/inbox/{unknown}/done", headers=org).status_code == 404
    assert client.get("/api/staff/inbox?status=closed", headers=org).status_code == 422
    assert client.get("/api/staff/inbox?before=yesterday", headers=org).status_code == 422
    viewer = bearer(tokens["viewer"])
    assert client.get("/api/staff/inbox", headers=viewer).status_code == 403
    assert client.get(f"/api/staff/inbox/{ana}", headers=viewer).status_code == 403
    assert client.post(f"/api/staff/inbox/{ana}/reply", json={"text": "hi"}, headers=viewer).status_code == 403
    assert client.post(f"/api/staff/inbox/{ana}/done", headers=viewer).status_code == 403
    assert client.get("/api/staff/inbox").status_code == 401


def test_a_broadcast_counts_the_replies_its_recipients_wrote(client, rt, tokens, twilio):
    org = bearer(tokens["organizer"])
    r = client.post("/api/staff/broadcasts", json={"campaign": "end-scomm", "message": "We won!"}, headers=org)
    assert r.status_code == 201
    broadcast_id = r.get_json()["id"]
    run_worker(rt, Options(drain=True, poll=0.1))
    rt.clock.advance(hours=1)
    post_sms(client, ANA, "Amazing news, thank you")
    post_sms(client, JOSE, "HELP")  # not words for staff: not a reply
    info = client.get(f"/api/staff/broadcasts/{broadcast_id}", headers=org).get_json()
    assert info["replies_after"] == 1
    with rt.db.reader() as uow:
        assert uow.session.scalars(select(Member).where(Member.address == ANA)).one().opted_out_at is None


def test_a_whatsapp_reply_goes_within_24_hours_of_the_member_s_last_message_and_not_after(client, rt, tokens,
                                                                                           twilio):
    """Twilio refuses free text outside WhatsApp's window (63016): the reply is refused before it is
    sent, with the reason, and goes again once the member has written."""
    from tests.support.twilio_client import WHATSAPP_NUMBER, post_whatsapp

    rt.settings = rt.settings.with_(twilio_whatsapp_from=WHATSAPP_NUMBER)
    wa, org = "+13125550177", bearer(tokens["organizer"])
    for body in ("FIRMA", "Lupe Ramírez", "60614", "¿Puedo llevar a mis hijos?"):
        assert post_whatsapp(client, wa, body).status_code == 200
    lupe = client.get("/api/staff/inbox?channel=whatsapp", headers=org).get_json()[0]["member"]
    rt.clock.advance(hours=23, minutes=50)
    assert client.post(f"/api/staff/inbox/{lupe}/reply", json={"text": "¡Sí, claro!"}, headers=org).status_code == 202
    assert [(m["To"], m["Body"]) for m in twilio.messages] == [("whatsapp:" + wa, "¡Sí, claro!")]

    rt.clock.advance(minutes=20)  # 24 hours and 10 minutes after her last message
    r = client.post(f"/api/staff/inbox/{lupe}/reply", json={"text": "¿Vienes mañana?"}, headers=org)
    assert r.status_code == 409, r.get_json()
    assert "WhatsApp allows a free reply only within 24 hours of the member's last message" in r.get_json()["error"]
    assert len(twilio.messages) == 1  # the provider was not asked

    assert post_whatsapp(client, wa, "Hola otra vez").status_code == 200
    assert client.post(f"/api/staff/inbox/{lupe}/reply", json={"text": "¿Vienes mañana?"},
                       headers=org).status_code == 202
    assert [m["Body"] for m in twilio.messages][-1] == "¿Vienes mañana?"


def test_a_reply_with_a_control_character_is_refused_before_it_is_sent(client, tokens, twilio):
    """PostgreSQL cannot store a NUL: such a reply, once sent, could not be recorded in the consent log.
    It is refused first, with the reason."""
    org = bearer(tokens["organizer"])
    ana = client.get("/api/staff/inbox?language=en", headers=org).get_json()[0]["member"]
    for text in ("hi\x00there", "bell\x07"):
        r = client.post(f"/api/staff/inbox/{ana}/reply", json={"text": text}, headers=org)
        assert r.status_code == 422 and "control character" in r.get_json()["error"], (text, r.status_code)
    assert [m for m in twilio.messages if m["To"] == ANA] == []
    assert client.post(f"/api/staff/inbox/{ana}/reply", json={"text": "Two lines\n\tand a tab, 10\u00a0a.m. \U0001F469\u200d\U0001F467"},
                       headers=org).status_code == 202  # a pasted no-break space and a family emoji are text


def test_the_consent_log_names_who_replied_in_full(client, rt, tokens, twilio):
    """A staff reply is a message sent in the consent log's sense; its cause names the token and the
    staff member whole, however long the token's label."""
    label = "weekly volunteer follow-up from the Chicago field office"
    token, _ = api_tokens.create_token(rt.db, ORGANIZER, label, rt.now())
    ana = client.get("/api/staff/inbox?language=en", headers=bearer(token)).get_json()[0]["member"]
    assert client.post(f"/api/staff/inbox/{ana}/reply", json={"text": "See you Saturday!"},
                       headers=bearer(token)).status_code == 202
    with rt.db.reader() as uow:
        causes = [e.cause for e in uow.session.scalars(select(ConsentEvent).where(ConsentEvent.kind == "message"))]
    assert causes == [f"staff reply (api:{label} ({ORGANIZER}))"]


def test_a_sent_reply_the_database_cannot_record_is_still_a_202_with_a_warning(client, rt, tokens, twilio, monkeypatch):
    """The member has it: a script that saw an error would send it again."""
    from sqlalchemy.exc import OperationalError

    from bots import inbox

    def down(*args, **kwargs):
        raise OperationalError("INSERT INTO inbox_messages", {}, Exception("server closed the connection"))

    monkeypatch.setattr(inbox.q, "add_message", down)
    monkeypatch.setattr(inbox, "RECORD_RETRY_WAITS", (0.01,))
    ana = client.get("/api/staff/inbox?language=en", headers=bearer(tokens["organizer"])).get_json()[0]["member"]
    r = client.post(f"/api/staff/inbox/{ana}/reply", json={"text": "See you Saturday!"},
                    headers=bearer(tokens["organizer"]))
    assert r.status_code == 202 and r.get_json()["recorded"] is False and "do not send it again" in r.get_json()["warning"]
    assert [m["Body"] for m in twilio.messages if m["To"] == ANA] == ["See you Saturday!"]
