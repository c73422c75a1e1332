"""The staff console through Flask's test client: sign-in, throttling, CSRF, permissions, export,
member lookup, audit log, cookies and headers."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from bots import dashboard
from bots import staff_accounts as svc
from storage.models import AuditLog, Member
from tests.support.staff import cheap_password_hashing
from tests.support.twilio_client import post_sms

EMAIL = "organizer@example.org"
PASSWORD = "correct horse battery staple"
PHONE = "+13125550101"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    """argon2's cheapest parameters here (the real ones take ~0.3 s per hash on this machine); the
    production parameters are checked in tests/unit/test_staff_units.py."""
    cheap_password_hashing(monkeypatch)


class HttpsClient(FlaskClient):
    """A browser on https://firma.example.org: https URLs and a same-origin Referer on every request."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("base_url", "https://firma.example.org")
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Referer", "https://firma.example.org/staff/login")
        return super().open(*args, headers=headers, **kwargs)


def https_client(app) -> FlaskClient:
    return HttpsClient(app, app.response_class, use_cookies=True)


@pytest.fixture
def prod_app(rt):
    """The app as gunicorn runs it: simulator closed to the public, not testing, not debug."""
    from webhooks import create_app

    return create_app({"SIMULATOR_OPEN": False}, rt)


@pytest.fixture
def staff_user(rt):
    return svc.add_staff(rt.db, EMAIL, PASSWORD, rt.now())


def csrf_token(client, path="/staff/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client, email=EMAIL, password=PASSWORD, **kw):
    token = csrf_token(client)
    return client.post("/staff/login", data={"email": email, "password": password, "csrf_token": token}, **kw)


def sign_up(client, phone=PHONE, keyword="SCOMM", name="Ana María López", zip_code="60601"):
    for text in (keyword, name, zip_code):
        assert post_sms(client, phone, text).status_code == 200


def audit_rows(rt) -> list[tuple[str, str, str | None, str | None]]:
    with rt.db.uow() as uow:
        return [(a.staff_email, a.action, a.target, a.detail)
                for a in uow.session.scalars(select(AuditLog).order_by(AuditLog.id))]


# --- signing in -------------------------------------------------------------------------------------


def test_sign_in_then_dashboard_shows_the_webhook_signature(client, rt, staff_user):
    sign_up(client)
    assert client.get("/staff/").status_code == 302  # not yet signed in
    r = sign_in(client)
    assert r.status_code == 303 and r.headers["Location"].endswith("/staff/")
    page = client.get("/staff/").get_data(as_text=True)
    assert 'data-testid="total-end-scomm">1<' in page and "End S-Comm Now" in page
    detail = client.get("/staff/campaigns/end-scomm").get_data(as_text=True)
    assert 'id="total">1<' in detail and 'id="today">1<' in detail
    assert re.search(r"<th scope=\"row\">IL</th><td class=\"num\">1</td>", detail)
    assert re.search(r"<th scope=\"row\">SMS</th><td class=\"num\">1</td>", detail)
    assert "Sign out" in detail and EMAIL in detail


def test_sign_in_returns_to_the_page_asked_for_but_never_off_site(client, staff_user):
    r = client.get("/staff/audit")
    assert r.status_code == 302 and "/staff/login?next=/staff/audit" in r.headers["Location"]
    token = csrf_token(client)
    r = client.post("/staff/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token,
                                          "next": "/staff/audit"})
    assert r.headers["Location"].endswith("/staff/audit")
    client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/")})
    for evil in ("https://evil.example.org/staff", "//evil.example.org/staff", "/staff/../../x\\evil"):
        token = csrf_token(client)
        r = client.post("/staff/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token,
                                              "next": evil})
        assert r.status_code == 303 and r.headers["Location"] == "/staff/", evil
        client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/")})


@pytest.mark.parametrize("email,password", [
    (EMAIL, "wrong password here"), ("nobody@example.org", PASSWORD), (EMAIL, ""), ("", ""),
])
def test_wrong_credentials_are_refused_with_one_message(client, staff_user, email, password):
    r = sign_in(client, email, password)
    assert r.status_code == 401
    assert "That email and password do not match a staff login." in r.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302


def test_email_is_case_insensitive(client, staff_user):
    assert sign_in(client, "  Organizer@Example.ORG ").status_code == 303


def test_disabled_login_cannot_sign_in_and_is_signed_out(client, rt, staff_user):
    assert sign_in(client).status_code == 303
    svc.set_active(rt.db, EMAIL, False)
    assert client.get("/staff/").status_code == 302
    assert sign_in(client).status_code == 401


