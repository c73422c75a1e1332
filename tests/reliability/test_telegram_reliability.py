"""Reliability and security of the Telegram channel: the per-sender limit, `firma member forget` for a
Telegram member (alone and linked to an SMS member), logs without the bot token, the webhook secret
or user ids, HTML escaping in every message, the database down and the Bot API failing mid-reply."""

from __future__ import annotations

import json
import logging
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bots import privacy
from bots.channels.telegram.gateway import Gateway
from bots.channels.telegram.replies import send_message
from bots.service import INBOUND_LIMIT_PER_MINUTE as LIMIT
from storage import inbound as hot
from storage import repository as repo
from storage.models import CampaignCount, ConsentEvent, Conversation, Member, ProcessedMessage, Signature
from tests.reliability.test_sms_fuzz import check_no_partial_rows, table_counts
from tests.support import telegram_updates as tu
from tests.support.standins import TelegramFailure, TelegramStandIn, telegram_slow
from tests.support.telegram_fixtures import settings, standin  # noqa: F401 - fixtures
from tests.support.twilio_client import messages, post_sms

ANA = 5_123_456  # a short (7-digit) user id, as early Telegram accounts have
ROSA = 987_654_321
PHONE = "+13125550177"


def say(client, standin, user_id, text):
    """The texts the member reads for one update (the response body's, or those sent via the Bot API)."""
    before = len(standin.sent)
    response = tu.post_update(client, tu.text_update(user_id, text))
    assert response.status_code == 200, response.data
    if response.data and response.get_json()["method"] == "sendMessage":
        return [response.get_json()["text"]]
    return [m["text"] for m in standin.sent[before:]]


def sign(client, standin, user_id, name="Ana María López", zip_code="60601"):
    return [say(client, standin, user_id, text) for text in ("/start end-scomm", name, zip_code)]


def without_counters(counts):
    return {k: v for k, v in counts.items() if k != "inbound_counters"}


# --- the per-sender inbound limit -------------------------------------------------------------------


def test_a_flood_from_one_telegram_user_is_throttled_but_stop_still_works(client, rt, standin, clock):
    for i in range(LIMIT):  # /help: answered every time (free text is acknowledged once a day, then kept)
        assert say(client, standin, ANA, "/start end-scomm" if i == 0 else "/help")
    before, sent = table_counts(rt), len(standin.sent)
    for i in range(20):  # a script: 200 with no body (Telegram does not redeliver), nothing sent or stored
        response = tu.post_update(client, tu.text_update(ANA, f"more spam {i}"))
        assert response.status_code == 200 and not response.data
    response = tu.post_update(client, tu.contact_update(ANA, PHONE))  # a contact share counts too
    assert response.status_code == 200 and not response.data
    assert len(standin.sent) == sent
    assert without_counters(table_counts(rt)) == without_counters(before), "nothing stored but the counter"

    assert say(client, standin, ROSA, "/start")  # someone else, the same minute: answered

    stop = say(client, standin, ANA, "/stop")  # /stop is never throttled
    assert len(stop) == 1 and "unsubscribed" in stop[0]
    with rt.db.uow() as uow:
        member = repo.find_member(uow.session, "telegram", str(ANA))
        assert member.opted_out_at is not None
        assert repo.consent_history(uow.session, member.id)[-1].kind == "opt_out"
    before = table_counts(rt)
    assert say(client, standin, ANA, "/stop") == []  # a /stop flood once opted out: nothing more
    assert without_counters(table_counts(rt)) == without_counters(before)

    clock.advance(minutes=1)
    assert say(client, standin, ANA, "/start")  # a new minute: heard again, and subscribed again
    with rt.db.uow() as uow:
        assert repo.find_member(uow.session, "telegram", str(ANA)).opted_out_at is None
    check_no_partial_rows(rt)


