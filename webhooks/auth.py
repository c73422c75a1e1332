"""Staff sessions and the app-wide protection that goes with them (installed by the app factory):

- CSRF (Flask-WTF) on every POST/PUT/PATCH/DELETE except the provider webhooks (/webhooks/) and the
  public API (/api/), which are machine-to-machine and authenticated by signatures, not cookies. The
  simulator's JSON POST sends the token in the X-CSRFToken header.
- the session cookie: signed with FIRMA_SECRET_KEY, HttpOnly, SameSite=Lax, and Secure except in
  development or testing over plain http.
- every /staff path except the sign-in page refuses anonymous requests (default deny by path, so
  every console blueprint is covered), and gets the security headers.
- roles: every /staff view needs a role, declared with ``@requires(VIEWER)`` (or ORGANIZER) on the
  view or ``blueprint_requires(bp, ORGANIZER)`` for a whole blueprint; a view that declares nothing
  is for admins only, so a page added later is closed until someone decides who may see it. A staff
  member without the role gets 403.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from bots import staff_accounts
from bots.staff_accounts import ADMIN, ORGANIZER, VIEWER  # noqa: F401  (the roles views declare)
from webhooks import runtime

csrf = CSRFProtect()

SESSION_HOURS = 12
# The providers' webhooks, the public API and the public campaign pages: no staff session (no cookie
# looked for, so no "Vary: Cookie" on pages that caches share), no CSRF token.
NOT_STAFF_PREFIXES = ("/webhooks/", "/api/", "/c/")
PUBLIC_STAFF_ENDPOINTS = {"staff.login"}
_BLUEPRINT_ROLES: dict[str, str] = {}  # blueprint name -> the role its views need unless they say


def requires(role: str):
    """Declare the least role a console view needs (checked by the /staff guard before it runs)."""
    staff_accounts.check_role(role)

    def mark(view):
        view.firma_role = role
        return view
    return mark


def blueprint_requires(bp, role: str) -> None:
    """The least role every view of ``bp`` needs, unless a view declares its own."""
    _BLUEPRINT_ROLES[bp.name] = staff_accounts.check_role(role)


def required_role(app: Flask, endpoint: str | None) -> str:
    """The role a console endpoint needs: its view's, else its blueprint's, else admin."""
    view = app.view_functions.get(endpoint or "")
    role = getattr(view, "firma_role", None)
    if role is None and endpoint and "." in endpoint:
        role = _BLUEPRINT_ROLES.get(endpoint.rsplit(".", 1)[0])
    return role or ADMIN


def development(app: Flask) -> bool:
    """`firma serve` (the simulator open to anyone), Flask's debug mode, or tests."""
    return bool(app.config.get("SIMULATOR_OPEN") or app.debug or app.testing)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session; the cookie is Secure unless in development over plain http.
    Requests from the providers and to the public API never carry a staff session: they get Flask's
    empty, read-only one without a cookie being looked for (the webhooks stay cheap)."""

    def open_session(self, app: Flask, request):
        if request.path.startswith(NOT_STAFF_PREFIXES):
            return None  # Flask's NullSession: reads find nothing, a write is an error
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or not development(app)


def install(app: Flask) -> None:
    app.config.update(
        SESSION_COOKIE_NAME="firma_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by _protect below, with path exemptions
        WTF_CSRF_TIME_LIMIT=SESSION_HOURS * 3600,
    )
    app.config["SESSION_COOKIE_SECURE"] = True  # what SessionInterface does, but for development over http
    app.session_interface = SessionInterface()
    csrf.init_app(app)
    app.before_request(_guard_staff_paths)  # before the CSRF check: anonymous is refused as such
    app.before_request(_protect)
    app.config["STAFF_SIGNED_IN"] = lambda: current_staff() is not None  # the simulator asks this


def _protect():
    if request.path.startswith(NOT_STAFF_PREFIXES):
        return None
    csrf.protect()
    return None


def _is_staff_path() -> bool:
    return request.path == "/staff" or request.path.startswith("/staff/")


def _guard_staff_paths():
    if not _is_staff_path() or request.endpoint in PUBLIC_STAFF_ENDPOINTS:
        return None
    staff = current_staff()
    if staff is None:
        if request.method in ("GET", "HEAD"):
            return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
        abort(403, "sign in first")
    if request.endpoint is None:  # no such page: its 404
        return None
    needed = required_role(current_app._get_current_object(), request.endpoint)
    if not staff.can(needed):
        return forbidden(needed)
    return None


def forbidden(needed: str):
    """The console's answer to a staff member whose role does not allow a page or an action."""
    what = {ADMIN: "an admin", ORGANIZER: "an organizer or an admin"}.get(needed, needed)
    return render_template("staff/error.html", title="Not for your role",
                           message=f"This is for {what}. Ask an admin if you need it."), 403


def current_staff() -> staff_accounts.StaffInfo | None:
    """The signed-in staff member (checked against the database once per request), or None."""
    if "staff" not in g:
        g.staff = None
        if "staff_id" in session:
            signed_in_at = session.get("signed_in_at")
            fresh = isinstance(signed_in_at, (int, float)) and \
                runtime().now().timestamp() - signed_in_at < SESSION_HOURS * 3600
            if fresh:
                g.staff = staff_accounts.current_staff(runtime().db, session.get("staff_id"),
                                                       session.get("staff_token"))
            if g.staff is None:
                session.clear()
    return g.staff


def client_ip() -> str:
    return request.remote_addr or "unknown"


def safe_next(target: str | None) -> str:
    """Only a path inside the console (no open redirect to another site)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/staff") and "//" not in parts.path \
                and "\\" not in target:
            return target
    return url_for("staff.dashboard")


def csrf_error(exc: CSRFError):
    """The console's "the form expired" page (each console blueprint registers it; the JSON callers
    get the app's JSON error)."""
    return render_template("staff/error.html", title="The form expired",
                           message="This form was open too long, or came from another page. "
                                   "Go back, reload the page and try again.", detail=exc.description), 400
