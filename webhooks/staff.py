"""The staff console under /staff: sign-in, dashboard, export, member lookup, audit log (issue 5).

``init_app`` also sets the app-wide web security that the console needs:
- CSRF (Flask-WTF) on every POST/PUT/PATCH/DELETE except the provider webhooks (/webhooks/) and the
  public API (/api/), which are machine-to-machine and authenticated by signatures, not cookies. The
  simulator's JSON POST sends the token in the X-CSRFToken header.
- the session cookie: signed with FIRMA_SECRET_KEY, HttpOnly, SameSite=Lax, and Secure except in
  development or testing over plain http.
- every /staff path except the sign-in page refuses anonymous requests (default deny by path, so
  later /staff blueprints, such as broadcasts, are covered too), and gets the security headers.

Broadcasts have their pages in webhooks/staff_broadcasts.py (blueprint "staff_broadcasts", registered
by init_app); the navigation shows them because its "index" view exists.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, Response, abort, current_app, flash, g, redirect, render_template, request,
                   session, stream_with_context, url_for)
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from bots import staff as svc
from bots.exports import export_lines
from webhooks import charts, runtime

log = logging.getLogger("firma.staff")

bp = Blueprint("staff", __name__, url_prefix="/staff")
csrf = CSRFProtect()

SESSION_HOURS = 12
# The providers' webhooks, the public API and the public campaign pages: no staff session (no cookie
# looked for, so no "Vary: Cookie" on pages that caches share), no CSRF token.
NOT_STAFF_PREFIXES = ("/webhooks/", "/api/", "/c/")  # and the public campaign pages
PUBLIC_STAFF_ENDPOINTS = {"staff.login"}
BROADCASTS_ENDPOINT = "staff_broadcasts.index"  # webhooks/staff_broadcasts.py



def development(app: Flask) -> bool:
    """`firma serve` (the simulator open to anyone), Flask's debug mode, or tests."""
    return bool(app.config.get("SIMULATOR_OPEN") or app.debug or app.testing)


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session; the cookie is Secure unless in development over plain http.
    Requests from the providers and to the public API never carry a staff session: they get Flask's
    empty, read-only one without a cookie being looked for (the webhooks' hot path, issue 6)."""

    def open_session(self, app: Flask, request):
        if request.path.startswith(NOT_STAFF_PREFIXES):
            return None  # Flask's NullSession: reads find nothing, a write is an error
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or not development(app)


def init_app(app: Flask) -> None:
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
    app.register_blueprint(bp)
    from webhooks import staff_broadcasts  # imports this module, so only now

    app.register_blueprint(staff_broadcasts.bp)


# --- request hooks ----------------------------------------------------------------------------------


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
    if current_staff() is not None:
        return None
    if request.method in ("GET", "HEAD"):
        return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
    abort(403, "sign in first")


def current_staff() -> svc.StaffInfo | None:
    """The signed-in staff member (checked against the database once per request), or None."""
    if "staff" not in g:
        g.staff = None
        if "staff_id" in session:
            signed_in_at = session.get("signed_in_at")
            fresh = isinstance(signed_in_at, (int, float)) and \
                runtime().now().timestamp() - signed_in_at < SESSION_HOURS * 3600
            if fresh:
                g.staff = svc.current_staff(runtime().db, session.get("staff_id"), session.get("staff_token"))
            if g.staff is None:
                session.clear()
    return g.staff


def _ip() -> str:
    return request.remote_addr or "unknown"


def _safe_next(target: str | None) -> str:
    """Only a path inside the console (no open redirect to another site)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/staff") and "//" not in parts.path \
                and "\\" not in target:
            return target
    return url_for("staff.dashboard")


@bp.app_context_processor
def _navigation():
    return {
        "staff_user": current_staff(),
        "broadcasts_url": url_for(BROADCASTS_ENDPOINT) if BROADCASTS_ENDPOINT in current_app.view_functions else None,
        "number": charts.number,
        "percent": charts.percent,
    }


@bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError):
    return render_template("staff/error.html", title="The form expired",
                           message="This form was open too long, or came from another page. "
                                   "Go back, reload the page and try again.", detail=exc.description), 400


# --- sign in and out --------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_staff() is not None:
            return redirect(next_url)
        return render_template("staff/login.html", next_url=next_url, email="")
    email = request.form.get("email", "")
    password = request.form.get("password", "")
    rt = runtime()
    result = svc.sign_in(rt.db, email, password, _ip(), rt.now())
    if result.throttled:
        minutes = max(1, (result.retry_after + 59) // 60)
        body = render_template("staff/login.html", next_url=next_url, email=email,
                               error=f"Too many failed sign-ins. Try again in {minutes} minute"
                                     f"{'s' if minutes != 1 else ''}.")
        return body, 429, {"Retry-After": str(result.retry_after)}
    if result.staff is None:
        return render_template("staff/login.html", next_url=next_url, email=email,
                               error="That email and password do not match a staff login."), 401
    session.clear()  # a fresh session (and CSRF token) after signing in
    session.permanent = True
    session.update(staff_id=result.staff.id, staff_token=result.staff.session_token,
                   signed_in_at=rt.now().timestamp())
    log.info("staff sign-in: %s", result.staff.email)
    return redirect(next_url, code=303)


@bp.post("/logout")
def logout():
    staff = current_staff()
    rt = runtime()
    svc.sign_out(rt.db, staff, _ip(), rt.now())
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("staff.login"), code=303)


# --- dashboard and export ---------------------------------------------------------------------------


@bp.get("")
@bp.get("/")
def dashboard():
    rt = runtime()
    campaigns = svc.overview(rt, rt.now())
    return render_template("staff/dashboard.html", campaigns=campaigns, page="dashboard")


@bp.get("/campaigns/<slug>")
def campaign(slug: str):
    rt = runtime()
    stats = svc.campaign_stats(rt, slug, rt.now())
    if stats is None:
        abort(404, f"no campaign {slug!r}")
    from bots.delivery import state_name

    return render_template("staff/campaign.html", s=stats, page="dashboard",
                           state_choices=sorted((code, state_name(code, "en")) for code, _ in stats.by_state if code),
                           channels=charts.ranked_bars(stats.by_channel),
                           languages=charts.ranked_bars(stats.by_language),
                           states=charts.ranked_bars(stats.by_state),
                           days=charts.day_chart(stats.by_day),
                           goal_pct=min(100.0, 100.0 * stats.total / stats.goal) if stats.goal else None)


@bp.post("/campaigns/<slug>/export")
def export(slug: str):
    """The signature CSV (the same bytes as `firma export`), streamed; written to the audit log first."""
    rt = runtime()
    if slug not in rt.catalog.campaigns:
        abort(404, f"no campaign {slug!r}")
    include_contact = request.form.get("include_contact") in ("1", "on", "true", "yes")
    now = rt.now()
    svc.audit(rt.db, current_staff(), svc.EXPORT, slug,
              "with contact" if include_contact else "without contact", _ip(), now)
    filename = f"firma-{slug}-{now:%Y%m%d-%H%M}{'-with-contact' if include_contact else ''}.csv"
    response = Response(stream_with_context(export_lines(rt, slug, include_contact)),
                        mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return response


@bp.post("/campaigns/<slug>/delivery")
def delivery(slug: str):
    """The delivery package PDF (as `firma deliver`), streamed; written to the audit log first."""
    from bots import delivery as packages

    rt = runtime()
    if slug not in rt.catalog.campaigns:
        abort(404, f"no campaign {slug!r}")
    form = request.form
    try:
        req = packages.check(rt, slug, form.get("state") or None, form.get("names", "short"),
                             form.get("language", "en"))
    except packages.DeliveryError as exc:
        return render_template("staff/error.html", title="The delivery cannot be made", message=str(exc)), 400
    now = rt.now()
    svc.audit(rt.db, current_staff(), svc.DELIVERY, slug,
              f"names {req.names}, {req.state or 'all states'}, {req.language}", _ip(), now)
    return Response(stream_with_context(packages.render(rt, req)), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{req.filename}"'})


@bp.post("/campaigns/<slug>/flyer")
def flyer(slug: str):
    """The printable flyer (as `firma flyer`)."""
    from bots import flyer as flyers

    rt = runtime()
    if slug not in rt.catalog.campaigns:
        abort(404, f"no campaign {slug!r}")
    language = request.form.get("language", "en")
    try:
        ways = flyers.ways_to_sign(rt, slug, language)
    except flyers.FlyerError as exc:
        return render_template("staff/error.html", title="The flyer cannot be made", message=str(exc)), 400
    return Response(flyers.render(rt, slug, language, ways), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{slug}-flyer.pdf"'})


# --- member lookup ----------------------------------------------------------------------------------


@bp.route("/members", methods=["GET", "POST"])
def members():
    """Lookup by phone or Telegram id; the number travels in the POST body, never in a URL or a log."""
    if request.method == "GET":
        return render_template("staff/members.html", page="members", query="", results=None)
    query = request.form.get("q", "").strip()[:64]
    rt = runtime()
    found = svc.find_members(rt, query)
    svc.audit(rt.db, current_staff(), svc.MEMBER_LOOKUP, None, f"{query} -> {len(found)} found", _ip(), rt.now())
    if len(found) == 1:
        return redirect(url_for("staff.member", member_id=found[0].id), code=303)
    if not svc.address_candidates(query):
        return render_template("staff/members.html", page="members", query=query, results=None,
                               error="Type a phone number (like 312 555 0101 or +13125550101) or a Telegram "
                                     "user id (digits only)."), 400
    return render_template("staff/members.html", page="members", query=query, results=found)


@bp.get("/members/<int:member_id>")
def member(member_id: int):
    rt = runtime()
    history = svc.member_history(rt, member_id)
    if history is None:
        abort(404, "no such member")
    svc.audit(rt.db, current_staff(), svc.MEMBER_VIEW, str(member_id), None, _ip(), rt.now())
    return render_template("staff/member.html", page="members", h=history, m=history.member)


# --- audit log --------------------------------------------------------------------------------------

AUDIT_PAGE = 100


@bp.get("/audit")
def audit_log():
    before = request.args.get("before", type=int)
    entries = svc.audit_entries(runtime().db, AUDIT_PAGE, before)
    older = entries[-1].id if len(entries) == AUDIT_PAGE else None
    return render_template("staff/audit.html", page="audit", entries=entries, older=older)
