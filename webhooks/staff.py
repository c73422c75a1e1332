"""The staff console under /staff: sign-in, dashboard, export, member lookup, audit log. Broadcasts
have their pages in webhooks/staff_broadcasts.py; sessions, CSRF and the /staff guard are app-wide
(webhooks/auth.py). Creating and editing campaigns is in webhooks/staff_campaigns.py."""

from __future__ import annotations

import logging

from flask import (Blueprint, Response, abort, flash, redirect, render_template, request, session,
                   stream_with_context, url_for)
from flask_wtf.csrf import CSRFError

from bots import audit, channels, delivery_files, staff_accounts
from bots import dashboard as figures
from bots import members as member_svc
from bots.broadcasts import local_time
from bots.campaigns import audit_changes
from bots.exports import export_lines
from webhooks import charts, runtime
from webhooks.auth import ORGANIZER, VIEWER, client_ip, csrf_error, current_staff, forbidden, requires, safe_next

log = logging.getLogger("firma.staff")

bp = Blueprint("staff", __name__, url_prefix="/staff")
bp.register_error_handler(CSRFError, csrf_error)


@bp.app_context_processor
def _navigation():
    return {
        "staff_user": current_staff(),
        "number": charts.number,
        "percent": charts.percent,
        "channel_label": channels.label,
        "channel_labels": {c.name: c.label for c in channels.channels()},
        # "SMS and WhatsApp": the channels whose broadcasts wait for the recipient's local morning
        "quiet_channels": " and ".join(c.label for c in channels.channels() if c.quiet_hours),
        "staff_can": lambda role: (current_staff() is not None and current_staff().can(role)),
        "contact": _contact,
        "org_zone": runtime().settings.timezone,  # FIRMA_TIMEZONE: "today", schedules
        "local": _local_time,  # a time as the organization reads it, in FIRMA_TIMEZONE
    }


def _local_time(dt) -> str:
    return local_time(dt, runtime().settings.timezone)


def _contact(address: str | None) -> str:
    """A phone number or Telegram id as the signed-in staff member may see it: admins only."""
    staff = current_staff()
    if staff is not None and staff.sees_contacts:
        return address or ""
    return "contact hidden (admins only)"


# --- sign in and out --------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_staff() is not None:
            return redirect(next_url)
        return render_template("staff/login.html", next_url=next_url, email="")
    email = request.form.get("email", "")
    password = request.form.get("password", "")
    rt = runtime()
    result = staff_accounts.sign_in(rt.db, email, password, client_ip(), rt.now())
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
@requires(VIEWER)
def logout():
    staff = current_staff()
    rt = runtime()
    staff_accounts.sign_out(rt.db, staff, client_ip(), rt.now())
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("staff.login"), code=303)


# --- dashboard and export ---------------------------------------------------------------------------


@bp.get("")
@bp.get("/")
@requires(VIEWER)
def dashboard():
    rt = runtime()
    campaigns = figures.overview(rt, rt.now())
    return render_template("staff/dashboard.html", campaigns=campaigns, page="dashboard")


@bp.get("/campaigns/<slug>")
@requires(VIEWER)
def campaign(slug: str):
    rt = runtime()
    stats = figures.campaign_stats(rt, slug, rt.now())
    if stats is None:
        abort(404, f"no campaign {slug!r}")
    from bots.delivery import state_name

    return render_template("staff/campaign.html", s=stats, page="dashboard",
                           delivery_files=delivery_files.recent(rt, slug) if current_staff().can(ORGANIZER) else [],
                           direct_limit=delivery_files.DIRECT_LIMIT,
                           state_choices=sorted((code, state_name(code, "en")) for code, _ in stats.by_state if code),
                           channels=charts.ranked_bars(stats.by_channel),
                           languages=charts.ranked_bars(stats.by_language),
                           states=charts.ranked_bars(stats.by_state),
                           days=charts.day_chart(stats.by_day),
                           goal_pct=min(100.0, 100.0 * stats.total / stats.goal) if stats.goal else None)


