"""Broadcasts in the staff console through Flask's test client: the guard and CSRF, the preview
(recipients, segments, encodings, the exact text), the confirmation, sending (rows only, no provider
call), the audit entry, the progress page, and deliveries on the member page."""

from __future__ import annotations

import re
import secrets

import pytest
from sqlalchemy import func, select

from bots.worker import Options, run_worker
from bots.runtime import utcnow
from bots.audit import BROADCAST
from storage.models import Broadcast, Delivery
from tests.e2e.test_staff import EMAIL, audit_rows, csrf_token, fast_hashing, sign_in, staff_user  # noqa: F401
from tests.support import broadcasts as h
from tests.support.standins import TWILIO_UNSUBSCRIBED

pytestmark = pytest.mark.pooler  # CI runs these through PgBouncer too (FIRMA_TEST_POOLER=1)

EN = "Hi {first_name}, we won! Thank you."
ES = "Hola {first_name}, ¡ganamos! ✊ Gracias."  # the raised fist is not GSM-7: UCS-2


@pytest.fixture
def signers(rt, twilio, telegram):
    """Two English and one Spanish SMS signer, one Telegram signer, and three who must not be reached."""
    rt.settings = h.settings_for(rt, twilio, telegram)
    ids = {
        "ana": h.add_signer(rt, "+13125550001", name="Ana María López"),
        "bob": h.add_signer(rt, "+13125550002", name="Bob Smith", zip_code="94110", state="CA",
                            tz="America/Los_Angeles"),
        "jose": h.add_signer(rt, "+13125550003", name="José Pérez", language="es"),
        "lupe": h.add_signer(rt, "1001", channel="telegram", name="Lupe"),
    }
    h.add_signer(rt, "+13125550004", opted_out=True)
    h.add_signer(rt, "+13125550005", simulated=True)
    h.add_signer(rt, "+13125550006", campaign="other")
    return ids


@pytest.fixture
def staff_client(client, staff_user):  # noqa: F811
    assert sign_in(client).status_code == 303
    return client


def drain_on_the_real_clock(rt) -> dict:
    """Run a worker until nothing is left, on the real clock (its rate slots and sleeps are real time),
    then give the runtime its test clock back: the staff session was signed in on that clock, and
    ends 12 hours after it by the runtime's clock (a real clock days later would sign it out)."""
    test_clock, rt.clock = rt.clock, utcnow
    try:
        return run_worker(rt, Options(drain=True, poll=0.2))
    finally:
        rt.clock = test_clock


def form(client, **values):
    """The compose form's fields; for action=send, with the one-time token of a fresh confirmation page,
    as a browser posts it."""
    data = {"csrf_token": csrf_token(client, "/staff/broadcasts/new"), "campaign": "end-scomm", "message_en": EN,
            "message_es": ES, "channel": "all", "state": "", "zip_prefix": "", "signed_since": ""}
    data.update(values)
    if data.get("action") == "send" and "send_token" not in data:
        data["send_token"] = send_token(client, data)
    return data


def send_token(client, data) -> str:
    """The token of the confirmation page for these values (a form with bad values has none: then one
    of the same shape, which the send refuses for the values before it looks at the token)."""
    r = client.post("/staff/broadcasts/new", data={**data, "action": "confirm"})
    m = re.search(r'name="send_token" value="([^"]+)"', r.get_data(as_text=True))
    if r.status_code == 200:
        assert m, "the confirmation page carries a one-time send token"
    return m.group(1) if m else secrets.token_urlsafe(24)


def cell(html: str, testid: str) -> str:
    m = re.search(rf'data-testid="{re.escape(testid)}"[^>]*>(.*?)</(tr|strong|span|article)>', html, re.S)
    assert m, f"no {testid} on the page"
    return re.sub(r"<[^>]+>", " ", m.group(1)).split()


def broadcasts_count(rt) -> tuple[int, int]:
    with rt.db.uow() as uow:
        return (uow.session.scalar(select(func.count()).select_from(Broadcast)),
                uow.session.scalar(select(func.count()).select_from(Delivery)))


def test_every_broadcast_route_refuses_anonymous_requests(client, rt, signers):
    for path in ("/staff/broadcasts", "/staff/broadcasts/", "/staff/broadcasts/new", "/staff/broadcasts/1",
                 "/staff/broadcasts/1.json", "/staff/broadcasts/1/cancel"):
        r = client.get(path)
        assert r.status_code == 302 and "/staff/login" in r.headers["Location"], path
    r = client.post("/staff/broadcasts/new", data={"campaign": "end-scomm", "message_en": EN, "action": "send"})
    assert r.status_code == 403
    assert broadcasts_count(rt) == (0, 0)


