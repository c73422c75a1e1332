"""A web process killed with SIGKILL mid-traffic (gunicorn on PostgreSQL, a real subprocess).

Members sign while the whole gunicorn process group is killed twice and restarted. The client acts
like Twilio: a request that got no answer, or not a 2xx, is sent again with the same MessageSid.
Afterwards: one signature per member, one effect per message, and every message that got a 200 is
in the database with the very answer that was returned (a 200 means committed).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import create_engine, func, select

from storage.models import CampaignCount, ConsentEvent, Member, ProcessedMessage, Signature
from tests.support import twilio_client
from tests.support.twilio_client import SMS_PATH, messages, new_sid, sign, sms_params

ROOT = Path(__file__).resolve().parents[2]
MEMBERS = 16
MAX_ATTEMPTS = 300


class Gunicorn:
    """gunicorn serving on a listening socket this test owns, so it can be killed and restarted
    without losing the port (requests queue in the socket's backlog while it is down)."""

    def __init__(self, database_url: str, log_path: Path):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.set_inheritable(True)
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "FIRMA_DATABASE_URL": database_url,
                    "TWILIO_AUTH_TOKEN": twilio_client.TOKEN, "FIRMA_PUBLIC_URL": twilio_client.PUBLIC_URL,
                    "FIRMA_SECRET_KEY": "test-secret-key-for-gunicorn"}
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        fd = os.dup(self.sock.fileno())  # gunicorn closes the fd it is given; keep ours
        os.set_inheritable(fd, True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"fd://{fd}", "--workers", "2", "--threads", "4",
             "--worker-class", "gthread", "--graceful-timeout", "1", "webhooks:create_app()"],
            cwd=ROOT, env=self.env, pass_fds=(fd,), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=self.log)
        os.close(fd)
        self.starts += 1

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # the master and every worker, no cleanup
        self.proc.wait(10)

    def wait_ready(self) -> None:
        for _ in range(300):
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited: {self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError("gunicorn did not become ready")

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.kill()
        self.sock.close()
        self.log.close()


@pytest.fixture
def pg_url(postgres_database):
    from tests.conftest import _truncate_all

    _truncate_all(postgres_database)
    return postgres_database


@pytest.mark.slow
def test_sigkill_mid_traffic_loses_nothing_acknowledged_and_duplicates_nothing(pg_url, tmp_path):
    server = Gunicorn(pg_url, tmp_path / "gunicorn.log")
    server.start()
    server.wait_ready()
    answered: dict[str, list[str]] = {}  # MessageSid -> the replies of its 200
    lock = threading.Lock()
    progress = [0]

    def deliver(sender: str, body: str) -> None:
        params = sms_params(sender, body, sid=new_sid())
        data = urlencode(params)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sign(params)}
        for _ in range(MAX_ATTEMPTS):
            try:
                r = requests.post(server.base + SMS_PATH, data=data, headers=headers, timeout=10)
            except requests.RequestException:
                time.sleep(0.05)
                continue
            if r.status_code == 200:
                with lock:
                    answered[params["MessageSid"]] = messages(r.content)
                    progress[0] += 1
                return
            assert r.status_code == 503, r.text  # only "try again" is acceptable, never a 500
            time.sleep(0.05)
        raise AssertionError(f"{body!r} from {sender} was never answered")

    def member(i: int) -> None:
        phone = f"+1312557{i:04d}"
        for body in ("SCOMM", f"Persona Número {i}", "60601"):
            deliver(phone, body)

    killer_done = threading.Event()

    def killer() -> None:
        try:
            for threshold in (MEMBERS // 2, MEMBERS + MEMBERS // 2):  # twice, mid-traffic
                while progress[0] < threshold:
                    time.sleep(0.01)
                server.kill()
                time.sleep(0.3)
                server.start()
        finally:
            killer_done.set()

    try:
        kt = threading.Thread(target=killer, daemon=True)
        kt.start()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(member, range(MEMBERS)))
        kt.join(60)
        assert killer_done.is_set() and server.starts == 3, "the server was killed twice mid-traffic"
    finally:
        server.close()

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            signatures = conn.execute(select(Signature.member_id, Signature.name)).all()
            assert len(signatures) == MEMBERS
            assert len({m for m, _ in signatures}) == MEMBERS  # no duplicate signature
            assert conn.execute(select(CampaignCount.signatures)).scalar() == MEMBERS
            assert conn.execute(select(func.count()).select_from(Member)).scalar() == MEMBERS
            # One opt-in (the first keyword) per member: no message had its effect twice.
            assert conn.execute(select(func.count()).select_from(ConsentEvent)).scalar() == MEMBERS
            stored = dict(conn.execute(select(ProcessedMessage.provider_id, ProcessedMessage.response)).all())
    finally:
        engine.dispose()
    assert len(answered) == 3 * MEMBERS
    for sid, replies in answered.items():  # every 200 was committed, with the answer Twilio was given
        assert json.loads(stored[sid])["messages"] == replies