@bp.post("/campaigns/<slug>/export")
@requires(ORGANIZER)
def export(slug: str):
    """The signature CSV (the same bytes as `firma export`), streamed; written to the audit log first."""
    rt = runtime()
    if slug not in rt.catalog.campaigns:
        abort(404, f"no campaign {slug!r}")
    include_contact = request.form.get("include_contact") in ("1", "on", "true", "yes")
    if include_contact and not current_staff().sees_contacts:
        return forbidden("admin")
    now = rt.now()
    audit.audit(rt.db, current_staff(), audit.EXPORT, slug,
              "with contact" if include_contact else "without contact", client_ip(), now)
    filename = f"firma-{slug}-{now:%Y%m%d-%H%M}{'-with-contact' if include_contact else ''}.csv"
    response = Response(stream_with_context(export_lines(rt, slug, include_contact)),
                        mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    return response


@bp.post("/campaigns/<slug>/delivery")
@requires(ORGANIZER)
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
    staff = current_staff()
    asked = f"names {req.names}, {req.state or 'all states'}, {req.language}"
    if delivery_files.made_by_a_worker(req):  # too long for a web request: a worker makes it
        file_id = delivery_files.request(rt, req, staff.email)
        audit.audit(rt.db, staff, audit.DELIVERY, slug, f"{asked}; file #{file_id}, made by a worker", client_ip(), now)
        return redirect(url_for("staff.delivery_file", slug=slug, file_id=file_id), code=303)
    audit.audit(rt.db, staff, audit.DELIVERY, slug, asked, client_ip(), now)
    return Response(stream_with_context(packages.render(rt, req)), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{req.filename}"'})


@bp.get("/campaigns/<slug>/deliveries/<int:file_id>")
@requires(ORGANIZER)
def delivery_file(slug: str, file_id: int):
    """A delivery file a worker makes: waiting, being made (the page refreshes itself), ready, failed."""
    f = delivery_files.find(runtime(), slug, file_id)
    if f is None:
        abort(404, "no such delivery file (they are kept a week)")
    return render_template("staff/delivery_file.html", f=f, refresh=None if f.done else 3, page="dashboard")


@bp.get("/campaigns/<slug>/deliveries/<int:file_id>/download")
@requires(ORGANIZER)
def delivery_file_download(slug: str, file_id: int):
    rt = runtime()
    f = delivery_files.find(rt, slug, file_id)
    if f is None or f.status != "ready":
        abort(404, "no such delivery file ready to download (they are kept a week)")
    audit.audit(rt.db, current_staff(), audit.DELIVERY, slug, f"download of file #{file_id}", client_ip(), rt.now())
    return Response(delivery_files.content(rt, file_id), mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{f.filename}"',
                             "Content-Length": str(f.size)})


@bp.post("/campaigns/<slug>/flyer")
@requires(ORGANIZER)
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
@requires(ORGANIZER)
def members():
    """Lookup by phone or Telegram id; the number travels in the POST body, never in a URL or a log."""
    if request.method == "GET":
        return render_template("staff/members.html", page="members", query="", results=None)
    query = request.form.get("q", "").strip()[:64]
    if not query.isprintable():  # a NUL or a control character is no contact, and PostgreSQL refuses a NUL
        query = ""
    rt = runtime()
    found = member_svc.find_members(rt, query)
    # Who looked and when, never what was typed: the audit log is read by all staff and outlives an erasure.
    target = ",".join(str(m.id) for m in found[:10]) or None
    audit.audit(rt.db, current_staff(), audit.MEMBER_LOOKUP, target, f"{len(found)} found", client_ip(), rt.now())
    if len(found) == 1:
        return redirect(url_for("staff.member", member_id=found[0].id), code=303)
    if not channels.contact_candidates(query):
        return render_template("staff/members.html", page="members", query=query, results=None,
                               error="Type a phone number (like 312 555 0101 or +13125550101) or a Telegram "
                                     "user id (digits only)."), 400
    return render_template("staff/members.html", page="members", query=query, results=found)


@bp.get("/members/<int:member_id>")
@requires(ORGANIZER)
def member(member_id: int):
    rt = runtime()
    history = member_svc.member_history(rt, member_id)
    if history is None:
        abort(404, "no such member")
    audit.audit(rt.db, current_staff(), audit.MEMBER_VIEW, str(member_id), None, client_ip(), rt.now())
    return render_template("staff/member.html", page="members", h=history, m=history.member)


# --- audit log --------------------------------------------------------------------------------------

AUDIT_PAGE = 100


@bp.get("/audit")
def audit_log():
    before = request.args.get("before", type=int)
    if before is not None and not 0 < before <= 2 ** 63 - 1:
        abort(400, "before must be an entry's number")
    entries = audit.audit_entries(runtime().db, AUDIT_PAGE, before)
    older = entries[-1].id if len(entries) == AUDIT_PAGE else None
    return render_template("staff/audit.html", page="audit", entries=entries, older=older,
                           changes_of=audit_changes, shown=_audit_value)


def _audit_value(value) -> str:
    """An old or new value of a campaign change, as the audit page shows it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):  # keywords: [[word, language], ...]
        return ", ".join(f"{w} ({lang})" for w, lang in value) or "—"
    return str(value)
