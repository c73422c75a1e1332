"""Staff logins in the console, for admins: who has a login, their role, when they last signed in
or used an API token; an admin changes a role here (as `firma staff set-role` does). Passwords and
tokens stay on the command line, where they are not shown in a browser."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from bots import audit, staff_accounts
from webhooks import runtime
from webhooks.auth import client_ip, csrf_error, current_staff

bp = Blueprint("staff_team", __name__, url_prefix="/staff/team")
bp.register_error_handler(CSRFError, csrf_error)
# No role declared: every view here is for admins (webhooks/auth.py).

ROLE_HELP = {
    staff_accounts.ADMIN: "everything: staff logins, campaigns, phone numbers and Telegram ids",
    staff_accounts.ORGANIZER: "broadcasts, the inbox, exports and deliveries, without contact data",
    staff_accounts.VIEWER: "dashboards and counts only",
}


def _page(status: int = 200, error: str | None = None):
    rows = staff_accounts.list_staff(runtime().db)
    return render_template("staff/team.html", page="team", rows=rows, roles=staff_accounts.ROLES,
                           role_help=ROLE_HELP, error=error), status


@bp.get("")
@bp.get("/")
def index():
    return _page()


@bp.post("/role")
def set_role():
    email = request.form.get("email", "")
    role = request.form.get("role", "")
    rt = runtime()
    try:
        old, new = staff_accounts.set_role(rt.db, email, role)
    except staff_accounts.StaffError as exc:
        return _page(400, error=str(exc))
    if old != new:
        audit.audit(rt.db, current_staff(), audit.STAFF_ROLE, email.strip().lower(), f"{old} → {new}",
                    client_ip(), rt.now())
        flash(f"{email.strip().lower()} is now {'an' if new[0] in 'aeiou' else 'a'} {new}.")
    return redirect(url_for("staff_team.index"), code=303)