def test_a_throttled_button_press_still_gets_its_callback_answered(client, rt, standin):
    for i in range(LIMIT):
        say(client, standin, ANA, f"x{i}")
    response = tu.post_update(client, tu.callback_update(ANA, "lang:es"))
    # the button stops spinning (answerCallbackQuery in the body), and nothing else happens
    assert response.status_code == 200 and response.get_json()["method"] == "answerCallbackQuery"
    with rt.db.uow() as uow:
        assert repo.find_member(uow.session, "telegram", str(ANA)).language == "en"


# --- forget -----------------------------------------------------------------------------------------


def forget(rt, contact, *extra):
    from webhooks.cli import Context, main

    ctx = Context()
    ctx._settings, ctx._runtime = rt.settings.with_(secret_key="test-secret", secret_key_generated=False), rt
    return CliRunner().invoke(main, ["member", "forget", contact, "--yes", *extra], obj=ctx, catch_exceptions=False)


def stored_texts(session) -> str:
    return "\n".join([e.text_sent or "" for e in session.scalars(select(ConsentEvent))] +
                     [r or "" for r in session.scalars(select(ProcessedMessage.response))] +
                     [c.pending_name or "" for c in session.scalars(select(Conversation))])


NAME = "Ana <b>O'Brien</b> & López"  # quoted, escaped (&lt; &amp;) and JSON-escaped in stored replies


def test_forget_a_telegram_member(client, rt, standin, clock):
    replies = sign(client, standin, ANA, NAME)
    assert "&lt;b&gt;O'Brien&lt;/b&gt; &amp; López" in replies[1][0]  # escaped in Telegram HTML
    sign(client, standin, ROSA, "Rosa Martínez", "60614")
    with rt.db.uow() as uow:
        counts = repo.signature_counts(uow.session)
        ana_id = repo.find_member(uow.session, "telegram", str(ANA)).id
        assert "O'Brien" in stored_texts(uow.session)

    result = forget(rt, str(ANA))
    assert result.exit_code == 0, result.output
    assert "1 signature(s) kept anonymously" in result.output

    with rt.db.uow() as uow:
        s = uow.session
        assert repo.signature_counts(s) == counts
        member = s.get(Member, ana_id)
        assert member.address == privacy.forget_token("test-secret", "telegram", str(ANA))
        assert member.opted_out_at is not None and member.unreachable_at is not None
        assert repo.find_member(s, "telegram", str(ANA)) is None
        sig = s.scalars(select(Signature).where(Signature.member_id == ana_id)).one()
        assert (sig.name, sig.zip_code, sig.city, sig.state) == ("", "", "", "")
        text = stored_texts(s)
        for piece in ("O'Brien", "O&#x27;Brien", "Brien", "Ana", str(ANA)):
            assert piece not in text
        assert "Thanks, Rosa Mart" in text  # someone else's replies are untouched
        assert repo.consent_history(s, ana_id)[-1].kind == "forget"

    # They write again: a new member, opted out from the start; chatter gets no answer, /stop is confirmed
    clock.advance(minutes=1)
    assert say(client, standin, ANA, "hello?") == []
    with rt.db.uow() as uow:
        again = repo.find_member(uow.session, "telegram", str(ANA))
        assert again.id != ana_id and again.opted_out_at is not None
    assert "unsubscribed" in say(client, standin, ANA, "/stop")[0]
    assert "End S-Comm Now" in say(client, standin, ANA, "/start end-scomm")[0]  # their own new start
    check_no_partial_rows(rt)


