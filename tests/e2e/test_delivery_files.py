"""A large delivery from the console: a worker makes the PDF, the console follows it and offers it for a
week. DIRECT_LIMIT is lowered so that a handful of signers counts as large."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from click.testing import CliRunner

from bots import delivery, delivery_files, privacy
from bots.worker import Options, run_worker
from storage import delivery_files as store
from storage.models import DeliveryFile, DeliveryFileChunk
from tests.e2e.test_staff import EMAIL, audit_rows, csrf_token, fast_hashing, sign_in, staff_user  # noqa: F401
from tests.support import broadcasts as h
from tests.support import signers as S
from webhooks.cli import main


@pytest.fixture
def large(monkeypatch):
    monkeypatch.setattr(delivery_files, "DIRECT_LIMIT", 2)


@pytest.fixture
def seeded(client, rt, clock, large):
    S.seed(client, rt, clock)
    return rt


def ask(client, **form) -> str:
    """Ask for a delivery in the console; the page it leads to."""
    token = csrf_token(client, "/staff/campaigns/end-scomm")
    response = client.post("/staff/campaigns/end-scomm/delivery", data={"csrf_token": token, **form})
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"]


def status(rt, file_id: int) -> str:
    with rt.db.uow() as uow:
        return uow.session.get(DeliveryFile, file_id).status


@pytest.mark.slow
def test_a_large_delivery_is_made_by_a_worker_and_downloaded(client, seeded, staff_user, tmp_path, db_url):
    rt = seeded
    sign_in(client)
    page = ask(client, names="short", state="", language="en")
    assert page == "/staff/campaigns/end-scomm/deliveries/1"
    html = client.get(page).get_data(as_text=True)
    assert "waiting" in html and '<meta http-equiv="refresh" content="3">' in html
    assert "/download" not in html
    assert client.get(page + "/download").status_code == 404  # not made yet

    assert delivery_files.make_next(rt) == 1
    assert delivery_files.make_next(rt) is None  # nothing else waits
    html = client.get(page).get_data(as_text=True)
    assert "ready" in html and "http-equiv" not in html and "Download end-scomm-delivery.pdf" in html
    response = client.get(page + "/download")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert 'filename="end-scomm-delivery.pdf"' in response.headers["Content-Disposition"]
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    made = tmp_path / "made.pdf"
    made.write_bytes(response.get_data())

    # the same signers, names and pages as `firma deliver` of the same choices
    direct = tmp_path / "direct.pdf"
    result = CliRunner().invoke(main, ["deliver", "--campaign", "end-scomm", "--names", "short", "-o", str(direct)],
                                env={"FIRMA_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    rows = S.signer_rows(S.pdf_text(made))
    assert rows == S.signer_rows(S.pdf_text(direct)) and len(rows) == 6
    assert "Ana N." in {name for name, *_ in rows}
    assert S.pdf_pages(made) == S.pdf_pages(direct)

    actions = [(action, detail) for _, action, _, detail in audit_rows(rt) if action == "delivery"]
    assert actions == [("delivery", "names short, all states, en; file #1, made by a worker"),
                       ("delivery", "download of file #1")]
    campaign = client.get("/staff/campaigns/end-scomm").get_data(as_text=True)
    assert re.search(r'href="/staff/campaigns/end-scomm/deliveries/1">#1</a>', campaign)


def test_a_small_delivery_is_still_streamed_at_once(client, rt, clock, staff_user):
    S.sign(client, clock, *S.SIGNERS[0])
    sign_in(client)
    token = csrf_token(client, "/staff/campaigns/end-scomm")
    response = client.post("/staff/campaigns/end-scomm/delivery", data={"csrf_token": token, "names": "short"})
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    with rt.db.uow() as uow:
        assert uow.session.query(DeliveryFile).count() == 0


def test_the_page_says_when_no_worker_has_started_it(client, seeded, staff_user, clock):
    sign_in(client)
    page = ask(client, names="none")
    assert "firma worker" not in client.get(page).get_data(as_text=True)
    clock.advance(minutes=2)
    html = client.get(page).get_data(as_text=True)
    assert "No worker has started it" in html and "firma worker" in html


def test_a_draining_worker_makes_the_files_waiting(client, seeded, staff_user, twilio):
    rt = seeded
    sign_in(client)
    ask(client, names="full", state="IL", language="es")
    rt.settings = h.settings_for(rt, twilio)
    run_worker(rt, Options(drain=True, poll=0.05))
    assert status(rt, 1) == "ready"
    body = client.get("/staff/campaigns/end-scomm/deliveries/1/download").get_data()
    assert body.startswith(b"%PDF-") and body.rstrip().endswith(b"%%EOF")


def test_a_file_a_dead_worker_left_is_made_again_whole(client, seeded, staff_user, clock, monkeypatch):
    rt = seeded
    sign_in(client)
    ask(client)
    monkeypatch.setattr(delivery_files, "CHUNK", 4096)  # several pieces
    now = rt.now()
    with rt.db.uow() as uow:  # a worker claims it, writes one piece, and dies
        dead = store.claim(uow.session, now, now - delivery_files.STALE_AFTER)
        assert store.add_chunk(uow.session, dead.id, dead.attempt, 0, b"half a PDF from the dead worker", now)
        uow.commit()
    assert delivery_files.make_next(rt) is None  # not yet: it may be alive
    clock.advance(minutes=3)
    assert delivery_files.make_next(rt) == 1
    with rt.db.uow() as uow:  # the dead attempt can no longer write
        assert not store.add_chunk(uow.session, 1, dead.attempt, 99, b"late", rt.now())
    body = client.get("/staff/campaigns/end-scomm/deliveries/1/download").get_data()
    assert body.startswith(b"%PDF-") and b"dead worker" not in body and body.rstrip().endswith(b"%%EOF")


def test_a_stopping_worker_hands_the_file_back(client, seeded, staff_user, monkeypatch):
    rt = seeded
    sign_in(client)
    ask(client)
    monkeypatch.setattr(delivery_files, "CHUNK", 4096)
    assert delivery_files.make_next(rt, stopping=lambda: True) == 1
    assert status(rt, 1) == "queued"
    assert delivery_files.make_next(rt) == 1 and status(rt, 1) == "ready"


def test_a_file_that_cannot_be_made_says_why(client, seeded, staff_user, monkeypatch):
    rt = seeded
    sign_in(client)
    ask(client)

    def broken(rt, req):
        yield b"%PDF-1.4\n"
        raise RuntimeError("a bug")

    monkeypatch.setattr(delivery, "render", broken)
    assert delivery_files.make_next(rt) == 1
    html = client.get("/staff/campaigns/end-scomm/deliveries/1").get_data(as_text=True)
    assert "failed" in html and "could not be made (RuntimeError)" in html and "http-equiv" not in html
    assert client.get("/staff/campaigns/end-scomm/deliveries/1/download").status_code == 404


def test_files_are_kept_a_week_and_an_erasure_drops_them(client, seeded, staff_user, clock):
    rt = seeded
    sign_in(client)
    ask(client)
    assert delivery_files.make_next(rt) == 1
    clock.advance(days=7, minutes=1)
    sign_in(client)  # a week later
    assert client.get("/staff/campaigns/end-scomm/deliveries/1").status_code == 404  # past its week
    with rt.db.uow() as uow:
        assert privacy.purge(uow, rt.now()).delivery_files == 1
    with rt.db.uow() as uow:
        assert uow.session.query(DeliveryFile).count() == 0
        assert uow.session.query(DeliveryFileChunk).count() == 0  # the PDF's bytes went with it

    ask(client)
    assert delivery_files.make_next(rt) is not None
    with rt.db.uow() as uow:
        forgotten = privacy.forget(uow, rt.settings.secret_key, "sms", S.SIGNERS[0][0], rt.now())
    assert forgotten.delivery_files == 1
    with rt.db.uow() as uow:
        assert uow.session.query(DeliveryFile).count() == 0
        assert uow.session.query(DeliveryFileChunk).count() == 0


def test_another_campaigns_or_an_unknown_file_is_a_404(client, seeded, staff_user):
    sign_in(client)
    ask(client)
    assert client.get("/staff/campaigns/other/deliveries/1").status_code == 404
    assert client.get("/staff/campaigns/end-scomm/deliveries/2").status_code == 404
    assert client.get("/staff/campaigns/end-scomm/deliveries/99999999999999999999").status_code == 404
