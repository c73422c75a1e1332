"""The console's broadcast pages as a new user meets them: scheduling with a date-time field (listed,
changed, cancelled before its time), the follow-up of a broadcast (one reply and one STOP), the
duplicate warning before Send, previews of the channels that have recipients only, a cancelled
broadcast that does not read "Done 100%", and no command-line wording."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from bots import broadcasts as bsvc
from bots.runtime import utcnow
from tests.e2e.test_staff import csrf_token, fast_hashing, sign_in, staff_user  # noqa: F401
from tests.e2e.test_staff_broadcasts import drain_on_the_real_clock, form, signers  # noqa: F401
from tests.support import broadcasts as h
from tests.support.twilio_client import post_sms


@pytest.fixture
def staff_client(client, staff_user):  # noqa: F811
    assert sign_in(client).status_code == 303
    return client


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_schedule_in_the_console_list_change_and_cancel(staff_client, rt, signers):
    # 2026-11-27 18:00 UTC is 13:00 in New York (FIRMA_TIMEZONE's default)
    data = form(staff_client, action="confirm", send_at="2026-11-28T09:30")
    page = staff_client.post("/staff/broadcasts/new", data=data).get_data(as_text=True)
    assert "Schedule for 2026-11-28 09:30 EST?" in page
    r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", send_at="2026-11-28T09:30",
                                                             expected="4"))
    assert r.status_code == 303
    bid = int(r.headers["Location"].split("/")[-1].split("?")[0])
    page = staff_client.get(r.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="state">scheduled<' in page and "Scheduled for 2026-11-28 09:30 EST" in text(page)
    assert h.deliveries(rt, bid) == []
    listing = staff_client.get("/staff/broadcasts/").get_data(as_text=True)
    assert f'data-testid="scheduled-{bid}"' in listing and "2026-11-28 09:30 EST" in listing
    assert f'data-testid="col-waiting"' not in listing  # not among past broadcasts
    edit = staff_client.get(f"/staff/broadcasts/{bid}/edit").get_data(as_text=True)
    assert 'value="2026-11-28T09:30"' in edit and 'type="datetime-local"' in edit
    token = csrf_token(staff_client, f"/staff/broadcasts/{bid}/edit")
    values = {"csrf_token": token, "campaign": "end-scomm", "message_en": "March moved to 11", "message_es": "",
              "channel": "sms", "state": "", "zip_prefix": "", "signed_since": "", "send_at": "2026-11-28T10:45"}
    r = staff_client.post(f"/staff/broadcasts/{bid}/edit", data=values)
    assert r.status_code == 303
    page = staff_client.get(f"/staff/broadcasts/{bid}").get_data(as_text=True)
    assert "March moved to 11" in page and "2026-11-28 10:45 EST" in page
    r = staff_client.post(f"/staff/broadcasts/{bid}/edit", data=dict(values, send_at="2026-11-01T10:00"))
    assert r.status_code == 400 and "has passed" in r.get_data(as_text=True)
    r = staff_client.post(f"/staff/broadcasts/{bid}/cancel", data={"csrf_token": token, "sure": "1"})
    page = staff_client.get(f"/staff/broadcasts/{bid}").get_data(as_text=True)
    assert "before its time: nothing was sent" in page and "Done" not in text(page).replace("Done when", "")
    assert bsvc.release_due(rt) == [] and h.deliveries(rt, bid) == []
    r = staff_client.post(f"/staff/broadcasts/{bid}/edit", data=values)
    assert r.status_code == 400 and "was cancelled" in r.get_data(as_text=True)


def test_follow_up_after_a_broadcast_with_one_reply_and_one_stop(client, rt, signers, staff_user):  # noqa: F811
    rt.clock = utcnow  # the worker sends on the real clock; the replies come after on the same one
    assert sign_in(client).status_code == 303
    r = client.post("/staff/broadcasts/new", data=form(client, action="send", expected="4", channel="all"))
    bid = int(r.headers["Location"].split("/")[-1].split("?")[0])
    run = __import__("bots.worker", fromlist=["run_worker"])
    run.run_worker(rt, run.Options(drain=True, poll=0.2))
    assert post_sms(client, "+13125550001", "What time is the march?").status_code == 200
    assert post_sms(client, "+13125550002", "STOP").status_code == 200
    info = bsvc.follow_up(rt, bid)
    assert info["status"] == "finished" and info["counts"]["sent"] == 4
    assert info["opt_outs_after"] == 1 and info["replies_after"] == 1
    page = client.get(f"/staff/broadcasts/{bid}").get_data(as_text=True)
    assert re.search(r'data-testid="follow-opt-outs"><dt>Opted out after it</dt><dd class="big">1<', page)
    assert re.search(r'data-testid="follow-replies"><dt>Wrote back after it</dt><dd class="big">1<', page)
    assert re.search(r'data-testid="follow-sent"><dt>Sent</dt><dd class="big">4<', page)


def test_confirm_page_warns_of_a_duplicate_before_send(staff_client, rt, signers):
    staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4"))
    page = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="confirm")).get_data(as_text=True)
    assert "You sent this same broadcast" in page and 'name="again"' in page


def test_preview_shows_only_channels_with_recipients(staff_client, rt, signers):
    page = staff_client.post("/staff/broadcasts/new",
                             data=form(staff_client, action="preview", state="CA")).get_data(as_text=True)
    assert 'data-testid="text-sms-en"' in page and 'data-testid="text-telegram-en"' not in page


def test_a_cancelled_broadcast_is_not_done_and_no_cli_wording(staff_client, rt, signers):
    staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="send", expected="4"))
    token = csrf_token(staff_client, "/staff/broadcasts/1")
    staff_client.post("/staff/broadcasts/1/cancel", data={"csrf_token": token, "sure": "1"})
    page = staff_client.get("/staff/broadcasts/1").get_data(as_text=True)
    assert "100%" not in page and "Sent before the cancel" in text(page)
    r = staff_client.post("/staff/broadcasts/new", data=form(staff_client, action="preview", message_en="  ",
                                                             message_es=""))
    body = r.get_data(as_text=True)
    assert "the English text is empty" in body and "--message" not in body
    for path in ("/staff/broadcasts/", "/staff/broadcasts/new", "/staff/broadcasts/1"):
        assert "--" not in text(staff_client.get(path).get_data(as_text=True)).replace("<!--", ""), path


def test_a_scheduled_broadcast_s_whatsapp_template_is_shown_and_changed_in_its_edit_form(staff_client, rt):
    """Scheduled days ahead, most WhatsApp members are outside the 24-hour window by then: the edit
    form must keep, change or clear the approved template like every other field."""
    from storage.models import Broadcast
    from tests.support.twilio_client import WHATSAPP_NUMBER

    rt.settings = rt.settings.with_(twilio_whatsapp_from=WHATSAPP_NUMBER)
    first, second = "HX" + "0f" * 16, "HX" + "a1" * 16
    created = bsvc.create_broadcast(rt, bsvc.BroadcastRequest("end-scomm", "Vigil on Friday", channel="whatsapp",
                                                              window_template=first,
                                                              send_at=rt.now() + timedelta(days=3)))
    path = f"/staff/broadcasts/{created.id}/edit"
    edit = staff_client.get(path).get_data(as_text=True)
    assert re.search(rf'name="whatsapp_template" value="{first}"', edit), edit

    def template_after(**changes):
        values = {"csrf_token": csrf_token(staff_client, path), "campaign": "end-scomm",
                  "message_en": "Vigil on Friday", "message_es": "", "channel": "whatsapp", "state": "",
                  "zip_prefix": "", "signed_since": "", "send_at": "2026-11-30T10:00", **changes}
        r = staff_client.post(path, data=values)
        with rt.db.reader() as uow:
            return r, uow.session.get(Broadcast, created.id).window_template

    r, kept = template_after(whatsapp_template=second)
    assert r.status_code == 303 and kept == second
    r, kept = template_after(whatsapp_template="hello_world")
    assert r.status_code == 400 and "the WhatsApp template must be an approved template" in r.get_data(as_text=True)
    assert kept == second
    r, kept = template_after(whatsapp_template="")
    assert r.status_code == 303 and kept is None