def test_forget_a_telegram_member_linked_to_an_sms_member_forgets_the_person(client, rt, standin, clock):
    for body in ("SCOMM", "Ana López", "60601"):
        post_sms(client, PHONE, body)
    sign(client, standin, ANA, "Ana López")
    with rt.db.uow() as uow:
        assert repo.signature_count(uow.session, "end-scomm") == 2
    assert tu.post_update(client, tu.contact_update(ANA, PHONE[1:])).status_code == 200  # linked: one person
    with rt.db.uow() as uow:
        assert repo.signature_count(uow.session, "end-scomm") == 1
        ids = {m.channel: m.id for m in uow.session.scalars(select(Member))}

    result = forget(rt, str(ANA))
    assert result.exit_code == 0, result.output
    assert "with 1 contact(s) linked to the same person" in result.output

    with rt.db.uow() as uow:
        s = uow.session
        assert repo.signature_count(s, "end-scomm") == 1  # still one person, counted once
        assert s.scalar(select(CampaignCount.signatures).where(CampaignCount.campaign == "end-scomm")) == 1
        assert repo.recount(s, "end-scomm") == 1
        tg, sms = s.get(Member, ids["telegram"]), s.get(Member, ids["sms"])
        # No row names the person any more: the link stays, between two anonymous rows.
        assert tg.person_id == sms.id
        assert tg.address.startswith("forgotten:") and sms.address.startswith("forgotten:")
        assert sms.address == privacy.forget_token("test-secret", "sms", PHONE)
        assert tg.opted_out_at is not None and sms.opted_out_at is not None
        assert all(sig.name == "" for sig in s.scalars(select(Signature)))
        assert "3125550177" not in stored_texts(s) and "Ana" not in stored_texts(s)
        assert [e.kind for e in repo.consent_history(s, sms.id)][-1] == "forget"

    clock.advance(minutes=1)
    assert messages(post_sms(client, PHONE, "hello")) == []  # the number starts opted out
    # Sharing the same number again from a new chat: a forgotten number is linked, but starts opted out.
    assert tu.post_update(client, tu.contact_update(ROSA, PHONE[1:])).status_code == 200
    with rt.db.uow() as uow:
        assert repo.find_member(uow.session, "sms", PHONE).opted_out_at is not None
    check_no_partial_rows(rt)


def test_a_forgotten_number_shared_first_on_telegram_starts_opted_out(client, rt, standin, clock):
    post_sms(client, PHONE, "SCOMM")
    assert forget(rt, PHONE).exit_code == 0
    assert tu.post_update(client, tu.contact_update(ROSA, PHONE)).status_code == 200  # creates the SMS member anew
    with rt.db.uow() as uow:
        sms = repo.find_member(uow.session, "sms", PHONE)
        assert sms is not None and sms.opted_out_at is not None


# --- logs -------------------------------------------------------------------------------------------

REAL_TOKEN = "7123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
WEBHOOK_SECRET = "whsec-Very-Long-Secret_0123456789"


@pytest.fixture
def real_standin():
    with TelegramStandIn(token=REAL_TOKEN) as server:
        yield server


def test_no_bot_token_webhook_secret_or_user_id_in_the_logs(db_url, catalog, clock, real_standin, caplog):
    from bots.runtime import Runtime
    from config.settings import Settings
    from webhooks import create_app

    settings = Settings(database_url=db_url, secret_key="test-secret", secret_key_generated=False,
                        telegram_bot_token=REAL_TOKEN, telegram_webhook_secret=WEBHOOK_SECRET,
                        telegram_api_url=real_standin.url)
    rt = Runtime.build(settings, catalog=catalog)
    rt.clock = clock
    try:
        client = create_app({"TESTING": True}, rt).test_client()
        caplog.set_level(logging.DEBUG)
        for name in ("telegram", "httpx", "httpcore", "sqlalchemy.engine"):
            logging.getLogger(name).setLevel(logging.DEBUG)  # as an operator chasing a problem would
        from config import redaction

        redaction.install()  # puts the libraries that dump request bodies back at INFO

        def post(update, secret=WEBHOOK_SECRET):
            return tu.post_update(client, update, secret=secret)

        for text in ("/start end-scomm", "Ana López", "60601", "/help"):  # several replies via the Bot API
            assert post(tu.text_update(ANA, text)).status_code == 200
        real_standin.fail(ROSA, TelegramFailure(500, "Internal Server Error"))  # failures are logged
        assert post(tu.text_update(ROSA, "/start end-scomm")).status_code == 200
        for i in range(LIMIT + 1):  # the throttle's warning names the sender
            post(tu.text_update(ROSA, f"spam {i}"))
        assert post(tu.text_update(ANA, "x"), secret="wrong").status_code == 403
        assert post(tu.text_update(ANA, "x"), secret=None).status_code == 403
        Gateway(REAL_TOKEN, "http://127.0.0.1:9").perform([send_message(ANA, "hi")])  # refused
    finally:
        logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
        rt.db.dispose()
    assert len(real_standin.sent) >= 4
    text = caplog.text + "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "HTTP Request: POST" in text and "/bot[redacted]/sendMessage" in text  # httpx logged, token gone
    assert "sendMessage to *****4321 failed twice" in text and "*****4321 on telegram" in text
    for secret in (REAL_TOKEN, REAL_TOKEN.split(":")[1], WEBHOOK_SECRET, "test-secret"):
        assert secret not in text
    for user_id in (ANA, ROSA):
        assert str(user_id) not in text
    library = "\n".join(r.getMessage() for r in caplog.records if r.name.split(".")[0] in ("telegram", "httpx", "httpcore"))
    assert library and "Ana" not in library and "chat_id" not in library  # no request bodies: no names


