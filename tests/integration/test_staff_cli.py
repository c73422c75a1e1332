"""`firma staff ...` through click's runner, and the 0004_staff migration both ways."""

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
    assert "organizer@example.org\tadmin\tactive\tlast sign-in: 2026-11-27 18:00 UTC" in r.output


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


def test_roles_first_login_is_admin_later_ones_organizers_unless_told(run, rt):
    assert run("staff", "add", "first@example.org", input=GOOD + "\n").exit_code == 0
    assert run("staff", "add", "second@example.org", input=GOOD + "\n").exit_code == 0
    r = run("staff", "add", "third@example.org", "--role", "viewer", input=GOOD + "\n")
    assert r.exit_code == 0 and "(viewer)" in r.output
    listing = run("staff", "list").output
    assert "first@example.org\tadmin\t" in listing
    assert "second@example.org\torganizer\t" in listing
    assert "third@example.org\tviewer\t" in listing
    r = run("staff", "set-role", "third@example.org", "organizer")
    assert r.exit_code == 0 and "third@example.org is now an organizer" in r.output
    assert "third@example.org\torganizer\t" in run("staff", "list").output
    r = run("staff", "set-role", "third@example.org", "boss")
    assert r.exit_code != 0 and "boss" in r.output
    r = run("staff", "set-role", "first@example.org", "viewer")  # the only admin
    assert r.exit_code == 1 and "only active admin" in r.output
    assert "first@example.org\tadmin\t" in run("staff", "list").output
    r = run("staff", "set-role", "nobody@example.org", "viewer")
    assert r.exit_code == 1 and "has no login" in r.output
    with rt.db.reader() as uow:
        from sqlalchemy import select

        from storage.models import AuditLog

        entries = [(a.action, a.target, a.detail) for a in uow.session.scalars(select(AuditLog))]
    assert ("staff_role", "third@example.org", "viewer → organizer") in entries


def test_migration_0010_makes_existing_logins_admins(db_url):
    engine = dbmod.make_engine(db_url)
    try:
        dbmod.downgrade(db_url, "0008_campaigns")
        engine.dispose()
        from sqlalchemy import text

        with engine.begin() as conn:
            conn.execute(text("INSERT INTO staff_users (email, password_hash, session_token, active, created_at) "
                              "VALUES ('old@example.org', 'x', 'y', true, CURRENT_TIMESTAMP)"))
        dbmod.upgrade(db_url, "head")
        engine.dispose()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT role FROM staff_users")).scalars().all() == ["admin"]
        assert "api_tokens" in inspect(engine).get_table_names()
    finally:
        dbmod.upgrade(db_url, "head")
        engine.dispose()


def test_token_printed_once_works_shows_last_use_and_is_revoked(run, rt, db_url):
    from bots import api_tokens

    assert run("staff", "add", "first@example.org", input=GOOD + "\n").exit_code == 0
    r = run("staff", "token", "first@example.org", "--label", "CRM sync")
    assert r.exit_code == 0 and "CRM sync" in r.output
    token = r.output.strip().splitlines()[-1]
    assert token.startswith("firma_") and len(token) > 40
    assert "1 API token, last used: never" in run("staff", "list").output
    assert api_tokens.token_user(rt.db, token, rt.now()).label == "CRM sync"
    assert "1 API token, last used: 2026-11-27 18:00 UTC" in run("staff", "list").output
    r = run("staff", "revoke-tokens", "first@example.org")
    assert r.exit_code == 0 and "1 API token of first@example.org revoked" in r.output
    assert api_tokens.token_user(rt.db, token, rt.now()) is None
    assert "no API token" in run("staff", "list").output
    r = run("staff", "token", "nobody@example.org")
    assert r.exit_code == 1 and "has no login" in r.output
