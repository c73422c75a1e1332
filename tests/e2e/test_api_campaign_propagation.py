"""Campaigns created, edited and closed through the staff API on one gunicorn process reach another
(as on another host) within 5 seconds, with no restart."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from bench import common
from bots import api_tokens
from bots import staff_accounts as svc
from bots.runtime import Runtime
from config.settings import Settings
from tests.e2e.test_campaign_propagation import committed_at, first_reply, until_both_answer


def call(port: int, method: str, path: str, token: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_campaigns_changed_through_the_api_reach_another_process_within_5_seconds(db_url, tmp_path, capsys):
    env = common.app_env(db_url)
    with common.gunicorn("webhooks:create_app()", env, workers=1, log_dir=tmp_path) as host_a, \
            common.gunicorn("webhooks:create_app()", env, workers=1, log_dir=tmp_path) as host_b:
        ports = [host_a.port, host_b.port]
        rt = Runtime.build(Settings(database_url=db_url, secret_key="x", secret_key_generated=False))
        svc.add_staff(rt.db, "admin@example.org", "a long enough password", rt.now())
        token, _ = api_tokens.create_token(rt.db, "admin@example.org", "campaign editor", rt.now())
        body = {"slug": "dream-act", "goal": 1000, "active": True, "keywords": {"DREAM": "en", "SUEÑO": "es"},
                "en": {"title": "Dream Act Now", "summary": "Tell Congress: pass the Dream Act now. Add your name.",
                       "statement": "We call on Congress to pass the Dream Act."},
                "es": {"title": "Dream Act Ya", "summary": "Dile al Congreso: aprueba el Dream Act. Firma.",
                       "statement": "Pedimos al Congreso que apruebe el Dream Act."}}
        status, answer = call(host_a.port, "POST", "/api/staff/campaigns", token, body)
        assert status == 201, answer
        created = until_both_answer(ports, "dream", body["en"]["summary"], committed_at(rt))

        body["en"]["summary"] = "Congress can protect Dreamers this month. Add your name to tell them."
        status, answer = call(host_a.port, "PUT", "/api/staff/campaigns/dream-act", token, body)
        assert status == 200, answer
        edited = until_both_answer(ports, "DREAM", body["en"]["summary"], committed_at(rt))

        status, answer = call(host_a.port, "PUT", "/api/staff/campaigns/dream-act", token, dict(body, active=False))
        assert status == 200 and answer["active"] is False, answer
        closed = until_both_answer(ports, "DREAM", 'The petition "Dream Act Now" is closed. Thank you for caring!',
                                   committed_at(rt))
        assert first_reply(host_b.port, "SCOMM").startswith("End S-Comm Now")
        rt.db.dispose()
    with capsys.disabled():
        print(f"\nAPI campaign changes reached both processes after: created {max(created):.2f} s, "
              f"edited {max(edited):.2f} s, closed {max(closed):.2f} s")