# --- HTML -------------------------------------------------------------------------------------------


def test_names_and_titles_are_escaped_in_every_telegram_html_message(settings, catalog, clock, standin, tmp_path):
    from pathlib import Path

    from bots.runtime import Runtime
    from config.campaigns import load_catalog
    from webhooks import create_app

    hostile = "<i>Fin</i> & <b>S-Comm</b> <script>x</script>"
    root = Path(__file__).resolve().parents[2]
    text = (root / "config" / "campaigns.toml").read_text(encoding="utf-8")
    text = text.replace('title = "End S-Comm Now"', f"title = '{hostile}'")
    path = tmp_path / "campaigns.toml"
    path.write_text(text, encoding="utf-8")
    rt = Runtime.build(settings, catalog=load_catalog(path))
    rt.clock = clock
    try:
        client = create_app({"TESTING": True}, rt).test_client()
        every = [m for reply in sign(client, standin, ANA, "Ana <Bob> & Co") for m in reply]
        every += say(client, standin, ANA, "/start end-scomm")  # already signed: quotes the title
        every += say(client, standin, ANA, "/help")
        group = tu.post_update(client, tu.group_update())
        every.append(group.get_json()["text"])
    finally:
        rt.db.dispose()
    allowed = {"b", "/b"}  # the only markup firma itself writes
    import re

    for message in every:
        tags = set(re.findall(r"<(/?\w+)", message))
        assert tags <= allowed, message
        assert "&" not in re.sub(r"&(lt|gt|amp);", "", message), message  # every & is an entity
    joined = "\n".join(every)
    assert "Ana &lt;Bob&gt; &amp; Co" in joined
    assert "&lt;i&gt;Fin&lt;/i&gt; &amp; &lt;b&gt;S-Comm&lt;/b&gt; &lt;script&gt;x&lt;/script&gt;" in joined
    # Button labels are plain text (Telegram does not parse them): the title as it is, not escaped.
    labels = [b["text"] for m in standin.sent if m.get("reply_markup")
              for row in (json.loads(m["reply_markup"]) if isinstance(m["reply_markup"], str)
                          else m["reply_markup"]).get("inline_keyboard", []) for b in row]
    assert all("&lt;" not in label for label in labels)


# --- faults -----------------------------------------------------------------------------------------