def test_session_expires_after_twelve_hours(client, clock, staff_user):
    sign_in(client)
    clock.advance(hours=11, minutes=59)
    assert client.get("/staff/").status_code == 200
    clock.advance(minutes=2)
    assert client.get("/staff/").status_code == 302


# --- throttling -------------------------------------------------------------------------------------


def test_account_is_throttled_after_five_failures_then_freed(client, clock, staff_user):
    for _ in range(svc.ACCOUNT_FAILURE_LIMIT):
        assert sign_in(client, password="not the password").status_code == 401
        clock.advance(seconds=10)
    r = sign_in(client)  # even the right password is not looked at now
    assert r.status_code == 429
    assert "Too many failed sign-ins" in r.get_data(as_text=True)
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 15 * 60
    assert client.get("/staff/").status_code == 302
    clock.advance(seconds=retry)
    assert sign_in(client).status_code == 303


def test_success_clears_the_account_failures(client, clock, staff_user):
    for _ in range(svc.ACCOUNT_FAILURE_LIMIT - 1):
        assert sign_in(client, password="nope nope nope").status_code == 401
    assert sign_in(client).status_code == 303
    client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/")})
    for _ in range(svc.ACCOUNT_FAILURE_LIMIT - 1):
        assert sign_in(client, password="nope nope nope").status_code == 401
    assert sign_in(client).status_code == 303


