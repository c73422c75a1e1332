"""Property-based tests of the staff console and the CLI's text inputs: whatever a signed-in staff
member (or someone with a stolen session) posts to any console form or path, the answer is a 2xx, 3xx
or 4xx, never a 500; whatever an operator types as a CLI argument, the command ends with a message
and an exit status, never a traceback.

The console's forms are found on its pages (every input, textarea and select of every form), so a
new field or form is fuzzed without changing this file."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from hypothesis import given, strategies as st

from bots import staff_accounts as staff_svc
from tests.reliability.test_sms_fuzz import ENDPOINT_EXAMPLES
from tests.support import broadcasts as h
from tests.support.staff import cheap_password_hashing

EMAIL = "organizer@example.org"
PASSWORD = "correct horse battery staple"
PAGES = ["/staff/", "/staff/members", "/staff/broadcasts/new", "/staff/campaigns/new",
         "/staff/campaigns/end-scomm/edit", "/staff/campaigns/end-scomm", "/staff/login"]
NASTY = ["", " ", "\x00", "a\x00b", "\r\n", "-1", "0", "9" * 30, str(2 ** 70), "1e400", "NaN", "{name:x}",
         "{name!z}", "{name:{first_name}}", "{name:>99999999999999999999}", "{", "}", "{zip}", "<script>x</script>",
         "../../etc/passwd", "%00", "2026-02-30", "0000-01-01", "9999-12-31", "SCOMM", "STOP", "end-scomm",
         "(312) 555-0102", "+13125550101", "on", "send", "preview", "confirm", "x" * 3000, "\u202eabc",
         "Ana María López", "es", "en", "all", "sms", "telegram", "CA", "606"]
text = st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), max_size=80), st.sampled_from(NASTY))
ids = st.one_of(st.integers(min_value=-(2 ** 70), max_value=2 ** 70), st.sampled_from([0, 1, 2 ** 63 - 1, 2 ** 63]))


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    cheap_password_hashing(monkeypatch)


@pytest.fixture
def staff_client(client, rt):
    h.add_signer(rt, "+13125550001")
    staff_svc.add_staff(rt.db, EMAIL, PASSWORD, rt.now())
    _post(client, "/staff/login", {"email": EMAIL, "password": PASSWORD}, page="/staff/login")
    assert client.get("/staff/").status_code == 200
    assert len(_forms(client)) >= 5  # the console's forms are found (the fuzzing below reaches them)
    return client


def _csrf(client, page="/staff/members") -> str:
    html = client.get(page).get_data(as_text=True)
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'name="csrf-token" content="([^"]+)"', html)
    return m.group(1) if m else ""


def _post(client, path, data, page="/staff/members"):
    return client.post(path, data={"csrf_token": _csrf(client, page), **data})


def _forms(client) -> list[tuple[str, list[str]]]:
    """(action, field names) of every form on the console's pages."""
    found = []
    for page in PAGES:
        html = client.get(page).get_data(as_text=True)
        for form in re.finditer(r"<form\b([^>]*)>(.*?)</form>", html, re.S):
            action = re.search(r'action="([^"]*)"', form.group(1))
            method = re.search(r'method="([^"]*)"', form.group(1))
            if method is None or method.group(1).lower() != "post":
                continue
            target = (action.group(1) if action and action.group(1) else page).replace("&amp;", "&")
            names = sorted(set(re.findall(r'name="([^"]+)"', form.group(2))) - {"csrf_token"})
            if target.rstrip("/") != "/staff/logout":
                found.append((target, names))
    return found


@ENDPOINT_EXAMPLES
@given(st.data())
def test_every_console_form_never_500(staff_client, data):
    forms = _forms(staff_client)
    assert forms  # (an example may have renamed or switched off the campaign whose pages hold some)
    action, names = data.draw(st.sampled_from(forms))
    values = {name: data.draw(text) for name in names if data.draw(st.booleans()) or name == "action"}
    r = _post(staff_client, action, values)
    assert r.status_code < 500, (action, values, r.status_code)


@ENDPOINT_EXAMPLES
@given(st.sampled_from(["/staff/members/{}", "/staff/broadcasts/{}", "/staff/broadcasts/{}.json",
                        "/staff/broadcasts/{}/cancel", "/staff/campaigns/{}", "/staff/campaigns/{}/edit",
                        "/staff/audit?before={}", "/staff/broadcasts/new?campaign={}", "/staff/login?next={}"]),
       st.one_of(ids.map(str), text))
def test_every_console_path_and_query_never_500(staff_client, pattern, value):
    r = staff_client.get(pattern.format(quote(value, safe="")))
    assert r.status_code < 500, (pattern, value, r.status_code)
    for post in ("/staff/broadcasts/{}/cancel", "/staff/campaigns/{}/export", "/staff/campaigns/{}/delivery",
                 "/staff/campaigns/{}/flyer", "/staff/campaigns/{}/default"):
        r = _post(staff_client, post.format(quote(value, safe="")), {"sure": "1", "language": value})
        assert r.status_code < 500, (post, value, r.status_code)


# --- the CLI ----------------------------------------------------------------------------------------


def _run(rt, args, stdin=""):
    from webhooks.cli import main

    env = {"FIRMA_DATABASE_URL": rt.settings.database_url, "FIRMA_SECRET_KEY": "a-long-enough-secret-key",
           "FIRMA_QUIET_HOURS": "off", "FIRMA_DEBUG": ""}
    result = CliRunner().invoke(main, args, env=env, input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
    assert "Traceback" not in result.output, (args, result.output)
    return result


@ENDPOINT_EXAMPLES
@given(text, text, text, text, text)
def test_broadcast_dry_run_never_a_traceback(rt, message, state, zip_prefix, since, campaign):
    _run(rt, ["broadcast", "--campaign", campaign if campaign else "end-scomm", "--message", message or "x",
              "--message-es", message, "--state", state, "--zip-prefix", zip_prefix, "--signed-since", since,
              "--dry-run"])


@ENDPOINT_EXAMPLES
@given(text, text, text)
def test_member_export_staff_and_status_never_a_traceback(rt, contact, word, password):
    _run(rt, ["member", "forget", contact, "--yes"])
    _run(rt, ["member", "forget", contact, "--channel", word, "--yes"])
    _run(rt, ["export", "--campaign", word])
    _run(rt, ["staff", "add", word], stdin=password + "\n")
    _run(rt, ["staff", "set-password", word], stdin=password + "\n")
    _run(rt, ["staff", "disable", word])
    _run(rt, ["broadcast", "status", word])
    _run(rt, ["broadcast", "cancel", word, "--yes"])
    _run(rt, ["db", "purge", "--days", word])
