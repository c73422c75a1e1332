"""The inbox under /staff/inbox: the conversations members started in their own words, one
conversation with the reply box, done/reopen, and the saved replies (admins manage them). The work is
in bots/inbox.py; this module translates HTTP to it and back."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError

from bots import audit, channels
from bots import inbox as svc
from storage.inbox import STATUSES, Filters
from storage.uow import UNAVAILABLE
from webhooks import runtime
from webhooks.auth import ADMIN, ORGANIZER, blueprint_requires, client_ip, csrf_error, current_staff, requires

bp = Blueprint("staff_inbox", __name__, url_prefix="/staff/inbox")
bp.register_error_handler(CSRFError, csrf_error)
blueprint_requires(bp, ORGANIZER)  # members' words are personal data: organizers and admins

LANGUAGES = {"en": "English", "es": "Spanish"}


@bp.app_context_processor
def _unread():
    """The navigation's unread count, for those who may open the inbox (one indexed count per page)."""
    def count() -> int:
        staff = current_staff()
        if staff is None or not staff.can(ORGANIZER):
            return 0
        try:
            return svc.unread(runtime())
        except UNAVAILABLE:  # a page that says the database did not answer must still show
            return 0
    return {"inbox_unread": count}


def _filters() -> Filters:
    args = request.args
    status = args.get("status", "open")
    rt = runtime()
    campaign = args.get("campaign") or None
    channel = args.get("channel") or None
    language = args.get("language") or None
    if status not in STATUSES or (campaign and campaign not in rt.catalog.campaigns) or \
            (channel and channel not in channels.names()) or (language and language not in rt.catalog.languages):
        abort(400, "unknown filter value")
    return Filters(status, campaign, channel, language)


def _cursor() -> tuple[datetime, int] | None:
    raw = request.args.get("before")
    if not raw:
        return None
    at, _, member_id = raw.rpartition("_")
    try:
        return datetime.fromisoformat(at), int(member_id)
    except ValueError:
        abort(400, "bad page cursor")


@bp.get("")
@bp.get("/")
def index():
    rt = runtime()
    filters = _filters()
    rows, names = svc.list_threads(rt, filters, _cursor())
    older = None
    if len(rows) == svc.PAGE:
        last = rows[-1]
        older = url_for(".index", **{k: v for k, v in request.args.items() if k != "before"},
                        before=f"{last.last_at.isoformat()}_{last.member_id}")
    return render_template("staff/inbox.html", page="inbox", rows=rows, names=names, f=filters, older=older,
                           campaigns=rt.catalog.campaigns, languages=LANGUAGES)


def _conversation(member_id: int, mark_read: bool = True):
    found = svc.conversation(runtime(), member_id, mark_read=mark_read)
    if found is None:
        abort(404, "no such conversation")
    return found


@bp.get("/<int:member_id>")
def thread(member_id: int):
    rt = runtime()
    found = _conversation(member_id)
    saved = svc.saved_replies(rt)
    chosen = request.args.get("saved", type=int)
    draft = next((s.text for s in saved if s.id == chosen), "")
    return render_template("staff/inbox_thread.html", page="inbox", c=found, m=found.member, t=found.thread,
                           saved=saved, draft=draft, refusal=svc.refusal(found.member, rt.now()), languages=LANGUAGES,
                           window_closes=svc.window_closes(found.member))


@bp.post("/<int:member_id>/reply")
def reply(member_id: int):
    rt = runtime()
    staff = current_staff()
    text = request.form.get("text", "")
    try:
        svc.reply(rt, member_id, text, staff.email, client_ip())
    except LookupError:
        abort(404, "no such member")
    except svc.NotRecorded as exc:
        return render_template("staff/error.html", title="Sent, but not recorded", message=str(exc)), 503
    except svc.ReplyRefused as exc:
        found = _conversation(member_id, mark_read=False)
        return render_template("staff/inbox_thread.html", page="inbox", c=found, m=found.member, t=found.thread,
                               saved=svc.saved_replies(rt), draft=text, error=str(exc),
                               refusal=svc.refusal(found.member, rt.now()), languages=LANGUAGES), 409 if exc.conflict else 422
    flash("Reply sent.")
    return redirect(url_for(".thread", member_id=member_id) + "#latest", code=303)


@bp.post("/<int:member_id>/status")
def status(member_id: int):
    done = request.form.get("status") == "done"
    if not svc.set_status(runtime(), member_id, done, current_staff().email, client_ip()):
        abort(404, "no such conversation")
    if done:
        flash("Marked done.")
        return redirect(url_for(".index"), code=303)
    flash("Reopened.")
    return redirect(url_for(".thread", member_id=member_id), code=303)


# --- saved replies (admins) -----------------------------------------------------------------------


@bp.route("/saved", methods=["GET", "POST"])
@requires(ADMIN)
def saved():
    rt = runtime()
    error, values = None, {"language": "en", "title": "", "text": ""}
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in values}
        try:
            made = svc.add_saved_reply(rt, values["language"], values["title"], values["text"], current_staff().email)
        except svc.ReplyRefused as exc:
            error = str(exc)
        else:
            audit.audit(rt.db, current_staff(), audit.SAVED_REPLY, str(made.id), f"added: {made.title}",
                        client_ip(), rt.now())
            flash(f"Saved reply “{made.title}” added.")
            return redirect(url_for(".saved"), code=303)
    body = render_template("staff/inbox_saved.html", page="inbox", saved=svc.saved_replies(rt), values=values,
                           error=error, languages=LANGUAGES)
    return (body, 422) if error else body


@bp.post("/saved/<int:reply_id>/delete")
@requires(ADMIN)
def delete_saved(reply_id: int):
    rt = runtime()
    if not svc.delete_saved_reply(rt, reply_id):
        abort(404, "no such saved reply")
    audit.audit(rt.db, current_staff(), audit.SAVED_REPLY, str(reply_id), "deleted", client_ip(), rt.now())
    flash("Saved reply deleted.")
    return redirect(url_for(".saved"), code=303)