def test_a_post_without_the_csrf_token_is_refused(staff_client, rt, signers):
    data = form(staff_client, action="send", expected="4")
    del data["csrf_token"]
    r = staff_client.post("/staff/broadcasts/new", data=data)
    assert r.status_code == 400 and "The form expired" in r.get_data(as_text=True)
    data["csrf_token"] = "forged"
    assert staff_client.post("/staff/broadcasts/new", data=data).status_code == 400
    assert broadcasts_count(rt) == (0, 0)


def test_nav_links_the_broadcasts_and_the_list_starts_empty(staff_client, signers):
    assert '<a href="/staff/broadcasts/">Broadcasts</a>' in staff_client.get("/staff/").get_data(as_text=True)
    r = staff_client.get("/staff/broadcasts/")
    listing = r.get_data(as_text=True)
    assert "No broadcast yet." in listing and "It has not sent anything yet" in listing
    assert r.headers["X-Frame-Options"] == "DENY" and "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert '<a href="/staff/broadcasts/" aria-current="page">Broadcasts</a>' in listing


def test_preview_counts_segments_encodings_and_exact_texts(staff_client, rt, signers):
    r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="preview"))
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert cell(html, "preview-total") == ["4"]
    assert cell(html, "recipients-sms-en")[-1] == "2"
    assert cell(html, "recipients-sms-es")[-1] == "1"
    assert cell(html, "recipients-telegram-en")[-1] == "1"
    en, es = cell(html, "text-sms-en"), cell(html, "text-sms-es")
    assert "GSM-7" in en and "UCS-2" not in en
    assert "UCS-2" in es  # the ✊ forces UCS-2 for the whole Spanish SMS ...
    # ... so its 69 + notice characters take two 67-character segments, the English one segment
    assert re.search(r'data-testid="text-sms-es".*?data-testid="segments">2<', html, re.S)
    assert re.search(r'data-testid="text-sms-en".*?data-testid="segments">1<', html, re.S)
    assert cell(html, "preview-segments") == ["4"]  # 2 English x 1 + 1 Spanish x 2
    # the exact texts, for the sample name, with the STOP notice on SMS only
    assert "Hi Guadalupe, we won! Thank you. Reply STOP to opt out." in html
    assert "Hola Guadalupe, ¡ganamos! ✊ Gracias. Responde STOP para no recibir mas mensajes." in html
    assert re.search(r'data-testid="text-telegram-en".*?Hi Guadalupe, we won! Thank you.</p>', html, re.S)
    assert "Continue to send" in html
    assert broadcasts_count(rt) == (0, 0)  # a preview writes nothing


def test_preview_with_filters_and_without_spanish(staff_client, signers):
    html = staff_client.post("/staff/broadcasts/new",
                             data=form(staff_client, action="preview", message_es="", state="ca",
                                       channel="sms")).get_data(as_text=True)
    assert cell(html, "preview-total") == ["1"]
    assert cell(html, "recipients-sms-en")[-1] == "1"
    assert 'data-testid="text-telegram-en"' not in html
    html = staff_client.post("/staff/broadcasts/new",
                             data=form(staff_client, action="preview", message_es="")).get_data(as_text=True)
    assert "1 Spanish-speaking recipients will get the English text" in html
    # the Spanish speaker's preview is the English text with the English STOP notice
    assert re.search(r'data-testid="text-sms-es".*?Hi Guadalupe, we won! Thank you. Reply STOP to opt out.',
                     html, re.S)


@pytest.mark.parametrize("changes, message", [
    ({"state": "California"}, "state must be a two-letter code"),
    ({"zip_prefix": "6a"}, "ZIP prefix must be 1 to 5 digits"),
    ({"signed_since": "last week"}, "must be a date like 2026-11-01"),
    ({"message_en": "  "}, "the English text is empty"),
    ({"message_en": "Hi {nombre}"}, "only {name} and {first_name}"),
    ({"campaign": "nope"}, "no campaign"),
    ({"channel": "fax"}, "channel must be one of"),
])
def test_bad_input_is_a_clear_400_and_writes_nothing(staff_client, rt, signers, changes, message):
    for action in ("preview", "confirm", "send"):
        r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action=action, expected="4", **changes))
        assert r.status_code == 400, action
        assert message in r.get_data(as_text=True).replace("&#39;", "'")
    assert broadcasts_count(rt) == (0, 0)


