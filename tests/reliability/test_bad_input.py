"""Bad input found by attacking the running service: each gets a clear 4xx (or, for what Telegram
itself sends, a tolerant 200), never a 500."""

from __future__ import annotations

import json
import logging

import pytest

from bots import staff_accounts as staff_svc
from tests.support import courier_telegram
from tests.support import telegram_updates as tu
from tests.support.simulator import headers as simulator_headers
from tests.support.staff import cheap_password_hashing
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures

EMAIL = "organizer@example.org"
PASSWORD = "correct horse battery staple"
HUGE = 2 ** 70


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_deeply_nested_telegram_update_is_refused_not_a_500(client):
    body = '{"update_id": 5, "message": {"message_id": 1, "date": 1, "chat": {"id": 1, "type": "private"}, ' \
           f'"text": "hi", "x": {nested(900)}}}}}'
    r = tu.post_update(client, None, raw=body.encode())
    assert r.status_code == 400, r.status_code
    r = tu.post_update(client, None, raw=nested(5000).encode())
    assert r.status_code == 400


def test_a_deeply_nested_simulator_body_is_refused_not_a_500(client):
    body = '{"channel": "sms", "address": "4242", "text": "SCOMM", "x": ' + nested(900) + "}"
    r = client.post("/simulator/send", data=body, content_type="application/json", headers=simulator_headers(client))
    assert r.status_code == 400, r.status_code


def _csrf(client, path):
    import re

    html = client.get(path).get_data(as_text=True)
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'name="csrf-token" content="([^"]+)"', html)
    return m.group(1)


def _sign_in(client, rt, **kw):
    staff_svc.add_staff(rt.db, EMAIL, PASSWORD, rt.now())
    return client.post("/staff/login", data={"email": EMAIL, "password": PASSWORD,
                                             "csrf_token": _csrf(client, "/staff/login")}, **kw)


@pytest.mark.parametrize("target", ["/staff/\r\nSet-Cookie: x=1", "/staff/%0d%0aSet-Cookie:x=1", "/staff/\n",
                                    "\r\n/staff/", "/staff/\x00"])
def test_next_with_cr_lf_never_gives_a_500_nor_a_header(client, rt, target):
    r = client.get("/staff/login", query_string={"next": target})
    assert r.status_code == 200
    staff_svc.add_staff(rt.db, EMAIL, PASSWORD, rt.now())
    r = client.post("/staff/login", query_string={"next": target},
                    data={"email": EMAIL, "password": PASSWORD, "csrf_token": _csrf(client, "/staff/login"),
                          "next": target})
    assert r.status_code in (302, 303), r.status_code
    location = r.headers["Location"]
    assert "\r" not in location and "\n" not in location
    assert "x=1" not in r.headers.get("Set-Cookie", "")


def test_staff_lookup_with_a_nul_and_huge_ids_are_4xx(client, rt):
    _sign_in(client, rt)
    token = _csrf(client, "/staff/members")
    r = client.post("/staff/members", data={"q": "+1312555\x000101", "csrf_token": token})
    assert r.status_code == 400, r.status_code
    r = client.post("/staff/members", data={"q": "\x00", "csrf_token": token})
    assert r.status_code == 400, r.status_code
    assert client.get(f"/staff/members/{HUGE}").status_code == 404
    assert client.get(f"/staff/broadcasts/{HUGE}").status_code == 404
    r = client.get("/staff/audit", query_string={"before": str(HUGE)})
    assert r.status_code in (200, 400), r.status_code
    r = client.get("/staff/audit", query_string={"before": str(-HUGE)})
    assert r.status_code in (200, 400), r.status_code


@pytest.mark.parametrize("name", sorted(courier_telegram.payloads()))
def test_older_bot_api_updates_from_courier_are_read_tolerantly(client, standin, name, caplog):
    caplog.set_level(logging.INFO, logger="firma.telegram")
    update = courier_telegram.payloads()[name]
    before = len(standin.sent)
    r = tu.post_update(client, update)
    assert r.status_code == 200, (name, r.status_code, r.data[:200])
    answered = bool(r.data) or len(standin.sent) > before
    if name == "empty":
        assert not answered
    else:  # every message from a person gets an answer: /start the petition, the rest a prompt or help
        assert answered, name


def test_start_in_the_older_format_starts_the_petition_and_logs_what_was_missing(client, standin, caplog):
    caplog.set_level(logging.INFO, logger="firma.telegram")
    r = tu.post_update(client, courier_telegram.payloads()["start"])
    assert r.status_code == 200
    texts = [json.loads(r.data)["text"]] if r.data else [m["text"] for m in standin.sent]
    assert any("End S-Comm Now" in t for t in texts), texts
    assert any("is_bot" in rec.getMessage() for rec in caplog.records), [rec.getMessage() for rec in caplog.records]


# --- broadcast placeholders -------------------------------------------------------------------------

SPECS = {"{name:x}": "{name:x}", "{name!z}": "{name!z}", "{name:{first_name}}": "{name:{first_name}}",
         "{name:>99999999999999999999}": "{name:>99999999999999999999}", "{first_name!r}": "{first_name!r}",
         "{name.upper}": "{name.upper}", "{name[0]}": "{name[0]}", "{0}": "{0}", "{}": "{}"}


@pytest.mark.parametrize("typed", sorted(SPECS))
def test_a_placeholder_with_a_format_spec_is_a_clear_error_in_the_console(client, rt, typed):
    from tests.support import broadcasts as h

    h.add_signer(rt, "+13125550001")
    _sign_in(client, rt)
    for action in ("preview", "confirm"):
        data = {"csrf_token": _csrf(client, "/staff/broadcasts/new"), "campaign": "end-scomm",
                "message_en": f"Hi {typed}, we won", "message_es": "", "channel": "all", "action": action}
        r = client.post("/staff/broadcasts/new", data=data)
        assert r.status_code == 400, (action, r.status_code)
        page = r.get_data(as_text=True)
        import html as html_lib

        assert html_lib.escape(SPECS[typed], quote=True) in page or SPECS[typed] in page, page[:2000]
        assert "{first_name}" in page


@pytest.mark.parametrize("typed", sorted(SPECS))
def test_a_placeholder_with_a_format_spec_is_a_clear_error_in_the_cli_dry_run(rt, typed):
    from click.testing import CliRunner

    from webhooks.cli import main

    env = {"FIRMA_DATABASE_URL": rt.settings.database_url, "FIRMA_QUIET_HOURS": "off"}
    res = CliRunner().invoke(main, ["broadcast", "--campaign", "end-scomm", "--message", f"Hi {typed}", "--dry-run"],
                             env=env, catch_exceptions=False)
    assert res.exit_code == 1, res.output
    assert SPECS[typed] in res.output and "{first_name}" in res.output and "Traceback" not in res.output


def test_a_stored_template_with_a_format_spec_still_renders():
    """Broadcasts queued before the check existed: the worker sends the text, not a crash."""
    from bots import broadcast_plan as plan

    assert plan.personalise("Hi {name:x}!", "Ana López") == "Hi {name:x}!"
    assert plan.personalise("Hi {first_name}!", "Ana López") == "Hi Ana!"