def test_an_address_is_throttled_across_accounts(app, rt, staff_user):
    attacker = app.test_client()
    for i in range(svc.IP_FAILURE_LIMIT):
        r = sign_in(attacker, f"guess{i}@example.org", "whatever-password", environ_base={"REMOTE_ADDR": "203.0.113.9"})
        assert r.status_code == 401
    r = sign_in(attacker, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert r.status_code == 429
    colleague = app.test_client()
    assert sign_in(colleague, environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 303


# --- CSRF -------------------------------------------------------------------------------------------


def test_forms_without_a_valid_csrf_token_are_refused(client, rt, staff_user):
    r = client.post("/staff/login", data={"email": EMAIL, "password": PASSWORD})
    assert r.status_code == 400 and "expired" in r.get_data(as_text=True)
    r = client.post("/staff/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 400
    assert client.get("/staff/").status_code == 302  # not signed in
    sign_in(client)
    r = client.post("/staff/campaigns/end-scomm/export", data={"include_contact": "1"})
    assert r.status_code == 400
    r = client.post("/staff/members", data={"q": PHONE, "csrf_token": "x" * 40})
    assert r.status_code == 400
    r = client.post("/staff/logout")
    assert r.status_code == 400 and client.get("/staff/").status_code == 200  # still signed in
    assert [a[1] for a in audit_rows(rt)] == ["sign_in"]  # the refused requests did nothing


def test_csrf_token_from_another_session_is_refused(app, staff_user):
    other = app.test_client()
    foreign = csrf_token(other)
    client = app.test_client()
    sign_in(client)
    r = client.post("/staff/members", data={"q": PHONE, "csrf_token": foreign})
    assert r.status_code == 400


def test_simulator_json_post_needs_the_token_in_a_header(client):
    body = {"channel": "sms", "address": "+15550001111", "text": "SCOMM"}
    r = client.post("/simulator/send", json=body)
    assert r.status_code == 400 and "CSRF" in r.get_json()["error"]
    token = csrf_token(client, "/simulator/")
    r = client.post("/simulator/send", json=body, headers={"X-CSRFToken": token})
    assert r.status_code == 200 and r.get_json()["messages"]


def test_provider_webhooks_and_public_api_are_not_csrf_checked(client):
    assert post_sms(client, PHONE, "SCOMM").status_code == 200  # no cookie, no token: signed by Twilio
    assert client.get("/api/campaigns/end-scomm").status_code == 200


# --- permissions ------------------------------------------------------------------------------------


def _staff_rules(app):
    rules = [r for r in app.url_map.iter_rules() if r.rule == "/staff" or r.rule.startswith("/staff/")]
    return [r for r in rules if r.endpoint != "staff.login"]


def _url(rule) -> str:
    values = {"slug": "end-scomm", "member_id": 1, "id": 1, "broadcast_id": 1}
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: str(values.get(m.group(1), 1)), rule.rule)


def test_every_staff_route_refuses_anonymous_requests(prod_app, rt):
    rules = _staff_rules(prod_app)
    endpoints = {r.endpoint for r in rules}
    assert {"staff.dashboard", "staff.campaign", "staff.export", "staff.members", "staff.member",
            "staff.audit_log", "staff.logout"} <= endpoints
    client = https_client(prod_app)
    token = csrf_token(client)  # an anonymous visitor can get a token from the sign-in page
    checked = 0
    for rule in rules:
        url = _url(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method == "GET":
                r = client.get(url)
                assert r.status_code == 302, (method, url, r.status_code)
                assert r.headers["Location"].startswith("/staff/login"), url
            else:
                r = client.open(url, method=method, data={"csrf_token": token, "q": PHONE},
                                headers={"Referer": "https://firma.example.org/staff/login"})
                assert r.status_code == 403, (method, url, r.status_code)
            checked += 1
    assert checked >= 8
    assert audit_rows(rt) == []


def test_unknown_staff_paths_do_not_reveal_anything_to_anonymous(client):
    r = client.get("/staff/no-such-page")
    assert r.status_code == 302 and r.headers["Location"].startswith("/staff/login")


def test_simulator_is_for_signed_in_staff_outside_development(prod_app, rt, staff_user):
    client = https_client(prod_app)
    assert client.get("/simulator/").status_code == 403
    sign_in(client, headers={"Referer": "https://firma.example.org/staff/login"})
    page = client.get("/simulator/")
    assert page.status_code == 200
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True)).group(1)
    r = client.post("/simulator/send", json={"channel": "sms", "address": "+15550001111", "text": "FIRMA"},
                    headers={"X-CSRFToken": token, "Referer": "https://firma.example.org/simulator/"})
    assert r.status_code == 200 and "Fin a S-Comm Ya" in r.get_json()["messages"][0]


def test_simulator_is_open_to_anyone_in_development(client):
    assert client.get("/simulator/").status_code == 200


# --- export -----------------------------------------------------------------------------------------


def test_export_download_is_the_signature_csv(client, rt, staff_user):
    sign_up(client)
    sign_up(client, phone="+13125550102", keyword="FIRMA", name="=cmd|' /C calc'!A0", zip_code="78520")
    sign_in(client)
    token = csrf_token(client, "/staff/campaigns/end-scomm")
    r = client.post("/staff/campaigns/end-scomm/export", data={"csrf_token": token})
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"].startswith('attachment; filename="firma-end-scomm-')
    assert "with-contact" not in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data().decode("utf-8"), newline="")))
    assert list(rows[0]) == ["signed_at", "campaign", "channel", "name", "zip", "city", "state", "language", "opted_out"]
    assert [(x["name"], x["city"], x["state"], x["language"]) for x in rows] == [
        ("Ana María López", "Chicago", "IL", "en"), ("'=cmd|' /C calc'!A0", "Brownsville", "TX", "es")]

    r = client.post("/staff/campaigns/end-scomm/export", data={"csrf_token": token, "include_contact": "1"})
    assert "-with-contact.csv" in r.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(r.get_data().decode("utf-8"), newline="")))
    assert [x["contact"] for x in rows] == [PHONE, "+13125550102"]
    assert [a[1:] for a in audit_rows(rt) if a[1] == "export"] == [
        ("export", "end-scomm", "without contact"), ("export", "end-scomm", "with contact")]


def test_export_of_unknown_campaign_is_404(client, staff_user):
    sign_in(client)
    token = csrf_token(client, "/staff/")
    assert client.post("/staff/campaigns/nope/export", data={"csrf_token": token}).status_code == 404
    assert client.get("/staff/campaigns/nope").status_code == 404


# --- member lookup ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("typed", [PHONE, "(312) 555-0101", "312-555-0101", "1 312 555 0101", " 3125550101 "])
def test_member_lookup_by_phone_in_any_format(client, rt, staff_user, typed):
    sign_up(client)
    post_sms(client, PHONE, "STOP")
    sign_in(client)
    token = csrf_token(client, "/staff/members")
    r = client.post("/staff/members", data={"q": typed, "csrf_token": token})
    assert r.status_code == 303, r.get_data(as_text=True)
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert PHONE in page
    assert "Opted in" in page and "Opted out" in page and "<code>STOP</code>" in page
    assert "Ana María López" in page and "Chicago, IL 60601" in page
    assert "firma sends them nothing more" in page  # the short answer to "why am I getting these texts?"
    assert "You are unsubscribed" in page  # the text sent back is shown
    actions = [a[1] for a in audit_rows(rt)]
    assert actions == ["sign_in", "member_lookup", "member_view"]


