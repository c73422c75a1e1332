"""Privacy and security: no full phone number or secret in any log line, HTML escaped on every page,
and `firma member forget` erasing a member for good while keeping the count and the opt-out."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bots import privacy, service
from bots import channels
from bots.engine import Reply
from bots.runtime import Runtime
from config.campaigns import load_catalog
from config.redaction import Redactor, mask_phone
from storage import inbound as hot
from storage import repository as repo
from storage.models import ConsentEvent, Conversation, InboundCounter, Member, ProcessedMessage, Signature
from tests.support import twilio_client
from tests.support.twilio_client import messages, post_sms
from webhooks import create_app
from webhooks.cli import Context


def render(replies, language, channel, catalog):
    return channels.get(channel).render(replies, language, catalog)

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+13125550187"


# --- logs -------------------------------------------------------------------------------------------


def test_masking_keeps_only_the_last_four_digits():
    assert mask_phone("from +13125550187 to +15005550006") == "from +*******0187 to +*******0006"
    assert mask_phone("typed (312) 555-0187, 312.555.0188 or +1 312 555 0189") == \
        "typed (***) ***-0187, ***.***.0188 or +* *** *** 0189"
    assert mask_phone("sim:+13125550187") == "sim:+*******0187"
    assert mask_phone("From=%2B13125550187&Body=hi") == "From=%2B*******0187&Body=hi"
    assert mask_phone("('sms', '13125550187')") == "('sms', '*******0187')"
    assert mask_phone("at 2026-11-27 18:00:00, 3 of 30, port 5432") == "at 2026-11-27 18:00:00, 3 of 30, port 5432"
    assert mask_phone("SM0123456789abcdef0123456789abcdef") == "SM0123456789abcdef0123456789abcdef"
    # members' numbers from elsewhere (WhatsApp), written as people write them: only the last four kept
    assert mask_phone("typed +52 55 1234 5678, +502 2345-6789, +44 20 7946 0958 and +52 (55) 1234-5678") == \
        "typed +** ** **** 5678, +*** ****-6789, +** ** **** 0958 and +** (**) ****-5678"
    assert mask_phone("v1.2.3, 10:30-11:45, 12.5 MB, 2026-12-05 +0100") == "v1.2.3, 10:30-11:45, 12.5 MB, 2026-12-05 +0100"
    r = Redactor(["s3cret-token-value"])
    assert r.redact("postgresql://firma:hunter22@db/firma token=s3cret-token-value bot123456:" + "A" * 35) == \
        "postgresql://firma:[redacted]@db/firma token=[redacted] bot[redacted]"


def _assert_clean(text: str, phones: list[str], secrets: list[str]) -> None:
    for phone in phones:
        assert phone not in text and phone.lstrip("+") not in text, phone
    for secret in secrets:
        assert secret not in text, secret


def test_no_phone_number_or_secret_in_the_logs(app, client, rt, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    # SQL echo, and the inbound hot path's statement log (storage.inbound, DEBUG): parameters hold numbers
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
    try:
        for body in ("SCOMM", "Ana López", "60601", "HELP"):
            assert post_sms(client, PHONE, body).status_code == 200
        for i in range(service.INBOUND_LIMIT_PER_MINUTE + 1):  # the throttle's warning names the sender
            post_sms(client, "+13125550188", f"spam {i}")
        assert post_sms(client, PHONE, "x", token="wrong-token").status_code == 403

        # A request that fails inside: the traceback quotes the number and a secret; the log must not.
        def explode(*args, **kwargs):
            raise RuntimeError(f"cannot store {PHONE} with {twilio_client.TOKEN}")

        monkeypatch.setattr(hot, "add_signature", explode)
        app.config["PROPAGATE_EXCEPTIONS"] = False
        post_sms(client, "+13125550189", "SCOMM")
        post_sms(client, "+13125550189", "Rosa Martinez")
        assert post_sms(client, "+13125550189", "60601").status_code == 500
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)

    text = caplog.text + "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "RuntimeError: cannot store +*******0187 with [redacted]" in text  # the failure is logged...
    assert "*******0188" in text  # ...and the throttled sender, by its last four digits
    assert "INSERT INTO" in text  # the SQL echo was captured
    _assert_clean(text, [PHONE, "+13125550188", "+13125550189"], [twilio_client.TOKEN, rt.settings.secret_key])


def test_the_cli_masks_its_logs_too(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FIRMA_DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}",
           "TWILIO_AUTH_TOKEN": twilio_client.TOKEN, "FIRMA_SECRET_KEY": "another-long-secret-key"}
    code = ("import logging, sys\n"
            "from webhooks.cli import main\n"
            "try:\n    main(['db', 'upgrade'])\nexcept SystemExit:\n    pass\n"
            f"logging.getLogger('firma.test').warning('texted %s using %s and %s', '{PHONE}', "
            f"'{twilio_client.TOKEN}', 'another-long-secret-key')\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert "texted +*******0187 using [redacted] and [redacted]" in out.stderr, out.stderr
    _assert_clean(out.stdout + out.stderr, [PHONE], [twilio_client.TOKEN, "another-long-secret-key"])


@pytest.mark.parametrize("started_by", ["app", "cli"])
def test_the_database_password_is_redacted_where_a_line_quotes_it_alone(settings, catalog, caplog, monkeypatch,
                                                                         started_by):
    """Outside its URL too (a driver's error may quote it), and as the server knows it: its special
    characters are percent-encoded in FIRMA_DATABASE_URL, not in what is redacted."""
    password = f"{started_by}-p@ss/w%rd"  # one per case: the secrets of a process accumulate
    url = f"postgresql+psycopg://firma:{quote(password, safe='')}@127.0.0.1:5/firma"  # never connected to
    if started_by == "app":
        rt = Runtime.build(settings.with_(database_url=url), catalog=catalog)
        create_app({"TESTING": True}, rt)
        rt.db.dispose()
    else:
        monkeypatch.setenv("FIRMA_DATABASE_URL", url)
        monkeypatch.setenv("FIRMA_SECRET_KEY", "another-long-secret-key")
        assert Context().settings.database_url == url
    logging.getLogger("firma.test").warning("the server said: password %s is wrong", password)
    assert "the server said: password [redacted] is wrong" in caplog.messages
    assert password not in caplog.text


def test_tracebacks_python_prints_itself_are_redacted_too(tmp_path):
    """A thread that dies, or the process itself, print their traceback without logging."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TWILIO_AUTH_TOKEN": twilio_client.TOKEN}
    code = ("import threading\n"
            "from config import redaction\n"
            f"redaction.install(['{twilio_client.TOKEN}'])\n"
            f"def boom():\n    raise RuntimeError('token {twilio_client.TOKEN} for {PHONE}')\n"
            "t = threading.Thread(target=boom); t.start(); t.join()\n"
            "boom()\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1 and out.stderr.count("RuntimeError: token [redacted] for +*******0187") == 2, out.stderr
    _assert_clean(out.stdout + out.stderr, [PHONE], [twilio_client.TOKEN])


# --- HTML -------------------------------------------------------------------------------------------

HOSTILE = '<script>alert("t")</script><img src=x onerror=alert(1)> & Co'


@pytest.fixture
def hostile_catalog(tmp_path):
    text = (ROOT / "config" / "campaigns.toml").read_text(encoding="utf-8")
    text = text.replace('title = "End S-Comm Now"', f"title = '{HOSTILE}'")
    text = text.replace('title = "Fin a S-Comm Ya"', f"title = '{HOSTILE} es'")
    path = tmp_path / "campaigns.toml"
    path.write_text(text, encoding="utf-8")
    return load_catalog(path)


def test_a_hostile_campaign_title_is_escaped_on_pages_and_in_telegram_html(settings, hostile_catalog, clock):
    assert hostile_catalog.default_campaign.text("en").title == HOSTILE
    rt = Runtime.build(settings, catalog=hostile_catalog)
    try:
        client = create_app({"TESTING": True, "SIMULATOR_OPEN": True}, rt).test_client()
        page = client.get("/simulator").get_data(as_text=True)
        assert "<script>alert" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; Co" in page
        assert client.get("/api/campaigns/end-scomm").get_json()["title"] == HOSTILE  # JSON: as data
        from tests.support.simulator import headers

        reply = client.post("/simulator/send", json={"channel": "telegram", "address": "42", "text": "/start"},
                            headers=headers(client))
        html = " ".join(reply.get_json()["messages"])
        assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html
    finally:
        rt.db.dispose()
    texts = render([Reply("already_signed", campaign="end-scomm")], "en", "telegram", hostile_catalog)
    assert "<script>" not in texts[0] and "&lt;script&gt;" in texts[0]


# --- forget -----------------------------------------------------------------------------------------


def invoke(rt, *args, secret="test-secret"):
    from webhooks.cli import Context, main

    ctx = Context()
    ctx._settings = rt.settings.with_(secret_key=secret, secret_key_generated=secret is None) if secret else \
        rt.settings.with_(secret_key_generated=True)
    ctx._runtime = rt
    return CliRunner().invoke(main, list(args), obj=ctx, catch_exceptions=False)


def test_forget_erases_personal_data_keeps_the_count_and_the_opt_out(client, rt, clock):
    for body in ("SCOMM", "Ana López", "60601"):
        post_sms(client, PHONE, body)
    for body in ("FIRMA", "Rosa Martínez", "60614"):  # someone else, untouched
        post_sms(client, "+13125550190", body)
    post_sms(client, PHONE, "HELP")
    with rt.db.uow() as uow:
        counts_before = repo.signature_counts(uow.session)
        member_id = repo.find_member(uow.session, "sms", PHONE).id

    result = invoke(rt, "member", "forget", PHONE, "--yes")
    assert result.exit_code == 0, result.output
    assert "1 signature(s) kept anonymously" in result.output

    with rt.db.uow() as uow:
        s = uow.session
        assert repo.signature_counts(s) == counts_before  # the anonymous count is unchanged
        assert repo.find_member(s, "sms", PHONE) is None
        member = s.get(Member, member_id)
        assert member.address.startswith("forgotten:") and "3125550187" not in member.address
        assert member.address == privacy.forget_token("test-secret", "sms", PHONE)
        assert member.opted_out_at is not None
        sig = s.scalars(select(Signature).where(Signature.member_id == member_id)).one()
        assert (sig.name, sig.zip_code, sig.city, sig.state) == ("", "", "", "")
        assert s.get(Conversation, member_id).pending_name is None
        assert s.scalar(select(func.count()).select_from(InboundCounter).where(InboundCounter.address == PHONE)) == 0
        history = repo.consent_history(s, member_id)
        assert history[-1].kind == "forget" and history[-1].cause == "erasure request (cli)"
        for text in [e.text_sent or "" for e in s.scalars(select(ConsentEvent))] + \
                [r or "" for r in s.scalars(select(ProcessedMessage.response))]:
            assert "Ana" not in text and "Lopez" not in text and "L\\u00f3pez" not in text
        rosa = s.scalars(select(Signature).where(Signature.name == "Rosa Martínez")).one()
        assert rosa.zip_code == "60614"

    from bots.exports import export_lines

    csv_text = "".join(export_lines(rt, "end-scomm", include_contact=True))
    assert "Rosa" in csv_text and "forgotten" not in csv_text and csv_text.count("\r\n") == 2

    # They text again: a new row, opted out from the start. Chatter gets no answer...
    clock.advance(minutes=1)
    assert messages(post_sms(client, PHONE, "hello?")) == []
    with rt.db.uow() as uow:
        again = repo.find_member(uow.session, "sms", PHONE)
        assert again.id != member_id and again.opted_out_at is not None
        assert uow.session.scalar(select(func.count()).select_from(Signature)
                                  .where(Signature.member_id == again.id)) == 0
        assert repo.find_member(uow.session, "sms", service.privacy.forget_token("test-secret", "sms", PHONE))
    # ...STOP is still confirmed, and only a keyword they text themselves starts over (a new consent).
    assert "unsubscribed" in messages(post_sms(client, PHONE, "STOP"))[0]
    assert "End S-Comm Now" in messages(post_sms(client, PHONE, "SCOMM"))[0]


def test_forget_refuses_without_a_stable_secret_and_for_an_unknown_contact(client, rt):
    post_sms(client, PHONE, "SCOMM")
    result = CliRunner().invoke(__import__("webhooks.cli", fromlist=["main"]).main,
                                ["member", "forget", PHONE, "--yes"], obj=_ctx(rt, generated=True))
    assert result.exit_code != 0 and "FIRMA_SECRET_KEY is not set" in result.output
    result = invoke(rt, "member", "forget", "+13125559999", "--yes")
    assert result.exit_code != 0 and "no member with the contact +13125559999" in result.output
    with rt.db.uow() as uow:
        assert repo.find_member(uow.session, "sms", PHONE) is not None


def _ctx(rt, generated: bool):
    from webhooks.cli import Context

    ctx = Context()
    ctx._settings = rt.settings.with_(secret_key_generated=generated)
    ctx._runtime = rt
    return ctx


def test_db_purge_drops_old_message_ids_and_counters_only(client, rt, clock):
    for body in ("SCOMM", "Ana López", "60601"):
        post_sms(client, PHONE, body)
    clock.advance(days=31)
    post_sms(client, "+13125550191", "SCOMM")
    result = invoke(rt, "db", "purge")
    assert result.exit_code == 0, result.output
    assert "purged 3 handled message(s) older than 30 days and 1 inbound counter(s)" in result.output
    with rt.db.uow() as uow:
        s = uow.session
        # the replies are gone but for the recent one; Twilio's ids stay, against replays (test_replay.py)
        assert s.scalar(select(func.count()).select_from(ProcessedMessage)
                        .where(ProcessedMessage.response.is_not(None))) == 1
        assert s.scalar(select(func.count()).select_from(InboundCounter)) == 1
        assert s.scalar(select(func.count()).select_from(Signature)) == 1  # signatures are not touched


def test_pages_carry_security_headers(client):
    page = client.get("/simulator")
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    api = client.get("/api/campaigns/end-scomm")
    assert api.headers["X-Content-Type-Options"] == "nosniff"
    assert api.headers["Cache-Control"] == "public, max-age=5"  # the counter keeps its own caching
