"""Broadcasts in the staff console: past broadcasts, compose with a preview, confirm, send (which
only writes rows: `firma worker` sends), and one broadcast's progress.

Everything goes through the broadcast service functions in bots/broadcasts.py (preview,
create_broadcast, progress, list_broadcasts); this module only parses forms and renders pages. The
/staff guard and the CSRF check (webhooks/auth.py) cover every route here (by path).
"""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from bots import audit
from bots import broadcast_plan as plan
from bots import broadcasts as bsvc
from bots import channels
from webhooks import runtime
from webhooks.auth import ORGANIZER, VIEWER, client_ip, csrf_error, current_staff, requires

bp = Blueprint("staff_broadcasts", __name__, url_prefix="/staff/broadcasts")
bp.register_error_handler(CSRFError, csrf_error)

STATUSES = ("pending", "held", "sending", "sent", "delivered", "failed", "skipped", bsvc.OUTSIDE_WINDOW, "unknown")
REFRESH_SECONDS = 3
SLOW_REFRESH = {"held": 60, "scheduled": 30}  # waiting for the morning, or for its time
WORKER_RECENT = 120  # seconds: a worker that sent this recently counts as "seen recently"
SEND_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")  # the confirmation's one-time token (secrets.token_urlsafe)
CREATION_BUDGET_S = 25  # seconds the database may take to write a broadcast's deliveries (gunicorn's timeout: 30)
# The list's columns, each a sum of statuses, so that it fits a 1280 px screen (the page of each
# broadcast has every status).
LIST_COLUMNS = (("waiting", "Waiting", ("pending", "held", "sending")), ("sent", "Sent", ("sent", "delivered")),
                ("delivered", "Delivered", ("delivered",)), ("failed", "Failed", ("failed", "unknown")),
                ("not_sent", "Not sent", ("skipped", "outside_window")))
FORM_FIELDS = ("campaign", "message_en", "message_es", "channel", "state", "zip_prefix", "signed_since", "send_at",
               "whatsapp_template")
LIST_LIMIT = 20  # each row is one COUNT ... GROUP BY status over that broadcast's deliveries (index only)


def channel_choices() -> list[tuple[str, str]]:
    """The broadcast form's channel filter: every channel, or one."""
    every = channels.channels()
    both = " and ".join([", ".join(c.label for c in every[:-1]), every[-1].label]) if len(every) > 1 else every[0].label
    return [(bsvc.ALL, both)] + [(c.name, f"{c.label} only") for c in every]


def _now() -> datetime:
    return runtime().now()


def _ago(t: datetime | None, now: datetime) -> str | None:
    if t is None:
        return None
    seconds = int((now - t).total_seconds())
    if seconds < 0:
        return "just now"
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 90 * 60:
        return f"{seconds // 60} min ago"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _worker_seen(now: datetime) -> dict:
    last = bsvc.last_worker_send(runtime())
    return {"last": last, "ago": _ago(last, now),
            "recent": last is not None and (now - last).total_seconds() <= WORKER_RECENT}


# --- the form ---------------------------------------------------------------------------------------


def _form_values() -> dict:
    f = request.form
    return {k: (f.get(k) or "").strip() for k in FORM_FIELDS}


def _request_from(values: dict) -> bsvc.BroadcastRequest:
    """The service request for the form's values; BroadcastError for what the service does not check."""
    since = None
    if values["signed_since"]:
        try:
            since = datetime.combine(date.fromisoformat(values["signed_since"]), time(0), tzinfo=timezone.utc)
        except ValueError:
            raise plan.BroadcastError(f"“signed since” must be a date like 2026-11-01, not "
                                      f"{values['signed_since']!r}") from None
    send_at = None
    if values.get("send_at"):
        send_at = bsvc.parse_send_at(values["send_at"], runtime().settings.timezone, what="the send time")
    staff = current_staff()
    return bsvc.BroadcastRequest(values["campaign"], values["message_en"], values["message_es"] or None,
                                 values["channel"] or "all", values["state"] or None, values["zip_prefix"] or None,
                                 since, created_by=f"staff:{staff.email}", wording="console", send_at=send_at,
                                 window_template=values.get("whatsapp_template") or None)