def test_member_lookup_misses_and_bad_input(client, staff_user):
    sign_in(client)
    token = csrf_token(client, "/staff/members")
    r = client.post("/staff/members", data={"q": "+13125559999", "csrf_token": token})
    assert r.status_code == 200 and "No member has written from +13125559999" in r.get_data(as_text=True)
    r = client.post("/staff/members", data={"q": "'; drop table members; --", "csrf_token": token})
    assert r.status_code == 400 and "Type a phone number" in r.get_data(as_text=True)
    assert client.get("/staff/members/999999").status_code == 404


def test_member_lookup_finds_a_telegram_id(client, rt, staff_user):
    with rt.db.uow() as uow:
        uow.session.add(Member(channel="telegram", address="987654321", language="es", created_at=rt.now()))
        uow.commit()
    sign_in(client)
    r = client.post("/staff/members", data={"q": "987654321", "csrf_token": csrf_token(client, "/staff/members")})
    assert r.status_code == 303
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "987654321" in page and "Telegram" in page and "Spanish" in page
    assert "No signature is recorded" in page


# --- audit log, sign-out ----------------------------------------------------------------------------


def test_audit_log_records_and_shows_staff_actions(client, rt, clock, staff_user):
    sign_up(client)
    sign_in(client, environ_base={"REMOTE_ADDR": "192.0.2.44"})
    token = csrf_token(client, "/staff/")
    client.post("/staff/campaigns/end-scomm/export", data={"csrf_token": token, "include_contact": "on"})
    client.post("/staff/members", data={"q": PHONE, "csrf_token": token}, follow_redirects=True)
    page = client.get("/staff/audit").get_data(as_text=True)
    for words in ("sign in", "export", "with contact", "member lookup", "1 found", "member view",
                  "192.0.2.44", EMAIL):
        assert words in page, words
    assert PHONE not in page and "3125550101" not in page  # what was typed is not kept
    client.post("/staff/logout", data={"csrf_token": token})
    assert [a[:2] for a in audit_rows(rt)] == [(EMAIL, "sign_in"), (EMAIL, "export"), (EMAIL, "member_lookup"),
                                               (EMAIL, "member_view"), (EMAIL, "sign_out")]


def test_sign_out_ends_the_session_even_for_a_copied_cookie(app, staff_user):
    client = app.test_client()
    sign_in(client)
    stolen = client.get_cookie("firma_session").value
    r = client.post("/staff/logout", data={"csrf_token": csrf_token(client, "/staff/")})
    assert r.status_code == 303 and r.headers["Location"].endswith("/staff/login")
    assert "You are signed out." in client.get("/staff/login").get_data(as_text=True)
    assert client.get("/staff/").status_code == 302
    thief = app.test_client()
    thief.set_cookie("firma_session", stolen)
    assert thief.get("/staff/").status_code == 302


# --- cookies and headers ----------------------------------------------------------------------------


def _session_cookie_header(response) -> str:
    cookies = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("firma_session=")]
    assert cookies, response.headers
    return cookies[-1]


def test_session_cookie_is_secure_httponly_lax_in_production(prod_app, staff_user):
    client = https_client(prod_app)
    r = sign_in(client, headers={"Referer": "https://firma.example.org/staff/login"})
    assert r.status_code == 303
    cookie = _session_cookie_header(r)
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "SameSite=Lax" in cookie
    # behind a TLS-terminating proxy the app sees plain http, and the cookie is still Secure
    client = prod_app.test_client()
    cookie = _session_cookie_header(client.get("/staff/login"))
    assert "; Secure" in cookie


def test_session_cookie_is_not_secure_in_development_over_http(client, staff_user):
    cookie = _session_cookie_header(sign_in(client))
    assert "; Secure" not in cookie and "; HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_https_form_posts_need_a_same_origin_referer(prod_app, staff_user):
    client = https_client(prod_app)
    r = sign_in(client, headers={"Referer": "https://evil.example.org/"})
    assert r.status_code == 400


def test_staff_pages_send_security_headers(client, staff_user):
    for path in ("/staff/login", "/staff/"):
        if path == "/staff/":
            sign_in(client)
        r = client.get(path)
        assert r.status_code == 200
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
        assert r.headers["Cache-Control"] == "no-store"
        html = r.get_data(as_text=True)
        assert "<script>" not in html and " style=" not in html  # nothing the CSP would block


