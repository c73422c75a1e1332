"""Staff roles in the console: every /staff route walked for each role (admin, organizer, viewer),
contact data for admins only, roles changed by an admin in the console."""

from __future__ import annotations

import csv
import io
import re

import pytest

from bots import staff_accounts as svc
from tests.e2e.test_staff import (PASSWORD, PHONE, _staff_rules, audit_rows, csrf_token, fast_hashing,  # noqa: F401
                                  https_client, prod_app, sign_in, sign_up)

ADMIN, ORGANIZER, VIEWER = "admin@example.org", "organizer@example.org", "viewer@example.org"

# The least role each console endpoint needs. An endpoint missing here is expected to be for admins
# only (the guard's default), so a new page is closed until it is added with its role.
LEAST_ROLE = {
    "staff.logout": "viewer",
    "staff.dashboard": "viewer",
    "staff.campaign": "viewer",
    "staff_broadcasts.index": "viewer",
    "staff_broadcasts.show": "viewer",
    "staff_broadcasts.show_json": "viewer",
    "staff.export": "organizer",
    "staff.delivery": "organizer",
    "staff.flyer": "organizer",
    "staff.delivery_file": "organizer",
    "staff.delivery_file_download": "organizer",
    "staff.members": "organizer",
    "staff.member": "organizer",
    "staff_broadcasts.compose": "organizer",
    "staff_broadcasts.cancel_form": "organizer",
    "staff_broadcasts.cancel": "organizer",
    "staff_inbox.index": "organizer",
    "staff_inbox.thread": "organizer",
    "staff_inbox.reply": "organizer",
    "staff_inbox.status": "organizer",
    "staff_inbox.saved": "admin",
    "staff_inbox.delete_saved": "admin",
    "staff_broadcasts.edit": "organizer",
    "staff.audit_log": "admin",
    "staff_campaigns.create": "admin",
    "staff_campaigns.edit": "admin",
    "staff_campaigns.make_default": "admin",
    "staff_team.index": "admin",
    "staff_team.set_role": "admin",
}
RANK = {"viewer": 0, "organizer": 1, "admin": 2}


@pytest.fixture
def logins(rt):
    svc.add_staff(rt.db, ADMIN, PASSWORD, rt.now())  # the first login: admin
    svc.add_staff(rt.db, ORGANIZER, PASSWORD, rt.now())  # later ones: organizer unless told
    svc.add_staff(rt.db, VIEWER, PASSWORD, rt.now(), role="viewer")
    return {"admin": ADMIN, "organizer": ORGANIZER, "viewer": VIEWER}


@pytest.fixture
def things(rt, client):
    """What the routes' ids name, so that a role that may gets the real page, not a 404: a member
    with a conversation in the inbox, a broadcast scheduled for tomorrow, a saved reply, a delivery PDF
    a worker made."""
    from datetime import timedelta

    from bots import broadcasts as bsvc
    from bots import inbox as isvc
    from storage.models import Member
    from tests.support.twilio_client import post_sms

    sign_up(client)
    assert post_sms(client, PHONE, "Can I volunteer on Saturdays?").status_code == 200
    with rt.db.reader() as uow:
        member_id = uow.session.query(Member.id).filter(Member.address == PHONE).scalar()
    created = bsvc.create_broadcast(rt, bsvc.BroadcastRequest("end-scomm", "Vigil tomorrow, {first_name}!",
                                                              send_at=rt.now() + timedelta(days=1)))
    saved = isvc.add_saved_reply(rt, "en", "Thanks", "Thank you for writing!", ADMIN)
    from bots import delivery, delivery_files

    file_id = delivery_files.request(rt, delivery.check(rt, "end-scomm", names="short"), ADMIN)
    assert delivery_files.make_next(rt) == file_id
    return {"slug": "end-scomm", "member_id": member_id, "broadcast_id": created.id, "reply_id": saved.id,
            "file_id": file_id}


def _real_url(rule, things) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: str(things[m.group(1)]), rule.rule)


@pytest.mark.parametrize("role", ["admin", "organizer", "viewer"])
def test_every_staff_route_for_each_role(prod_app, rt, logins, things, role):
    rules = _staff_rules(prod_app)
    assert {r.endpoint for r in rules} >= set(LEAST_ROLE)
    client = https_client(prod_app)
    assert sign_in(client, logins[role]).status_code == 303
    token = csrf_token(client, "/staff/")
    checked = allowed = 0
    # GETs first (the real pages), then the writes, signing out last: it ends the session
    for rule in sorted(rules, key=lambda r: (r.endpoint == "staff.logout", "GET" not in r.methods)):
        url = _real_url(rule, things)
        needed = LEAST_ROLE.get(rule.endpoint, "admin")
        may = RANK[role] >= RANK[needed]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = client.open(url, method=method, data={"csrf_token": token, "q": PHONE, "email": VIEWER,
                                                       "role": "viewer"},
                            headers={"Referer": "https://firma.example.org/staff/"})
            where = (role, method, url, r.status_code)
            if may:
                assert r.status_code != 403, where
                assert r.status_code < (400 if method == "GET" else 500), where  # the page, or a clear 4xx
                assert not (r.status_code == 302 and "/staff/login" in r.headers.get("Location", "")), where
                allowed += 1
            else:
                assert r.status_code == 403, where
                assert "Not for your role" in r.get_data(as_text=True), where
            checked += 1
    assert checked >= 20
    assert allowed >= {"admin": 20, "organizer": 10, "viewer": 5}[role]


