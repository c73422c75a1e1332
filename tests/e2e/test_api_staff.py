"""The staff API (/api/staff/): bearer tokens and roles, campaigns, signatures by cursor, broadcasts
with their follow-up. Through Flask's test client, on both databases."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bots import api_tokens
from bots import staff_accounts as svc
from storage.models import ApiToken, AuditLog
from tests.e2e.test_staff import PASSWORD, fast_hashing, sign_up  # noqa: F401

ADMIN, ORGANIZER, VIEWER = "admin@example.org", "organizer@example.org", "viewer@example.org"


@pytest.fixture
def tokens(rt):
    svc.add_staff(rt.db, ADMIN, PASSWORD, rt.now())
    svc.add_staff(rt.db, ORGANIZER, PASSWORD, rt.now())
    svc.add_staff(rt.db, VIEWER, PASSWORD, rt.now(), role="viewer")
    return {role: api_tokens.create_token(rt.db, email, f"{role} script", rt.now())[0]
            for role, email in (("admin", ADMIN), ("organizer", ORGANIZER), ("viewer", VIEWER))}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def audit_rows(rt):
    with rt.db.reader() as uow:
        return [(a.staff_email, a.action, a.target) for a in uow.session.scalars(select(AuditLog).order_by(AuditLog.id))]


# The least role of each API endpoint; one missing here is expected to be for admins only.
LEAST_ROLE = {
    "api_staff.campaigns": "viewer",
    "api_staff.broadcast": "viewer",
    "api_staff.signatures": "organizer",
    "api_staff.create_broadcast": "organizer",
    "api_staff.cancel_broadcast": "organizer",
    "api_staff.inbox": "organizer",
    "api_staff.inbox_thread": "organizer",
    "api_staff.inbox_reply": "organizer",
    "api_staff.inbox_done": "organizer",
    "api_staff.create_campaign": "admin",
    "api_staff.replace_campaign": "admin",
}
RANK = {"viewer": 0, "organizer": 1, "admin": 2}


@pytest.fixture
def things(rt, client):
    """What the routes' ids name, so that a role that may reaches the real thing, not a 404: a member
    with a conversation in the inbox (by its opaque id), a broadcast scheduled for tomorrow."""
    from datetime import timedelta

    from bots import broadcasts as bsvc
    from bots import inbox as isvc
    from storage.models import Member
    from tests.support.twilio_client import post_sms

    sign_up(client)
    assert post_sms(client, "+13125550101", "Can I volunteer on Saturdays?").status_code == 200
    with rt.db.reader() as uow:
        member_id = uow.session.scalars(select(Member.id).where(Member.address == "+13125550101")).one()
    created = bsvc.create_broadcast(rt, bsvc.BroadcastRequest("end-scomm", "Vigil tomorrow, {first_name}!",
                                                              send_at=rt.now() + timedelta(days=1)))
    return {"slug": "end-scomm", "member": isvc.opaque(member_id), "broadcast_id": created.id}


def _url(rule, things) -> str:
    path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: str(things[m.group(1)]), rule.rule)
    return path + ("?campaign=end-scomm" if rule.endpoint == "api_staff.signatures" else "")


@pytest.mark.parametrize("role", ["admin", "organizer", "viewer", None])
def test_every_api_route_for_each_role_and_without_a_token(app, client, tokens, things, role):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/staff/")]
    assert {r.endpoint for r in rules} >= set(LEAST_ROLE)
    for rule in sorted(rules, key=lambda r: "GET" not in r.methods):  # reads first, then the writes
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            headers = bearer(tokens[role]) if role else {}
            r = client.open(_url(rule, things), method=method, json={}, headers=headers)
            where = (role, method, rule.rule, r.status_code, r.get_data(as_text=True)[:200])
            assert r.is_json and "error" in r.get_json() or r.status_code < 400, where
            if role is None:
                assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), where
            elif RANK[role] >= RANK[LEAST_ROLE.get(rule.endpoint, "admin")]:
                assert r.status_code not in (401, 403, 404), where  # the real thing, or a 422 for the empty body
                assert method != "GET" or r.status_code == 200, where
            else:
                assert r.status_code == 403 and "role" in r.get_json()["error"], where


def test_tokens_bad_revoked_disabled_and_stored_hashed(client, rt, tokens):
    token = tokens["organizer"]
    assert client.get("/api/staff/campaigns", headers=bearer(token)).status_code == 200
    with rt.db.reader() as uow:
        stored = [t.token_hash for t in uow.session.scalars(select(ApiToken))]
    assert token not in stored and all(len(h) == 64 for h in stored)
    for bad in ("", "Bearer", "Bearer firma_nope", f"Basic {token}", f"Bearer {token}x"):
        r = client.get("/api/staff/campaigns", headers={"Authorization": bad} if bad else {})
        assert r.status_code == 401 and r.get_json()["error"], bad
    svc.set_active(rt.db, ORGANIZER, False)
    assert client.get("/api/staff/campaigns", headers=bearer(token)).status_code == 401
    svc.set_password(rt.db, ORGANIZER, PASSWORD)  # enabled again: the token works again
    assert client.get("/api/staff/campaigns", headers=bearer(token)).status_code == 200
    assert api_tokens.revoke_tokens(rt.db, ORGANIZER) == 1
    assert client.get("/api/staff/campaigns", headers=bearer(token)).status_code == 401
    listed = {r["email"]: r for r in svc.list_staff(rt.db)}
    assert listed[ORGANIZER]["tokens"] == 0 and listed[ADMIN]["tokens"] == 1


def test_a_token_label_keeps_no_control_characters(client, rt, tokens):
    """The label is printed by the CLI and written to the audit log with every call: an escape
    sequence in it (pasted from a terminal) must not reach either."""
    token, label = api_tokens.create_token(rt.db, ORGANIZER, "ci\x1b[31m red\x07 \u202eevil\u200b bot", rt.now())
    assert label == "ci[31m red evil bot"
    assert client.get("/api/staff/campaigns", headers=bearer(token)).status_code == 200
    with rt.db.reader() as uow:
        staff = [a.staff_email for a in uow.session.scalars(select(AuditLog))]
    assert not any(ch in "".join(filter(None, staff)) for ch in "\x1b\x07\u202e\u200b")


def test_campaigns_listed_created_and_replaced(client, rt, tokens):
    r = client.get("/api/staff/campaigns", headers=bearer(tokens["viewer"]))
    [c] = r.get_json()
    assert c["slug"] == "end-scomm" and c["keywords"] == {"SCOMM": "en", "FIRMA": "es"} and c["signatures"] == 0
    body = {"slug": "dream-act", "goal": 5000, "active": True, "keywords": {"DREAM": "en", "SUEÑO": "es"},
            "en": {"title": "Pass the Dream Act", "summary": "Congress can protect Dreamers now.",
                   "statement": "We call on Congress to pass the Dream Act."},
            "es": {"title": "Aprueben el Dream Act", "summary": "El Congreso puede proteger a los Dreamers.",
                   "statement": "Pedimos al Congreso que apruebe el Dream Act."}}
    r = client.post("/api/staff/campaigns", json=body, headers=bearer(tokens["admin"]))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["slug"] == "dream-act"
    r = client.post("/api/staff/campaigns", json=body, headers=bearer(tokens["admin"]))
    assert r.status_code == 422 and "exists already" in r.get_json()["error"]
    bad = dict(body, slug="other", keywords={"STOP": "en"}, goal="lots")
    r = client.post("/api/staff/campaigns", json=bad, headers=bearer(tokens["admin"]))
    assert r.status_code == 422 and len(r.get_json()["problems"]) >= 2
    assert any("STOP" in p for p in r.get_json()["problems"])
    r = client.put("/api/staff/campaigns/dream-act", json=dict(body, goal=9000, active=False),
                   headers=bearer(tokens["admin"]))
    assert r.status_code == 200 and r.get_json()["goal"] == 9000 and r.get_json()["active"] is False
    assert client.put("/api/staff/campaigns/nope", json=body, headers=bearer(tokens["admin"])).status_code == 404
    r = client.post("/api/staff/campaigns", data="not json", headers=bearer(tokens["admin"]))
    assert r.status_code == 422 and "JSON object" in r.get_json()["error"]
    assert client.put("/api/staff/campaigns/dream-act", json=body, headers=bearer(tokens["organizer"])).status_code == 403
    who = "api:admin script (admin@example.org)"
    assert (who, "campaign_create", "dream-act") in audit_rows(rt)
    assert (who, "campaign_close", "dream-act") in audit_rows(rt) or (who, "campaign_edit", "dream-act") in audit_rows(rt)


def test_signatures_page_by_cursor_with_contact_for_admins_only(client, rt, tokens):
    phones = [f"+1312555{i:04d}" for i in range(7)]
    for phone in phones:
        sign_up(client, phone=phone)
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/staff/signatures?campaign=end-scomm&limit=3" + (f"&after={cursor}" if cursor else "")
        r = client.get(url, headers=bearer(tokens["organizer"]))
        assert r.status_code == 200
        page = r.get_json()
        pages += 1
        seen += page["signatures"]
        assert all("contact" not in row for row in page["signatures"])
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 7
    assert set(seen[0]) == {"signed_at", "campaign", "channel", "name", "zip", "city", "state", "language", "opted_out"}
    assert seen[0]["city"] == "Chicago" and seen[0]["opted_out"] is False and seen[0]["signed_at"].endswith("Z")
    r = client.get("/api/staff/signatures?campaign=end-scomm&limit=1000", headers=bearer(tokens["admin"]))
    assert [row["contact"] for row in r.get_json()["signatures"]] == phones
    assert client.get("/api/staff/signatures?campaign=end-scomm", headers=bearer(tokens["viewer"])).status_code == 403
    assert client.get("/api/staff/signatures?campaign=nope", headers=bearer(tokens["admin"])).status_code == 404
    for query in ("", "campaign=end-scomm&limit=0", "campaign=end-scomm&limit=x", "campaign=end-scomm&after=-1"):
        r = client.get(f"/api/staff/signatures?{query}", headers=bearer(tokens["admin"]))
        assert r.status_code == 422 and r.get_json()["error"], query


def test_broadcast_created_followed_up_and_cancelled(client, rt, tokens):
    for phone in ("+13125550101", "+13125550102"):
        sign_up(client, phone=phone)
    r = client.post("/api/staff/broadcasts", json={"campaign": "end-scomm", "message": "Hi {first_name}!",
                                                   "channel": "sms"}, headers=bearer(tokens["organizer"]))
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["recipients"] == {"sms": 2} and created["status"] == "sending"
    r = client.get(f"/api/staff/broadcasts/{created['id']}", headers=bearer(tokens["viewer"]))
    info = r.get_json()
    assert info["counts"]["pending"] + info["counts"]["held"] == 2
    assert {"opt_outs_after", "replies_after", "send_at", "status"} <= set(info)
    r = client.post(f"/api/staff/broadcasts/{created['id']}/cancel", headers=bearer(tokens["organizer"]))
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled" and r.get_json()["counts"]["cancelled"] == 2
    assert client.get("/api/staff/broadcasts/999", headers=bearer(tokens["viewer"])).status_code == 404
    assert client.post("/api/staff/broadcasts/999/cancel", headers=bearer(tokens["admin"])).status_code == 404
    for body, reason in (({"message": "x"}, "campaign is required"),
                         ({"campaign": "end-scomm"}, "message is required"),
                         ({"campaign": "end-scomm", "message": "Hi {nombre}"}, "{name}"),
                         ({"campaign": "end-scomm", "message": "x", "state": "California"}, "two-letter"),
                         ({"campaign": "end-scomm", "message": "x", "colour": "red"}, "unknown field"),
                         ({"campaign": "end-scomm", "message": 5}, "must be a string")):
        r = client.post("/api/staff/broadcasts", json=body, headers=bearer(tokens["organizer"]))
        assert r.status_code == 422 and any(reason in p for p in r.get_json()["problems"]), (body, r.get_json())
    who = "api:organizer script (organizer@example.org)"
    assert (who, "broadcast", str(created["id"])) in audit_rows(rt)
    assert (who, "broadcast_cancel", str(created["id"])) in audit_rows(rt)


def test_a_broadcast_with_a_whatsapp_template_for_members_outside_the_window(client, rt, tokens):
    from tests.support.twilio_client import WHATSAPP_NUMBER, post_whatsapp

    rt.settings = rt.settings.with_(twilio_whatsapp_from=WHATSAPP_NUMBER)
    for body in ("FIRMA", "Lupe Ramírez", "60614"):
        assert post_whatsapp(client, "+13125550177", body).status_code == 200
    rt.clock.advance(hours=30)
    org, sid = bearer(tokens["organizer"]), "HX" + "ab12" * 8
    r = client.post("/api/staff/broadcasts", json={"campaign": "end-scomm", "message": "Hi {first_name}!",
                                                   "channel": "whatsapp", "whatsapp_template": sid}, headers=org)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["recipients"] == {"whatsapp": 1}
    from storage.models import Broadcast
    with rt.db.reader() as uow:
        assert uow.session.get(Broadcast, r.get_json()["id"]).window_template == sid
    r = client.post("/api/staff/broadcasts", json={"campaign": "end-scomm", "message": "Hi", "channel": "whatsapp",
                                                   "whatsapp_template": "hello_world"}, headers=org)
    assert r.status_code == 422 and any(p.startswith("whatsapp_template must be an approved template's Content SID")
                                       for p in r.get_json()["problems"]), r.get_json()


def test_a_whatsapp_broadcast_counts_those_outside_the_window(client, rt, tokens, twilio):
    """Without a template a member outside the 24-hour window is not sent to: the API counts them as
    such, so that the counts add up to the recipients."""
    from bots.worker import Options, run_worker
    from tests.support import broadcasts as h
    from tests.support.twilio_client import WHATSAPP_NUMBER, post_whatsapp

    rt.settings = h.settings_for(rt, twilio, twilio_whatsapp_from=WHATSAPP_NUMBER)
    for phone in ("+13125550177", "+13125550178"):
        for body in ("FIRMA", "Lupe Ramírez", "60614"):
            assert post_whatsapp(client, phone, body).status_code == 200
        rt.clock.advance(hours=25)  # the first is outside the window, the second within it
    rt.clock.advance(hours=-24)
    org = bearer(tokens["organizer"])
    r = client.post("/api/staff/broadcasts", json={"campaign": "end-scomm", "message": "Hola {first_name}",
                                                   "channel": "whatsapp"}, headers=org)
    assert r.status_code == 201, r.get_json()
    run_worker(rt, Options(drain=True, poll=0.1))
    info = client.get(f"/api/staff/broadcasts/{r.get_json()['id']}", headers=org).get_json()
    assert info["counts"]["sent"] == 1 and info["counts"]["outside_window"] == 1, info
    assert [m["To"] for m in twilio.messages] == ["whatsapp:+13125550178"]


def test_a_broadcast_text_with_a_control_character_is_a_422(client, rt, tokens):
    """PostgreSQL cannot store a NUL: the text is refused with the reason, never a 500."""
    sign_up(client)
    org = bearer(tokens["organizer"])
    for body in ({"campaign": "end-scomm", "message": "Rally\x00 at noon"},
                 {"campaign": "end-scomm", "message": "Rally at noon", "message_es": "Marcha\x1b"}):
        r = client.post("/api/staff/broadcasts", json=body, headers=org)
        assert r.status_code == 422 and any("control character" in p for p in r.get_json()["problems"]), r.get_json()
    r = client.post("/api/staff/broadcasts", json={"campaign": "end-scomm", "message": "Rally\r\n\tat noon"},
                    headers=org)  # a browser's line break
    assert r.status_code == 201, r.get_json()