def _render_compose(values: dict, preview=None, error: str | None = None, status: int = 200, confirm=False,
                    changed: int | None = None, duplicate: tuple[int, datetime] | None = None):
    rt = runtime()
    campaigns = [(c.slug, c.text("en").title, c.active) for c in rt.catalog.campaigns.values()]
    texts = [t for t in preview.texts if preview.recipients.get(t.channel)] if preview else []
    send_at = None
    if preview is not None and preview.request.send_at is not None:
        send_at = bsvc.local_time(preview.request.send_at, rt.settings.timezone)
    return render_template("staff/broadcast_new.html", page="broadcasts", v=values, pv=preview, error=error,
                           texts=texts, send_at_local=send_at, min_send_at=_local_input(_now()),
                           campaigns=campaigns, channels=channel_choices(), confirm=confirm, changed=changed,
                           send_token=secrets.token_urlsafe(24) if confirm else None,
                           duplicate=duplicate, ago=_ago(duplicate[1], _now()) if duplicate else None,
                           sample_name=plan.SAMPLE_NAME, quiet=rt.settings.quiet_hours,
                           languages={"en": "English", "es": "Spanish"}), status


def _local_input(t: datetime | None) -> str:
    """A time as a datetime-local field holds it, in FIRMA_TIMEZONE."""
    if t is None:
        return ""
    return t.astimezone(ZoneInfo(runtime().settings.timezone)).strftime("%Y-%m-%dT%H:%M")


# --- pages ------------------------------------------------------------------------------------------


@bp.get("")
@bp.get("/")
@requires(VIEWER)
def index():
    rt = runtime()
    now = _now()
    rows = [p for p in bsvc.list_broadcasts(rt, LIST_LIMIT) if _state(p) != "scheduled"]
    scheduled = bsvc.list_scheduled(rt)
    return render_template("staff/broadcasts.html", page="broadcasts", rows=rows, statuses=STATUSES,
                           scheduled=scheduled, columns=LIST_COLUMNS,
                           worker=_worker_seen(now), state_of=_state)


@bp.route("/new", methods=["GET", "POST"])
@requires(ORGANIZER)
def compose():
    """GET: an empty form. POST action=preview: the form again with the preview; action=confirm: the
    confirmation (how many recipients); action=send: write the broadcast, then its progress page."""
    rt = runtime()
    if request.method == "GET":
        first = next((c.slug for c in rt.catalog.campaigns.values() if c.active), next(iter(rt.catalog.campaigns), ""))
        values = dict(campaign=request.args.get("campaign", first), message_en="", message_es="", channel="all",
                      state="", zip_prefix="", signed_since="", whatsapp_template="")
        return _render_compose(values)
    values = _form_values()
    action = request.form.get("action", "preview")
    try:
        req = _request_from(values)
        pv = bsvc.preview(rt, req)
    except plan.BroadcastError as exc:
        return _render_compose(values, error=str(exc), status=400)
    if action == "preview" or action == "edit":
        return _render_compose(values, preview=pv)
    if pv.total == 0 and req.send_at is None:  # a scheduled one goes to the signers of its time
        return _render_compose(values, preview=pv, status=400,
                               error="Nobody matches these filters: there is nobody to send to.")
    if action == "confirm":  # the same broadcast sent a moment ago is said here, before Send
        return _render_compose(values, preview=pv, confirm=True, duplicate=bsvc.recent_duplicate(rt, pv.request, _now()))
    if action != "send":
        return _render_compose(values, preview=pv, error=f"Unknown action {action!r}.", status=400)
    token = request.form.get("send_token", "")
    if not SEND_TOKEN.fullmatch(token):
        return _render_compose(values, preview=pv, confirm=True, status=400,
                               error="This confirmation is not valid any more: confirm again.")
    if (sent := bsvc.sent_with_token(rt, token)) is not None:  # this confirmation was sent already
        return redirect(url_for("staff_broadcasts.show", broadcast_id=sent), code=303)
    expected = request.form.get("expected", type=int)
    if expected != pv.total:  # signers came or left since the confirmation: confirm the new number
        return _render_compose(values, preview=pv, confirm=True, changed=expected, status=409)
    duplicate = bsvc.recent_duplicate(rt, pv.request, _now())
    if duplicate is not None and request.form.get("again") != "1":  # a double click or a resubmitted form
        return _render_compose(values, preview=pv, confirm=True, duplicate=duplicate, status=409)
    try:
        with rt.db.budget(CREATION_BUDGET_S):  # a million deliveries take seconds to write, past the web path's few
            created = bsvc.create_broadcast(rt, req, send_token=token)
    except plan.BroadcastError as exc:  # a send time that passed while the page was open
        return _render_compose(values, preview=pv, error=str(exc), status=400)
    if created.repeated:  # this confirmation was sent already (a double click, a reload): show that one
        return redirect(url_for("staff_broadcasts.show", broadcast_id=created.id), code=303)
    staff = current_staff()
    if created.send_at is not None:
        by_channel = ", ".join(f"{n} {ch}" for ch, n in sorted(pv.recipients.items()) if n)
        detail = f"{req.campaign} scheduled for {created.send_at:%Y-%m-%d %H:%M} UTC ({by_channel} now)"
    else:
        detail = audit.broadcast_detail(req.campaign, created.recipients, pv.recipients, created.held)
    audit.audit(rt.db, staff, audit.BROADCAST, str(created.id), detail, client_ip(), _now())
    return redirect(url_for("staff_broadcasts.show", broadcast_id=created.id, created=1), code=303)


