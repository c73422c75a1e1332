"""`firma staff ...`: staff logins for the console at /staff, their roles and API tokens.

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

    return Database(obj.ready_database())


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
@click.option("--role", type=click.Choice(svc.ROLES), default=None,
              help="admin, organizer or viewer (default: admin for the first login, organizer after)")
@click.pass_obj
def add(obj, email: str, role: str | None):
    """Create a staff login (password from a prompt, or stdin when not a terminal)."""
    email = _run(svc.normalize_email, email)
    password = _password()
    db = _db(obj)
    try:
        info = _run(svc.add_staff, db, email, password, datetime.now(timezone.utc), role)
        audit.record(db, audit.cli_user(), audit.STAFF_ADD, info.email, None, None, datetime.now(timezone.utc))
    finally:
        db.dispose()
    click.echo(f"staff login created for {info.email} ({info.role}); sign in at /staff/login")


@staff.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(svc.ROLES))
@click.pass_obj
def set_role(obj, email: str, role: str):
    """Make a login an admin, an organizer or a viewer."""
    db = _db(obj)
    try:
        old, new = _run(svc.set_role, db, email, role)
        if old != new:
            from bots import audit
            from bots.campaigns import cli_actor

            audit.audit_as(db, cli_actor().who, audit.STAFF_ROLE, email.strip().lower(), f"{old} → {new}",
                           datetime.now(timezone.utc))
    finally:
        db.dispose()
    click.echo(f"{email.strip().lower()} is {'now ' if old != new else 'already '}{'a' if new == 'viewer' else 'an'} {new}")


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
        if not r["tokens"]:
            api = "no API token"
        else:
            used = r["token_last_used_at"].strftime("%Y-%m-%d %H:%M UTC") if r["token_last_used_at"] else "never"
            api = f"{r['tokens']} API token{'s' if r['tokens'] != 1 else ''}, last used: {used}"
        click.echo(f"{r['email']}\t{r['role']}\t{'active' if r['active'] else 'disabled'}\tlast sign-in: {last}"
                   f"\t{api}")


@staff.command("token")
@click.argument("email")
@click.option("--label", default=None, help="what the token is for (the audit log names its changes so)")
@click.pass_obj
def token(obj, email: str, label: str | None):
    """Print a new API token for /api/staff/ (shown this once; it acts with the login's role)."""
    from bots import api_tokens

    db = _db(obj)
    try:
        value, label = _run(api_tokens.create_token, db, email, label, datetime.now(timezone.utc))
    finally:
        db.dispose()
    click.echo(f"API token for {email.strip().lower()} ({label}); it is shown only now, keep it safe:", err=True)
    click.echo(value)


@staff.command("revoke-tokens")
@click.argument("email")
@click.pass_obj
def revoke_tokens(obj, email: str):
    """Delete every API token of a login (they stop working at once)."""
    from bots import api_tokens

    db = _db(obj)
    try:
        n = _run(api_tokens.revoke_tokens, db, email)
    finally:
        db.dispose()
    click.echo(f"{n} API token{'s' if n != 1 else ''} of {email.strip().lower()} revoked")