def test_nobody_to_send_to_cannot_be_confirmed(staff_client, rt, signers):
    r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="confirm", state="NY"))
    assert r.status_code == 400 and "there is nobody to send to" in r.get_data(as_text=True)
    assert broadcasts_count(rt) == (0, 0)


def test_confirm_then_send_writes_rows_calls_no_provider_and_is_audited(staff_client, rt, signers, twilio, telegram):
    confirm = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="confirm"))
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "Send to 4 recipients?" in html
    assert 'name="expected" value="4"' in html and broadcasts_count(rt) == (0, 0)

    r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4"))
    assert r.status_code == 303
    with rt.db.uow() as uow:
        b = uow.session.scalars(select(Broadcast)).one()
        rows = list(uow.session.scalars(select(Delivery).order_by(Delivery.id)))
        assert (b.campaign, b.message_en, b.message_es, b.created_by) == ("end-scomm", EN, ES, f"staff:{EMAIL}")
        assert sorted((d.address, d.status) for d in rows) == [
            ("+13125550001", "pending"), ("+13125550002", "pending"), ("+13125550003", "pending"),
            ("1001", "pending")]
        bid = b.id
    assert r.headers["Location"].endswith(f"/staff/broadcasts/{bid}?created=1")
    assert twilio.requests == [] and telegram.requests == []  # the web request never calls a provider
    assert (EMAIL, "broadcast", str(bid), "end-scomm to 4 recipients (3 sms, 1 telegram)") in audit_rows(rt)
    audit_page = staff_client.get("/staff/audit").get_data(as_text=True)
    assert "broadcast" in audit_page and "end-scomm to 4 recipients" in audit_page

    page = staff_client.get(r.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="state">waiting<' in page and 'http-equiv="refresh"' in page
    assert "was queued for 4 recipients" in page and "the server's sending process has not picked it up" in page and page.count('data-testid="worker"') == 1
    assert staff_client.get(f"/staff/broadcasts/{bid}.json").get_json()["counts"]["pending"] == 4

    stats = drain_on_the_real_clock(rt)
    assert stats["sent"] == 4 and len(twilio.messages) == 3 and len(telegram.sent) == 1
    data = staff_client.get(f"/staff/broadcasts/{bid}.json").get_json()
    assert data["state"] == "finished" and data["counts"]["sent"] == 4 and data["done"] == 4
    page = staff_client.get(f"/staff/broadcasts/{bid}").get_data(as_text=True)
    assert 'data-testid="state">finished<' in page and 'http-equiv="refresh"' not in page
    assert re.search(r'data-testid="count-sent"><td>Sent</td><td class="num">4<', page)
    listing = staff_client.get("/staff/broadcasts/").get_data(as_text=True)
    assert f"#{bid}</a>" in listing and "finished" in listing and "It last sent at" in listing


def test_send_refuses_a_stale_confirmation(staff_client, rt, signers):
    h.add_signer(rt, "+13125550009", name="New Signer")  # signed after the confirmation said 4
    r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4"))
    html = r.get_data(as_text=True)
    assert r.status_code == 409 and "Send to 5 recipients?" in html and "it was 4" in html
    assert broadcasts_count(rt) == (0, 0)


def test_progress_of_an_unknown_broadcast_is_404(staff_client, signers):
    assert staff_client.get("/staff/broadcasts/999").status_code == 404
    assert staff_client.get("/staff/broadcasts/999.json").status_code == 404


def test_member_page_lists_the_broadcast_messages_sent(staff_client, rt, signers, twilio):
    twilio.fail("+13125550002", TWILIO_UNSUBSCRIBED)
    r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4"))
    assert r.status_code == 303
    drain_on_the_real_clock(rt)

    ana = staff_client.get(f"/staff/members/{signers['ana']}").get_data(as_text=True)
    section = ana[ana.index("Broadcast messages sent"):]
    assert "#1</a>" in section and "end-scomm" in section and f"staff:{EMAIL}" in section
    assert ">sent<" in section and "Hi Ana, we won! Thank you. Reply STOP to opt out." in section
    assert "1 broadcast message made for them" in ana

    jose = staff_client.get(f"/staff/members/{signers['jose']}").get_data(as_text=True)
    assert "Hola José, ¡ganamos! ✊ Gracias. Responde STOP para no recibir mas mensajes." in jose

    bob = staff_client.get(f"/staff/members/{signers['bob']}").get_data(as_text=True)
    section = bob[bob.index("Broadcast messages sent"):]
    assert ">failed<" in section and "<code>21610</code>" in section
    assert "Opted out on" in bob  # Twilio's 21610 opted them out, and the page says so

    lupe = staff_client.get(f"/staff/members/{signers['lupe']}").get_data(as_text=True)
    assert "Telegram" in lupe[lupe.index("Broadcast messages sent"):]


def test_member_without_broadcasts_says_so(staff_client, rt, signers):
    page = staff_client.get(f"/staff/members/{signers['ana']}").get_data(as_text=True)
    assert "No broadcast was sent to this member." in page


def test_a_second_identical_send_asks_again_instead_of_texting_everyone_twice(staff_client, rt, signers):
    assert staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4")).status_code == 303
    again = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4"))
    html = again.get_data(as_text=True)
    assert again.status_code == 409 and "You sent this same broadcast" in html and "broadcast #1" in html
    assert 'name="again"' in html
    assert broadcasts_count(rt) == (1, 4)
    # a different text is a different broadcast
    other = staff_client.post("/staff/broadcasts/new",
                              data=form(staff_client, action="send", expected="4", message_en="Second news"))
    assert other.status_code == 303 and broadcasts_count(rt) == (2, 8)
    # and sending the same again is possible when asked for explicitly
    r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4", again="1"))
    assert r.status_code == 303 and broadcasts_count(rt) == (3, 12)


def test_the_same_confirmation_submitted_twice_sends_one_broadcast(staff_client, rt, signers):
    data = form(staff_client, action="send", expected="4")
    first = staff_client.post("/staff/broadcasts/new", data=data)
    assert first.status_code == 303 and first.headers["Location"].endswith("/staff/broadcasts/1?created=1")
    again = staff_client.post("/staff/broadcasts/new", data=data)  # a double click, a reload, a second tab
    assert again.status_code == 303 and again.headers["Location"].endswith("/staff/broadcasts/1")
    assert broadcasts_count(rt) == (1, 4)
    h.add_signer(rt, "+13125550009")  # someone signed since: a reload still shows what was sent
    again = staff_client.post("/staff/broadcasts/new", data=data)
    assert again.status_code == 303 and again.headers["Location"].endswith("/staff/broadcasts/1")
    assert broadcasts_count(rt) == (1, 4)
    assert [row[1] for row in audit_rows(rt)].count(BROADCAST) == 1


def test_a_send_without_a_valid_confirmation_token_writes_nothing(staff_client, rt, signers):
    for token in ("", "short", "x" * 65, "<script>alert(1)</script>aaaaaaaaaaaa"):
        r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4",
                                                                  send_token=token))
        assert r.status_code == 400 and "confirm again" in r.get_data(as_text=True)
    assert broadcasts_count(rt) == (0, 0)


