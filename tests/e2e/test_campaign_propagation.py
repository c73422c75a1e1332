"""A campaign change reaches every process without a restart: two gunicorn processes (as on two hosts)
start on an empty database (both try to seed it; it is seeded once), then a campaign is created
through the service and another edited with `firma campaigns import` in a third process; within 5
seconds of each commit both gunicorn processes answer the new keyword and the new summary. One of
them runs with --preload: its app (and watcher) is made in the master, then the worker is forked."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from bench import common
from bots import campaigns as svc
from bots.runtime import Runtime
from config.campaigns import dumps
from config.settings import Settings
from storage.models import AuditLog
from tests.e2e.test_scale_out import post
from tests.support import twilio_client
from tests.support.twilio_client import messages

pytestmark = pytest.mark.pooler  # CI runs these through PgBouncer too (FIRMA_TEST_POOLER=1)

DEADLINE = 5.0  # seconds: interface.md, "a change reaches every process on every host within 5 seconds"
_phones = itertools.count(13129000000)


def first_reply(port: int, text: str) -> str:
    """What a new member texting ``text`` to this process gets first."""
    params = twilio_client.sms_params(f"+{next(_phones)}", text)
    status, body = post(port, common.Prepared(twilio_client.SMS_PATH, urlencode(params).encode(),
                                              twilio_client.sign(params)))
    assert status == 200, body
    return (messages(body) or [""])[0]


def until_both_answer(ports: list[int], text: str, expected: str, since: float) -> list[float]:
    """Seconds after ``since`` at which each process first answered ``text`` with ``expected``."""
    seen: dict[int, float] = {}
    while len(seen) < len(ports) and time.monotonic() - since < DEADLINE:
        for port in ports:
            if port not in seen and first_reply(port, text) == expected:
                seen[port] = time.monotonic() - since
        time.sleep(0.1)
    assert len(seen) == len(ports), f"after {DEADLINE} s, only {len(seen)} of {len(ports)} processes answer {text!r}"
    return [seen[p] for p in ports]


def committed_at(rt) -> float:
    """When the last campaign change was written (its audit entry), on this process's monotonic clock."""
    with rt.db.uow() as uow:
        at = uow.session.scalar(select(AuditLog.at).order_by(AuditLog.id.desc()).limit(1))
    return time.monotonic() - (time.time() - at.timestamp())


@pytest.mark.slow
def test_a_campaign_change_reaches_two_gunicorn_processes_within_5_seconds(db_url, tmp_path, capsys):
    env = common.app_env(db_url)
    with common.gunicorn("webhooks:create_app()", env, workers=1, log_dir=tmp_path) as host_a, \
            common.gunicorn("webhooks:create_app()", env, workers=1, log_dir=tmp_path, preload=True) as host_b:
        ports = [host_a.port, host_b.port]
        assert all("To sign End S-Comm Now" in first_reply(p, "DREAM") for p in ports)

        rt = Runtime.build(Settings(database_url=db_url, secret_key="x", secret_key_generated=False))
        campaign = svc.get_campaign(rt, "end-scomm")
        campaign.update(slug="dream-act", keywords={"DREAM": "en", "SUEÑO": "es"})
        campaign["en"].update(title="Dream Act Now", summary="Tell Congress: pass the Dream Act now. Add your name.")
        created = svc.create_campaign(rt, campaign, svc.Actor("admin@example.org"))
        committed = time.monotonic()
        assert created.ok, created.problems
        new_keyword = until_both_answer(ports, "dream", campaign["en"]["summary"], committed)

        edited = svc.get_campaign(rt, "end-scomm")
        edited["en"]["summary"] = "End S-Comm Now: it turns local police into immigration agents. Sign to end it."
        path = tmp_path / "edit.toml"
        path.write_text(dumps({"campaigns": [edited]}), encoding="utf-8")
        done = subprocess.run([sys.executable, "-m", "webhooks.cli", "campaigns", "import", str(path)], env=env,
                              cwd=common.ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "campaign 'end-scomm' replaced" in done.stdout, done.stderr
        imported = committed_at(rt)
        new_summary = until_both_answer(ports, "SCOMM", edited["en"]["summary"], imported)
        assert [common.get_json(f"http://127.0.0.1:{p}/api/campaigns/dream-act")["title"] for p in ports] == \
            ["Dream Act Now"] * 2
        rt.db.dispose()
    with capsys.disabled():
        print(f"\ncampaign change reached both processes after: new keyword {max(new_keyword):.2f} s, "
              f"new summary {max(new_summary):.2f} s after the commit")
