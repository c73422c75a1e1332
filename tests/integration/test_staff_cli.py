"""`firma staff ...` through click's runner, and the 0004_staff migration both ways (issue 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from bots import staff_accounts as svc
from storage import db as dbmod
from webhooks.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = "a long enough password"


@pytest.fixture
def run(db_url):
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(main, list(args), input=input, env={"FIRMA_DATABASE_URL": db_url})
    return invoke


def test_staff_add_reads_the_password_from_stdin_and_can_sign_in(run, rt):
    r = run("staff", "add", "Organizer@Example.org", input=GOOD + "\n")
    assert r.exit_code == 0, r.output
    assert "staff login created for organizer@example.org" in r.output
    assert GOOD not in r.output
    assert svc.sign_in(rt.db, "organizer@example.org", GOOD, "127.0.0.1", rt.now()).staff is not None
    r = run("staff", "list")
    assert "organizer@example.org\tactive\tlast sign-in: 2026-11-27 18:00 UTC" in r.output


@pytest.mark.parametrize("args,stdin,message", [
    (("staff", "add", "not-an-email"), GOOD + "\n", "is not an email address"),
    (("staff", "add", "a@example.org"), "short\n", "at least 12 characters"),
    (("staff", "add", "a@example.org"), "", "no password on standard input"),
    (("staff", "set-password", "nobody@example.org"), GOOD + "\n", "has no login"),
])
def test_staff_commands_refuse_bad_input_clearly(run, args, stdin, message):
    r = run(*args, input=stdin)
    assert r.exit_code == 1 and message in r.output, r.output


def test_duplicate_disable_and_set_password(run, rt):
    assert run("staff", "add", "a@example.org", input=GOOD + "\n").exit_code == 0
    r = run("staff", "add", "A@example.org", input=GOOD + "\n")
    assert r.exit_code == 1 and "already has a login" in r.output
    assert run("staff", "disable", "a@example.org").exit_code == 0
    assert svc.sign_in(rt.db, "a@example.org", GOOD, "127.0.0.1", rt.now()).staff is None
    assert "disabled" in run("staff", "list").output
    assert run("staff", "set-password", "a@example.org", input="another long password\n").exit_code == 0
    assert svc.sign_in(rt.db, "a@example.org", "another long password", "127.0.0.2", rt.now()).staff is not None


@pytest.mark.slow
def test_staff_add_as_a_subprocess_with_a_pipe(db_url):
    env = dict(os.environ, PYTHONPATH=str(ROOT), FIRMA_DATABASE_URL=db_url)
    r = subprocess.run([sys.executable, "-m", "webhooks.cli", "staff", "add", "pipe@example.org"], input=GOOD + "\n",
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "pipe@example.org" in r.stdout


def test_migration_0004_downgrades_and_upgrades(db_url):
    engine = dbmod.make_engine(db_url)
    try:
        staff_tables = {"staff_users", "staff_sign_in_attempts", "audit_log"}
        assert staff_tables <= set(inspect(engine).get_table_names())
        dbmod.downgrade(db_url, "0001")
        engine.dispose()
        assert not staff_tables & set(inspect(engine).get_table_names())
        dbmod.upgrade(db_url, "head")
        engine.dispose()
        assert staff_tables <= set(inspect(engine).get_table_names())
    finally:
        dbmod.upgrade(db_url, "head")
        engine.dispose()
