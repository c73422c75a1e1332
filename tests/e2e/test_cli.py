"""The `firma` command line, run as an operator would (click's runner and a real subprocess)."""

from __future__ import annotations

import pytest

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from tests.support.twilio_client import post_sms
from webhooks.cli import main

ROOT = Path(__file__).resolve().parents[2]


def env_for(db_url: str, **extra) -> dict:
    return {"FIRMA_DATABASE_URL": db_url, **extra}


def test_help_lists_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "db", "campaigns", "export"):
        assert command in result.output


def test_help_names_every_channel_a_member_can_sign_on():
    from bots import channels

    first_line = CliRunner().invoke(main, ["--help"]).output.split("\n\n")[1]
    assert all(c.label in first_line for c in channels.channels()), first_line


def test_campaigns_lists_keywords_and_counts(client, db_url):
    for text in ("SCOMM", "Ana López", "60601"):
        post_sms(client, "+13125550101", text)
    result = CliRunner().invoke(main, ["campaigns"], env=env_for(db_url, COLUMNS="200"))
    assert result.exit_code == 0, result.output
    assert "end-scomm" in result.output and "SCOMM (en)" in result.output and "FIRMA (es)" in result.output
    assert " 1 " in result.output


def test_export_to_stdout_and_file(client, db_url, tmp_path):
    for text in ("FIRMA", "José Núñez", "78520"):
        post_sms(client, "+13125550101", text)
    result = CliRunner().invoke(main, ["export", "--campaign", "end-scomm"], env=env_for(db_url))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 1 and rows[0]["name"] == "José Núñez" and rows[0]["language"] == "es"
    assert "contact" not in rows[0]
    out = tmp_path / "sigs.csv"
    result = CliRunner().invoke(main, ["export", "--campaign", "end-scomm", "--output", str(out),
                                       "--include-contact"], env=env_for(db_url))
    assert result.exit_code == 0
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["contact"] == "+13125550101"


def test_export_unknown_campaign_is_a_clear_error(db_url):
    result = CliRunner().invoke(main, ["export", "--campaign", "nope"], env=env_for(db_url))
    assert result.exit_code == 2 and "no campaign 'nope'" in result.output and "end-scomm" in result.output


def test_broken_campaign_file_is_a_clear_error(db_url, tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('[organization]\nname = "X"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["campaigns"], env=env_for(db_url, FIRMA_CAMPAIGNS=str(bad)))
    assert result.exit_code == 1 and "campaign file has problems" in result.output
    assert "Traceback" not in result.output


def test_bad_setting_is_a_clear_error(db_url):
    result = CliRunner().invoke(main, ["campaigns"], env=env_for(db_url, FIRMA_SMS_RATE="lots"))
    assert result.exit_code == 1 and "FIRMA_SMS_RATE" in result.output


@pytest.mark.slow
def test_db_upgrade_in_a_subprocess_from_another_folder(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FIRMA_DATABASE_URL": url}
    done = subprocess.run([sys.executable, "-m", "webhooks.cli", "db", "upgrade"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([sys.executable, "-m", "webhooks.cli", "campaigns"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "end-scomm" in done.stdout


@pytest.mark.slow
def test_serve_starts_from_an_empty_folder(tmp_path):
    """`firma serve` with nothing set: SQLite created in the working folder, the simulator answers."""
    import socket
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIRMA_", "TWILIO_", "TELEGRAM_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "webhooks.cli", "serve", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
                time.sleep(0.2)
        assert r.status_code == 200
        assert (tmp_path / "firma.db").exists()
        import re

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as browser:
            page = browser.get("/simulator")
            assert page.status_code == 200 and "Try the bot" in page.text
            token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
            reply = browser.post("/simulator/send", headers={"X-CSRFToken": token},
                                 json={"channel": "sms", "address": "+15550001234", "text": "firma"})
        assert reply.json()["messages"][0].startswith("Fin a S-Comm Ya")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
