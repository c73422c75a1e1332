"""`firma staff ...`: staff logins for the console at /staff (issue 5).

The password comes from a hidden prompt (typed twice) on a terminal, or from the first line of
standard input otherwise (``printf '%s\\n' "$PW" | firma staff add a@b.org``), never from an argument
(arguments end up in shell history and process lists).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import click

from bots import audit, staff_accounts as svc


def _db(obj):
    from storage.uow import Database

    return Database(obj.settings.database_url)


def _password() -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    line = sys.stdin.readline() if sys.stdin is not None else ""
    password = line.rstrip("\r\n")
    if not password:
        raise click.ClickException("no password on standard input (give it as the first line)")
    return password


def _run(fn, *args):
    try:
        return fn(*args)
    except svc.StaffError as exc:
        raise click.ClickException(str(exc)) from None


@click.group("staff")
def staff():
    """Staff logins for the web console at /staff."""


@staff.command("add")
@click.argument("email")
@click.pass_obj
def add(obj, email: str):
    """Create a staff login (password from a prompt, or stdin when not a terminal)."""
    email = _run(svc.normalize_email, email)
    password = _password()
    db = _db(obj)
    try:
        info = _run(svc.add_staff, db, email, password, datetime.now(timezone.utc))
        audit.record(db, audit.cli_user(), audit.STAFF_ADD, info.email, None, None, datetime.now(timezone.utc))
    finally:
        db.dispose()
    click.echo(f"staff login created for {info.email}; sign in at /staff/login")


@staff.command("set-password")
@click.argument("email")
@click.pass_obj
def set_password(obj, email: str):
    """Give a login a new password (ends its sessions and enables it again)."""
    email = _run(svc.normalize_email, email)
    password = _password()
    db = _db(obj)
    try:
        _run(svc.set_password, db, email, password)
        audit.record(db, audit.cli_user(), audit.STAFF_SET_PASSWORD, email, None, None, datetime.now(timezone.utc))
    finally:
        db.dispose()
    click.echo(f"password changed for {email}")


@staff.command("disable")
@click.argument("email")
@click.pass_obj
def disable(obj, email: str):
    """Stop a login from signing in, and end its sessions (set-password enables it again)."""
    db = _db(obj)
    try:
        _run(svc.set_active, db, email, False)
        audit.record(db, audit.cli_user(), audit.STAFF_DISABLE, email.strip().lower(), None, None,
                     datetime.now(timezone.utc))
    finally:
        db.dispose()
    click.echo(f"{email.strip().lower()} is disabled")


@staff.command("list")
@click.pass_obj
def list_(obj):
    """List staff logins."""
    db = _db(obj)
    try:
        rows = svc.list_staff(db)
    finally:
        db.dispose()
    if not rows:
        click.echo("no staff logins yet: add one with `firma staff add EMAIL`")
    for r in rows:
        last = r["last_sign_in_at"].strftime("%Y-%m-%d %H:%M UTC") if r["last_sign_in_at"] else "never"
        click.echo(f"{r['email']}\t{'active' if r['active'] else 'disabled'}\tlast sign-in: {last}")