def test_database_unreachable_gives_503_quickly_and_writes_nothing(settings, catalog, clock, standin):
    import socket

    from bots.runtime import Runtime
    from webhooks import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rt = Runtime.build(settings.with_(database_url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/firma"),
                       catalog=catalog)
    try:
        client = create_app({"TESTING": True}, rt).test_client()
        for update in (tu.text_update(ANA, "/start end-scomm"), tu.contact_update(ANA, PHONE),
                       tu.my_chat_member_update(ANA, "kicked"), tu.group_update(), tu.callback_update(ANA, "lang:es")):
            response = tu.post_update(client, update)
            assert response.status_code == 503, response.data  # Telegram redelivers
            assert response.headers["Retry-After"] == "5"
        assert standin.sent == []  # nothing answered on the strength of a transaction that never was
    finally:
        rt.db.dispose()


def test_database_lost_mid_update_then_back_handles_the_redelivery_once(client, rt, standin, monkeypatch):
    say(client, standin, ANA, "/start end-scomm")
    say(client, standin, ANA, "Ana López")
    update = tu.text_update(ANA, "60601")
    real = hot.add_signature

    def fail(*args, **kwargs):
        from sqlalchemy.exc import OperationalError

        raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))

    monkeypatch.setattr(hot, "add_signature", fail)
    before = table_counts(rt)
    assert tu.post_update(client, update).status_code == 503
    assert without_counters(table_counts(rt)) == without_counters(before)  # the claim rolled back too
    monkeypatch.setattr(hot, "add_signature", real)
    sent = len(standin.sent)
    response = tu.post_update(client, update)  # Telegram's redelivery: handled now, once
    assert response.status_code == 200 and "Done!" in response.get_json()["text"]
    assert tu.post_update(client, update).get_json()["text"].startswith("Done! Ana López of Chicago")  # again
    with rt.db.uow() as uow:
        assert repo.signature_count(uow.session, "end-scomm") == 1
    assert len(standin.sent) == sent
    check_no_partial_rows(rt)


def consent_rows(rt):
    with rt.db.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(ConsentEvent))


def test_bot_api_5xx_once_is_retried_and_the_reply_arrives_in_order(client, rt, standin):
    standin.fail(ANA, TelegramFailure(502, "Bad Gateway"), None)
    texts = say(client, standin, ANA, "/start end-scomm")  # two messages, both via the Bot API
    assert len(texts) == 3 and texts[0] == texts[1]  # the failed call, its retry, then the question
    assert [m["text"] for m in standin.sent][-2:] == texts[1:]
    assert texts[1].startswith("<b>End S-Comm Now</b>") and "full name" in texts[2]


def test_bot_api_down_the_rest_of_the_reply_is_not_sent_and_a_redelivery_records_nothing_twice(client, rt, standin):
    standin.fail(ANA, TelegramFailure(500, "Internal Server Error"))
    update = tu.text_update(ANA, "/start end-scomm")
    response = tu.post_update(client, update)
    # 200: the update is handled and committed; Telegram must not redeliver it forever.
    assert response.status_code == 200 and not response.data
    intro_attempts = [m["text"] for m in standin.sent]
    assert len(intro_attempts) == 2 and all(t.startswith("<b>End S-Comm Now</b>") for t in intro_attempts)
    # the question is not sent after an intro that never arrived
    rows, consents = table_counts(rt), consent_rows(rt)

    standin.fail(ANA, None)  # the Bot API is back; Telegram redelivers anyway (our answer was slow)
    again = tu.post_update(client, update)
    assert again.status_code == 200 and not again.data and len(standin.sent) == 2  # nothing resent
    assert without_counters(table_counts(rt)) == without_counters(rows) and consent_rows(rt) == consents
    # The member's next message carries on where the conversation is: it asks for the name.
    assert "Thanks, Ana López" in say(client, standin, ANA, "Ana López")[0]
    check_no_partial_rows(rt)


@pytest.mark.slow
def test_a_bot_api_timeout_is_not_retried_and_bounds_the_reply(client, app, rt, standin):
    app.extensions["firma.telegram"] = Gateway(tu.TOKEN, standin.url, timeout=0.3)
    standin.fail(ANA, telegram_slow(1.0), None)  # the intro is sent, but its answer comes too late
    response = tu.post_update(client, tu.text_update(ANA, "/start end-scomm"))
    assert response.status_code == 200
    # One timeout bounds the reply: the intro is not sent twice, and nothing waits after it.
    assert len(standin.sent) == 1
    time.sleep(0.8)  # let the stand-in finish the slow call before it stops