# --- dashboard numbers ------------------------------------------------------------------------------


def _signature_rows(rt, rows):
    """Insert (state, channel, language, days_ago) signatures directly (fast; bypasses the conversation)."""
    from storage import repository as repo
    from storage.models import Signature

    with rt.db.uow() as uow:
        for i, (state, channel, language, days_ago) in enumerate(rows):
            member = Member(channel=channel, address=f"+1312555{i:04d}", language=language, created_at=rt.now())
            uow.session.add(member)
            uow.session.flush()
            uow.session.add(Signature(member_id=member.id, campaign="end-scomm", channel=channel, name=f"P {i}",
                                      zip_code="60601", city="X", state=state, language=language, simulated=False,
                                      signed_at=rt.now() - timedelta(days=days_ago, minutes=1)))
        repo.recount(uow.session, "end-scomm")
        uow.commit()


def test_campaign_aggregates(rt, clock):
    rows = [("IL", "sms", "en", 0)] * 3 + [("TX", "telegram", "es", 1)] * 5 + [("CA", "sms", "es", 40)] * 2
    _signature_rows(rt, rows)
    stats = dashboard.campaign_stats(rt, "end-scomm", rt.now())
    assert stats.total == 10 and stats.today == 3
    assert stats.by_state == [("TX", 5), ("IL", 3), ("CA", 2)]
    assert stats.by_channel == [("sms", 5), ("telegram", 5), ("whatsapp", 0)]
    assert dict(stats.by_language) == {"es": 7, "en": 3}
    assert len(stats.by_day) == dashboard.DAYS_SHOWN and stats.by_day[-1] == (rt.now().date(), 3)
    assert stats.by_day[-2] == (rt.now().date() - timedelta(days=1), 5)
    assert sum(n for _, n in stats.by_day) == 8  # 40 days ago is outside the chart


def test_dashboard_with_no_signatures(client, staff_user):
    sign_in(client)
    page = client.get("/staff/campaigns/end-scomm").get_data(as_text=True)
    assert 'id="total">0<' in page and "No signatures yet." in page
    assert "No signatures from" in page  # the day chart says so instead of drawing nothing


def test_dashboard_numbers_are_grouped(client, rt, staff_user):
    from storage.models import CampaignCount

    with rt.db.uow() as uow:
        uow.session.add(CampaignCount(campaign="end-scomm", signatures=1_000_000))
        uow.commit()
    sign_in(client)
    assert 'data-testid="total-end-scomm">1,000,000<' in client.get("/staff/").get_data(as_text=True)


# --- broadcasts: tests/e2e/test_staff_broadcasts.py ------------------------------------------------


def test_old_password_hashes_are_upgraded_at_sign_in(client, rt, monkeypatch):
    from argon2 import PasswordHasher, profiles

    weak = PasswordHasher.from_parameters(profiles.CHEAPEST)
    monkeypatch.setattr(svc, "_hasher", lambda: weak)
    svc.add_staff(rt.db, EMAIL, PASSWORD, rt.now())
    stronger = PasswordHasher(time_cost=2, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(svc, "_hasher", lambda: stronger)
    assert sign_in(client).status_code == 303
    from storage.models import StaffUser

    with rt.db.uow() as uow:
        stored = uow.session.scalars(select(StaffUser.password_hash)).one()
    assert not stronger.check_needs_rehash(stored) and stronger.verify(stored, PASSWORD)


def test_behind_a_trusted_proxy_the_limit_is_per_client_address(rt, staff_user):
    """FIRMA_TRUSTED_PROXIES=1 (nginx in front): every request comes from the proxy's address, so the
    per-address limit keys on the client address the proxy appends to X-Forwarded-For, and a client
    cannot pick its own address by sending that header itself."""
    from webhooks import create_app

    rt.settings = rt.settings.with_(trusted_proxies=1)
    app = create_app({"TESTING": True}, rt)
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    attacker = app.test_client()
    for i in range(svc.IP_FAILURE_LIMIT):
        # the attacker's own X-Forwarded-For value comes first; the proxy appends the real address
        r = sign_in(attacker, f"guess{i}@example.org", "whatever-password", environ_base=proxy,
                    headers={"X-Forwarded-For": f"198.51.100.{i}, 203.0.113.9"})
        assert r.status_code == 401
    assert sign_in(attacker, environ_base=proxy, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 429
    colleague = app.test_client()  # through the same proxy, from elsewhere
    assert sign_in(colleague, environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 303