def test_contact_data_only_for_admins(client, prod_app, rt, logins):
    sign_up(client)  # a signature from PHONE
    for role in ("admin", "organizer"):
        c = https_client(prod_app)
        sign_in(c, logins[role])
        token = csrf_token(c, "/staff/members")
        r = c.post("/staff/members", data={"csrf_token": token, "q": PHONE})
        assert r.status_code == 303
        member = c.get(r.headers["Location"]).get_data(as_text=True)
        campaign = c.get("/staff/campaigns/end-scomm").get_data(as_text=True)
        export = c.post("/staff/campaigns/end-scomm/export", data={"csrf_token": token})
        rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
        assert rows and "contact" not in rows[0]
        with_contact = c.post("/staff/campaigns/end-scomm/export", data={"csrf_token": token, "include_contact": "1"})
        if role == "admin":
            assert PHONE in member
            assert 'name="include_contact"' in campaign
            assert with_contact.status_code == 200
            assert list(csv.DictReader(io.StringIO(with_contact.get_data(as_text=True))))[0]["contact"] == PHONE
        else:
            assert PHONE not in member and "5550101" not in member and "Member #" in member
            assert 'name="include_contact"' not in campaign
            assert with_contact.status_code == 403 and PHONE not in with_contact.get_data(as_text=True)
    viewer = https_client(prod_app)
    sign_in(viewer, VIEWER)
    for path in ("/staff/", "/staff/campaigns/end-scomm", "/staff/broadcasts/"):
        page = viewer.get(path).get_data(as_text=True)
        assert PHONE not in page and "5550101" not in page
        assert "Members</a>" not in page and "Audit log</a>" not in page
    assert 'data-testid="total-end-scomm">1<' in viewer.get("/staff/").get_data(as_text=True)
    exports = [a for a in audit_rows(rt) if a[1] == "export"]
    assert (ADMIN, "export", "end-scomm", "with contact") in exports
    assert not [a for a in exports if a[0] == ORGANIZER and a[3] == "with contact"]


def test_an_admin_changes_a_role_in_the_console(prod_app, rt, logins):
    c = https_client(prod_app)
    sign_in(c, ADMIN)
    page = c.get("/staff/team/").get_data(as_text=True)
    assert VIEWER in page and re.search(r'<option value="viewer" selected>', page)
    token = csrf_token(c, "/staff/team/")
    r = c.post("/staff/team/role", data={"csrf_token": token, "email": VIEWER, "role": "organizer"})
    assert r.status_code == 303
    assert "viewer@example.org is now an organizer." in c.get("/staff/team/").get_data(as_text=True)
    assert (ADMIN, "staff_role", VIEWER, "viewer → organizer") in audit_rows(rt)
    # the role holds at once, for a session already open
    v = https_client(prod_app)
    sign_in(v, VIEWER)
    assert v.get("/staff/broadcasts/new").status_code == 200
    r = c.post("/staff/team/role", data={"csrf_token": token, "email": VIEWER, "role": "viewer"})
    assert v.get("/staff/broadcasts/new").status_code == 403
    # the last admin cannot demote themselves: nobody would be left to manage staff
    r = c.post("/staff/team/role", data={"csrf_token": token, "email": ADMIN, "role": "viewer"})
    assert r.status_code == 400 and "only active admin" in r.get_data(as_text=True)
    r = c.post("/staff/team/role", data={"csrf_token": token, "email": VIEWER, "role": "owner"})
    assert r.status_code == 400 and "is not a role" in r.get_data(as_text=True)


def test_a_role_change_for_an_address_with_a_control_character_is_a_400(client, prod_app, logins):
    """PostgreSQL cannot compare a NUL: the address is refused as no email address, never a 500."""
    admin = https_client(prod_app)
    assert sign_in(admin, ADMIN).status_code == 303
    token = csrf_token(admin, "/staff/team")
    for email in ("viewer\x00@example.org", "viewer@example.org\x1b"):
        r = admin.post("/staff/team/role", data={"csrf_token": token, "email": email, "role": "admin"},
                       headers={"Referer": "https://firma.example.org/staff/team"})
        assert r.status_code == 400 and "is not an email address" in r.get_data(as_text=True), email