def _state(p: bsvc.Progress) -> str:
    return p.state


def _progress_data(p: bsvc.Progress, now: datetime) -> dict:
    b = p.broadcast
    state = _state(p)
    handed = p.n("sent", "delivered", "failed", "unknown")  # provider calls made
    rate = None
    if b.started_at is not None and handed:
        end = b.finished_at if (b.finished_at and state == "finished") else now
        seconds = (end - b.started_at).total_seconds()
        rate = handed / seconds if seconds >= 1 else None
    total = max(1, b.recipients)
    # A cancelled broadcast is as far as it got: the messages it did not send are not "done".
    done = handed if state == "cancelled" else p.done
    return {
        "id": b.id, "state": state, "finished": state == "finished", "recipients": b.recipients,
        "counts": {s: p.counts.get(s, 0) for s in STATUSES}, "done": done, "open": p.open,
        "percent": round(100.0 * done / total, 1),
        "not_sent": p.not_sent, "with_provider": p.handed,
        "send_at": b.send_at.isoformat() if b.send_at else None,
        "rate": round(rate, 2) if rate is not None else None,
        "held_until": p.next_release.isoformat() if p.next_release else None,
        "started_at": b.started_at.isoformat() if b.started_at else None,
        "finished_at": b.finished_at.isoformat() if b.finished_at else None,
        "cancelled_at": b.cancelled_at.isoformat() if b.cancelled_at else None,
    }


@bp.get("/<int:broadcast_id>")
@requires(VIEWER)
def show(broadcast_id: int, confirm_cancel: bool = False):
    rt = runtime()
    p = bsvc.progress(rt, broadcast_id)
    if p is None:
        abort(404, f"no broadcast #{broadcast_id}")
    now = _now()
    data = _progress_data(p, now)
    texts = []
    b = p.broadcast
    for lang in rt.catalog.languages:
        template, text_lang = bsvc.template_for(b, lang)
        texts.append((lang, text_lang, template))
    state = data["state"]
    # What it did (opt-outs and replies in the 48 hours after) reads every recipient's row: shown once
    # messages have gone out and the page no longer reloads every few seconds.
    follow = bsvc.follow_up(rt, broadcast_id) if state in ("held", "finished", "cancelled") else None
    refresh = None if confirm_cancel or state in ("finished", "cancelled") else SLOW_REFRESH.get(state, REFRESH_SECONDS)
    return render_template("staff/broadcast.html", page="broadcasts", p=p, b=b, d=data, statuses=STATUSES,
                           refresh=refresh, confirm_cancel=confirm_cancel, follow=follow,
                           send_at_local=bsvc.local_time(b.send_at, rt.settings.timezone) if b.send_at else None,
                           worker=_worker_seen(now), channel_choices=channel_choices(),
                           created=request.args.get("created") == "1", texts=texts,
                           languages={"en": "English", "es": "Spanish"},
                           waiting_for=_ago(b.created_at, now))


