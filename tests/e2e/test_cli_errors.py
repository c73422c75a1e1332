"""Every command that opens the database says in one line what is wrong and what to do when it
cannot (server unreachable, a URL that does not parse, a driver not installed, a SQLite folder that
does not exist): non-zero exit, no traceback, no password. FIRMA_DEBUG=1 shows the traceback,
redacted. `firma staff add` on a fresh folder creates and migrates SQLite as `serve` does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from webhooks.cli import main

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-database-password"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


COMMANDS = [
    ["campaigns"], ["campaigns", "export"], ["export", "--campaign", "end-scomm"], ["staff", "list"],
    ["member", "forget", "+13125550101", "--yes"], ["db", "upgrade"], ["db", "purge"], ["broadcast", "status"],
]


def bad_urls(tmp_path) -> dict[str, tuple[str, str]]:
    """what is wrong -> (FIRMA_DATABASE_URL, words the message must hold)"""
    return {
        "unreachable": (f"postgresql+psycopg://firma:{PASSWORD}@127.0.0.1:{closed_port()}/firma", "cannot reach"),
        "unparsable": ("not a url at all", "FIRMA_DATABASE_URL"),
        "driver": (f"mysql://firma:{PASSWORD}@127.0.0.1/firma", "not installed"),
        "folder": (f"sqlite:///{tmp_path}/no/such/folder/firma.db", "folder"),
    }


@pytest.mark.parametrize("what", ["unreachable", "unparsable", "driver", "folder"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_database_that_cannot_be_opened_is_one_clear_line(tmp_path, command, what):
    url, words = bad_urls(tmp_path)[what]
    env = {"FIRMA_DATABASE_URL": url, "FIRMA_SECRET_KEY": "a-long-enough-secret-key", "FIRMA_DEBUG": ""}
    result = CliRunner().invoke(main, command, env=env, input="")
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # handled, not raised
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert words in lines[0], lines[0]
    assert PASSWORD not in result.output and "Traceback" not in result.output


def _firma(tmp_path, *args, **env) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-W", "ignore", "-m", "webhooks.cli", *args], env=full, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, input="")


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback_redacted(tmp_path):
    # A fault the CLI does not expect, carrying a secret in its own message: injected at start-up
    # (sitecustomize) into what `campaigns export` calls.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import bots.campaigns\n"
        "def broken(rt):\n"
        f"    raise OSError(2, 'No such file or directory', '{tmp_path}/missing/{PASSWORD}.toml')\n"
        "bots.campaigns.export_document = broken\n")
    env = {"FIRMA_DATABASE_URL": f"sqlite:///{tmp_path}/firma.db", "TWILIO_AUTH_TOKEN": PASSWORD,
           "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}"}
    plain = _firma(tmp_path, "campaigns", "export", **env)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr, plain.stderr
    lines = [line for line in plain.stderr.splitlines() if "INFO" not in line]
    assert len(lines) == 1 and "No such file or directory" in lines[0] and "FIRMA_DEBUG=1" in lines[0], plain.stderr
    assert PASSWORD not in plain.stderr + plain.stdout
    for debug in ({"FIRMA_DEBUG": "1"}, {}):
        args = ("campaigns", "export") if debug else ("--debug", "campaigns", "export")
        out = _firma(tmp_path, *args, **env, **debug)
        assert out.returncode == 1 and "Traceback" in out.stderr, out.stderr
        assert PASSWORD not in out.stderr + out.stdout


def test_staff_add_before_anything_else_creates_and_migrates_sqlite(tmp_path):
    path = tmp_path / "firma.db"
    env = {"FIRMA_DATABASE_URL": f"sqlite:///{path}"}
    result = CliRunner().invoke(main, ["staff", "add", "organizer@example.org"], env=env,
                                input="correct horse battery staple\n")
    assert result.exit_code == 0, (result.output, result.exception)
    listed = CliRunner().invoke(main, ["staff", "list"], env=env)
    assert listed.exit_code == 0 and "organizer@example.org" in listed.output


@pytest.mark.slow
def test_gunicorn_with_a_wrong_setting_says_it_in_one_line(tmp_path):
    """Production starts with gunicorn, not the CLI: a setting it cannot use stops it with the same one
    line (gunicorn's "App failed to load"), not a traceback per worker. (When two workers fail at the
    same moment gunicorn's arbiter may print a HaltServer traceback of its own, benoitc/gunicorn#2186:
    none of firma's frames is in it.)"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FIRMA_DATABASE_URL": f"sqlite:///{tmp_path}/firma.db",
           "FIRMA_PUBLIC_URL": "sms.example.org", "TWILIO_AUTH_TOKEN": PASSWORD}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = subprocess.run([sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
                          "webhooks:create_app()"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    for ours in ("webhooks/", "config/settings.py", "SettingsError"):
        assert ours not in run.stderr, run.stderr
    assert "firma cannot start: FIRMA_PUBLIC_URL must be the URL the providers call, with its scheme" in run.stderr
    assert "App failed to load" in run.stderr
    assert PASSWORD not in run.stderr + run.stdout