def test_one_confirmation_sent_twice_at_the_same_moment_makes_one_broadcast(rt, signers):
    import threading

    from bots import broadcasts as bsvc

    req = bsvc.BroadcastRequest("end-scomm", EN, ES, created_by=EMAIL)
    barrier, results, errors = threading.Barrier(2), [], []

    def send():
        barrier.wait()
        try:
            results.append(bsvc.create_broadcast(rt, req, send_token="same-confirmation-token-0001"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert sorted(r.repeated for r in results) == [False, True]
    assert {r.id for r in results} == {1}
    assert broadcasts_count(rt) == (1, 4)


def test_staff_cancel_a_broadcast_and_nothing_more_goes_out(staff_client, rt, signers, twilio):
    assert staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4")).status_code == 303
    page = staff_client.get("/staff/broadcasts/1").get_data(as_text=True)
    assert 'data-testid="cancel-link"' in page and 'http-equiv="refresh"' in page
    page = staff_client.get("/staff/broadcasts/1/cancel").get_data(as_text=True)  # no reload clears the tick
    assert 'data-testid="cancel-form"' in page and "the 4 messages not sent yet will not be sent" in page
    assert 'http-equiv="refresh"' not in page
    token = csrf_token(staff_client, "/staff/broadcasts/1")
    # without the tick, nothing happens
    r = staff_client.post("/staff/broadcasts/1/cancel", data={"csrf_token": token})
    assert r.status_code == 400 and h.status_of(rt, 1) == {"pending": 4}
    r = staff_client.post("/staff/broadcasts/1/cancel", data={"csrf_token": token, "sure": "1"})
    assert r.status_code == 303 and r.headers["Location"].endswith("/staff/broadcasts/1")
    page = staff_client.get("/staff/broadcasts/1").get_data(as_text=True)
    assert 'data-testid="state">cancelled<' in page and f"Cancelled by {EMAIL}" in page
    assert "4 messages not sent" in page and 'data-testid="cancel-link"' not in page
    assert h.status_of(rt, 1) == {"skipped": 4}
    run_worker(rt, Options(drain=True, poll=0.2))
    assert twilio.messages == []
    assert [row[1] for row in audit_rows(rt)].count("broadcast_cancel") == 1
    # a second cancel (another tab) changes nothing and writes no second audit entry
    staff_client.post("/staff/broadcasts/1/cancel", data={"csrf_token": token, "sure": "1"})
    assert [row[1] for row in audit_rows(rt)].count("broadcast_cancel") == 1
    assert staff_client.post("/staff/broadcasts/9/cancel", data={"csrf_token": token, "sure": "1"}).status_code == 404


def test_cancel_needs_a_signed_in_staff_member_and_the_csrf_token(staff_client, rt, signers):
    assert staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4")).status_code == 303
    assert staff_client.post("/staff/broadcasts/1/cancel", data={"sure": "1"}).status_code == 400  # no CSRF token
    token = csrf_token(staff_client, "/staff/")
    staff_client.post("/staff/logout", data={"csrf_token": token})
    assert staff_client.post("/staff/broadcasts/1/cancel", data={"csrf_token": token, "sure": "1"}).status_code == 403
    assert h.status_of(rt, 1) == {"pending": 4}


def test_whatsapp_preview_shows_the_window_and_the_template_goes_with_the_broadcast(staff_client, rt, signers,
                                                                                     twilio):
    from datetime import timedelta

    from sqlalchemy import update

    from storage.models import Member

    h.add_signer(rt, "+13125550041", channel="whatsapp", name="Rosa Díaz", language="es")
    h.add_signer(rt, "+13125550042", channel="whatsapp", name="Luis Peña", language="es")
    with rt.db.uow() as uow:
        uow.session.execute(update(Member).where(Member.address == "+13125550041")
                            .values(last_seen_at=rt.now() - timedelta(hours=2)))
        uow.commit()
    r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="preview", channel="whatsapp"))
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and cell(html, "recipients-whatsapp-es")[-1] == "2"
    assert "1 outside the WhatsApp window" in html and "not sent to (no template)" in html
    assert 'name="whatsapp_template"' in html
    # WhatsApp keeps the accents and the emoji (no GSM-7 folding)
    assert re.search(r'data-testid="text-whatsapp-es".*?Hola Guadalupe, ¡ganamos! ✊ Gracias. Responde STOP para no '
                     r'recibir más mensajes.', html, re.S)

    bad = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="preview", channel="whatsapp",
                                                                whatsapp_template="not-a-sid"))
    assert bad.status_code == 400 and "Content SID" in bad.get_data(as_text=True)

    template = "HX" + "12" * 16
    sent = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="2",
                                                                 channel="whatsapp", whatsapp_template=template))
    assert sent.status_code == 303
    with rt.db.uow() as uow:
        assert uow.session.scalars(select(Broadcast.window_template)).one() == template
    page = staff_client.get(sent.headers["Location"]).get_data(as_text=True)
    assert template in page and 'data-testid="count-outside_window"' in page


def test_the_pages_name_every_channel_that_keeps_quiet_hours(staff_client, rt, signers):
    """WhatsApp waits for the recipient's local morning as SMS does (the channel says so); the
    console must not tell staff that only SMS does."""
    html = staff_client.get("/staff/broadcasts/new").get_data(as_text=True)
    assert "quiet hours still apply to each SMS and WhatsApp recipient" in html
    from config.settings import Settings

    rt.settings = rt.settings.with_(quiet_hours=Settings.from_env({"FIRMA_QUIET_HOURS": "20:00-09:00"}).quiet_hours)
    r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="confirm"))
    text = " ".join(r.get_data(as_text=True).split())
    assert "and SMS and WhatsApp messages to someone whose local time is between 20:00 and 09:00 wait" in text, text