@bp.get("/<int:broadcast_id>.json")
@requires(VIEWER)
def show_json(broadcast_id: int):
    p = bsvc.progress(runtime(), broadcast_id)
    if p is None:
        abort(404, f"no broadcast #{broadcast_id}")
    return jsonify(_progress_data(p, _now()))


@bp.get("/<int:broadcast_id>/cancel")
@requires(ORGANIZER)
def cancel_form(broadcast_id: int):
    """The progress page with the cancel confirmation, and without the reload that would clear it."""
    return show(broadcast_id, confirm_cancel=True)


@bp.post("/<int:broadcast_id>/cancel")
@requires(ORGANIZER)
def cancel(broadcast_id: int):
    """Stop a broadcast: what has not been handed to the provider is not sent. Asks for a tick first."""
    rt = runtime()
    if request.form.get("sure") != "1":
        abort(400, "tick \"Yes, stop this broadcast\" to cancel it")
    result = bsvc.cancel_broadcast(rt, broadcast_id, by=current_staff().email)
    if result is None:
        abort(404, f"no broadcast #{broadcast_id}")
    if not result.already and not result.finished:
        audit.audit(rt.db, current_staff(), audit.BROADCAST_CANCEL, str(broadcast_id),
                  f"{result.cancelled} messages not sent; {result.in_flight} already with the provider", client_ip(), _now())
    return redirect(url_for("staff_broadcasts.show", broadcast_id=broadcast_id), code=303)


@bp.route("/<int:broadcast_id>/edit", methods=["GET", "POST"])
@requires(ORGANIZER)
def edit(broadcast_id: int):
    """Change a scheduled broadcast (texts, filters, send time) until a worker starts it."""
    rt = runtime()
    p = bsvc.progress(rt, broadcast_id)
    if p is None:
        abort(404, f"no broadcast #{broadcast_id}")
    b = p.broadcast
    if request.method == "GET":
        values = {"campaign": b.campaign, "message_en": b.message_en, "message_es": b.message_es or "",
                  "channel": b.channel, "state": b.state or "", "zip_prefix": b.zip_prefix or "",
                  "signed_since": b.signed_since.strftime("%Y-%m-%d") if b.signed_since else "",
                  "send_at": _local_input(b.send_at), "whatsapp_template": b.window_template or ""}
        return _render_edit(b, values)
    values = _form_values()
    if not values["send_at"]:
        return _render_edit(b, values, "Choose when it goes (to send it now, cancel it and make a new one).", 400)
    try:
        req = _request_from(values)
        send_at = bsvc.update_scheduled(rt, broadcast_id, req)
    except plan.BroadcastError as exc:
        return _render_edit(b, values, str(exc), 400)
    audit.audit(rt.db, current_staff(), audit.BROADCAST_EDIT, str(broadcast_id),
                f"{req.campaign} scheduled for {send_at:%Y-%m-%d %H:%M} UTC", client_ip(), _now())
    return redirect(url_for("staff_broadcasts.show", broadcast_id=broadcast_id), code=303)


def _render_edit(b, values: dict, error: str | None = None, status: int = 200):
    rt = runtime()
    campaigns = [(c.slug, c.text("en").title, c.active) for c in rt.catalog.campaigns.values()]
    return render_template("staff/broadcast_edit.html", page="broadcasts", b=b, v=values, error=error,
                           campaigns=campaigns, channels=channel_choices(), min_send_at=_local_input(_now())), status
