"""The staff API under /api/staff/: JSON in and out, for an organization's own scripts (a CRM sync,
a scheduler). ``Authorization: Bearer TOKEN`` (`firma staff token`); a token acts with its staff
member's role, declared per view as in the console (webhooks/auth.py: ``@requires``; a view that
declares nothing is for admins). 401 without a valid token, 403 for a role that may not, 404 for
what does not exist, 422 with the reasons for a body or a query that is wrong. Every write is in the
audit log under the token's label. No session cookie and no CSRF token here (webhooks/auth.py)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone

from flask import Blueprint, current_app, g, jsonify, request

from bots import api_tokens, audit
from bots import broadcast_plan as plan
from bots import broadcasts as bsvc
from bots import campaigns as csvc
from bots import channels
from bots import inbox as isvc
from bots.exports import signatures_page
from webhooks import runtime
from webhooks.auth import ORGANIZER, VIEWER, required_role, requires

bp = Blueprint("api_staff", __name__, url_prefix="/api/staff")

PAGE_DEFAULT, PAGE_MAX = 100, 1000


class Unprocessable(Exception):
    """A body or a query that is wrong: 422 with the reasons."""

    def __init__(self, *reasons: str):
        super().__init__("; ".join(reasons))
        self.reasons = list(reasons)


@bp.errorhandler(Unprocessable)
def _unprocessable(exc: Unprocessable):
    return jsonify(error=exc.reasons[0] if len(exc.reasons) == 1 else "the request has problems",
                   problems=exc.reasons), 422


@bp.before_request
def _authenticate():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    user = None
    if scheme.lower() == "bearer" and token.strip():
        rt = runtime()
        user = api_tokens.token_user(rt.db, token.strip(), rt.now())
    if user is None:
        why = "a valid API token is needed: Authorization: Bearer TOKEN (firma staff token EMAIL)" if not header \
            else "this API token is not valid (unknown, revoked, or its login is disabled)"
        return jsonify(error=why), 401, {"WWW-Authenticate": 'Bearer realm="firma"'}
    g.api_user = user
    if request.endpoint is None:
        return None  # no such route: its 404
    needed = required_role(current_app._get_current_object(), request.endpoint)
    if not user.staff.can(needed):
        return jsonify(error=f"this needs the {needed} role; this token's login is {user.staff.role}"), 403
    return None


def _user() -> api_tokens.TokenUser:
    return g.api_user


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise Unprocessable("the body must be a JSON object (Content-Type: application/json)")
    return data


def _audit(action: str, target: str | None, detail: str | None) -> None:
    rt = runtime()
    audit.audit_as(rt.db, _user().who, action, target, detail, rt.now(), ip=request.remote_addr)


def _not_found(what: str):
    return jsonify(error=what), 404


# --- campaigns --------------------------------------------------------------------------------------


@bp.get("/campaigns")
@requires(VIEWER)
def campaigns():
    return jsonify(csvc.list_campaigns(runtime()))


def _campaign_change(change: csvc.Change, status: int):
    if change.problems:
        raise Unprocessable(*[str(p) for p in change.problems])
    return jsonify(change.campaign), status


@bp.post("/campaigns")
def create_campaign():
    data = _body()
    if not isinstance(data.get("slug"), str) or not data["slug"].strip():
        raise Unprocessable("slug is required: the campaign's short name in links, like end-scomm")
    change = csvc.create_campaign(runtime(), data, csvc.Actor(_user().who, request.remote_addr))
    return _campaign_change(change, 201)


@bp.put("/campaigns/<slug>")
def replace_campaign(slug: str):
    data = dict(_body())
    if slug not in csvc.current(runtime()).campaigns:
        return _not_found(f"no campaign {slug!r}")
    if data.get("slug", slug) != slug:
        raise Unprocessable(f"the slug cannot change (the body says {data.get('slug')!r}, the path {slug!r})")
    data["slug"] = slug
    try:
        change = csvc.replace_campaign(runtime(), slug, data, csvc.Actor(_user().who, request.remote_addr))
    except csvc.UnknownCampaign:
        return _not_found(f"no campaign {slug!r}")
    return _campaign_change(change, 200)


# --- signatures -------------------------------------------------------------------------------------


@bp.get("/signatures")
@requires(ORGANIZER)
def signatures():
    rt = runtime()
    slug = request.args.get("campaign", "").strip()
    problems = []
    if not slug:
        problems.append("campaign is required: ?campaign=SLUG")
    after = request.args.get("after", "").strip()
    if after and not (after.isdigit() and len(after) < 19):
        problems.append(f"after must be the `next` of a previous page, not {after!r}")
    limit = request.args.get("limit", str(PAGE_DEFAULT)).strip()
    if not (limit.isdigit() and 1 <= int(limit) <= PAGE_MAX):
        problems.append(f"limit must be a number from 1 to {PAGE_MAX}, not {limit!r}")
    if problems:
        raise Unprocessable(*problems)
    if slug not in csvc.current(rt).campaigns:
        return _not_found(f"no campaign {slug!r}")
    rows, nxt = signatures_page(rt, slug, int(after or 0), int(limit), include_contact=_user().staff.sees_contacts)
    return jsonify(signatures=rows, next=str(nxt) if nxt is not None else None)


# --- broadcasts -------------------------------------------------------------------------------------

BROADCAST_FIELDS = ("campaign", "message", "message_es", "channel", "state", "zip_prefix", "signed_since", "send_at",
                    "whatsapp_template")


def _text(data: dict, key: str, problems: list[str]) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        problems.append(f"{key} must be a string")
        return None
    return value.strip() or None


def _since(raw: str | None, problems: list[str]) -> datetime | None:
    if raw is None:
        return None
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time(0), tzinfo=timezone.utc)
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except ValueError:
        problems.append(f"signed_since must be a date like 2026-11-01 (UTC), not {raw!r}")
        return None


def _broadcast_request(data: dict) -> bsvc.BroadcastRequest:
    problems = [f"unknown field {k!r}; the fields are {', '.join(BROADCAST_FIELDS)}"
                for k in data if k not in BROADCAST_FIELDS]
    values = {k: _text(data, k, problems) for k in BROADCAST_FIELDS}
    if not values["campaign"]:
        problems.append("campaign is required")
    if not values["message"]:
        problems.append("message is required")
    since = _since(values["signed_since"], problems)
    send_at = None
    if values["send_at"]:
        try:
            send_at = bsvc.parse_send_at(values["send_at"], runtime().settings.timezone, what="send_at")
        except plan.BroadcastError as exc:
            problems.append(str(exc))
    if problems:
        raise Unprocessable(*problems)
    return bsvc.BroadcastRequest(values["campaign"], values["message"], values["message_es"],
                                 (values["channel"] or bsvc.ALL).lower(), values["state"], values["zip_prefix"], since,
                                 created_by=_user().who, wording="api", send_at=send_at,
                                 window_template=values["whatsapp_template"])


@bp.post("/broadcasts")
@requires(ORGANIZER)
def create_broadcast():
    rt = runtime()
    req = _broadcast_request(_body())
    try:
        pv = bsvc.preview(rt, req)
        if pv.total == 0 and req.send_at is None:  # a scheduled one goes to the signers of its time
            raise Unprocessable("nobody matches these filters: there is nobody to send to")
        created = bsvc.create_broadcast(rt, req)
    except plan.BroadcastError as exc:
        raise Unprocessable(str(exc)) from None
    to = ", ".join(f"{n} {ch}" for ch, n in sorted(pv.recipients.items()) if n)
    if created.send_at is not None:
        _audit(audit.BROADCAST, str(created.id), f"{req.campaign} scheduled for {created.send_at:%Y-%m-%d %H:%M} "
               f"UTC ({to or 'nobody'} now)")
    else:
        _audit(audit.BROADCAST, str(created.id), f"{req.campaign} to {created.recipients} recipients ({to})")
    return jsonify(id=created.id, recipients=pv.recipients, **bsvc.follow_up(rt, created.id)), 201


@bp.get("/broadcasts/<int:broadcast_id>")
@requires(VIEWER)
def broadcast(broadcast_id: int):
    info = bsvc.follow_up(runtime(), broadcast_id)
    if info is None:
        return _not_found(f"no broadcast #{broadcast_id}")
    return jsonify(id=broadcast_id, **info)


@bp.post("/broadcasts/<int:broadcast_id>/cancel")
@requires(ORGANIZER)
def cancel_broadcast(broadcast_id: int):
    rt = runtime()
    result = bsvc.cancel_broadcast(rt, broadcast_id, by=_user().who)
    if result is None:
        return _not_found(f"no broadcast #{broadcast_id}")
    if not result.already and not result.finished:
        _audit(audit.BROADCAST_CANCEL, str(broadcast_id),
               f"{result.cancelled} messages not sent; {result.in_flight} already with the provider")
    return jsonify(id=broadcast_id, **bsvc.follow_up(rt, broadcast_id))


# --- the inbox --------------------------------------------------------------------------------------


def _inbox_filters():
    """status (open | done), campaign, channel, language, limit and before (a page cursor) from the query."""
    from storage.inbox import STATUSES, Filters

    rt = runtime()
    args, problems = request.args, []
    status = args.get("status", "open")
    if status not in STATUSES:
        problems.append(f"status must be open or done, not {status!r}")
    campaign, channel, language = (args.get(k) or None for k in ("campaign", "channel", "language"))
    if campaign and campaign not in csvc.current(rt).campaigns:
        problems.append(f"no campaign {campaign!r}")
    if channel and channel not in channels.names():
        problems.append(f"channel must be one of {', '.join(channels.names())}")
    if language and language not in rt.catalog.languages:
        problems.append(f"language must be one of {', '.join(rt.catalog.languages)}")
    limit = args.get("limit", str(PAGE_DEFAULT)).strip()
    if not (limit.isdigit() and 1 <= int(limit) <= PAGE_MAX):
        problems.append(f"limit must be a number from 1 to {PAGE_MAX}, not {limit!r}")
    before = None
    if args.get("before"):
        at, _, member = args["before"].rpartition("_")
        try:
            before = (datetime.fromisoformat(at.replace("Z", "+00:00")), isvc.member_of(member))
        except ValueError:
            before = None
        if before is None or before[1] is None or before[0].tzinfo is None:
            problems.append("before must be the cursor of a previous page (its Link header)")
    if problems:
        raise Unprocessable(*problems)
    return Filters(status, campaign, channel, language), int(limit), before


@bp.get("/inbox")
@requires(ORGANIZER)
def inbox():
    """Conversations newest first, as a list; a full page links the next one (Link: <...>; rel="next")."""
    filters, limit, before = _inbox_filters()
    rows, _names = isvc.list_threads(runtime(), filters, before, limit)
    response = jsonify([isvc.thread_json(r) for r in rows])
    if len(rows) == limit:
        last = rows[-1]
        cursor = f"{isvc.thread_json(last)['last_at']}_{isvc.opaque(last.member_id)}"
        args = {k: v for k, v in request.args.items() if k != "before"}
        from urllib.parse import urlencode

        response.headers["Link"] = f'<{request.path}?{urlencode({**args, "before": cursor})}>; rel="next"'
    return response


@bp.get("/inbox/<member>")
@requires(ORGANIZER)
def inbox_thread(member: str):
    member_id = isvc.member_of(member)
    found = isvc.conversation(runtime(), member_id, mark_read=False) if member_id is not None else None
    if found is None:
        return _not_found(f"no conversation {member!r}")
    return jsonify(isvc.messages_json(found))


@bp.post("/inbox/<member>/reply")
@requires(ORGANIZER)
def inbox_reply(member: str):
    member_id = isvc.member_of(member)
    if member_id is None:
        return _not_found(f"no conversation {member!r}")
    data = _body()
    unknown = [k for k in data if k != "text"]
    if unknown or not isinstance(data.get("text"), str):
        raise Unprocessable(*([f"unknown field {k!r}; the only field is text" for k in unknown]
                              or ["text is required: the reply, as a string"]))
    try:
        body = isvc.reply(runtime(), member_id, data["text"], _user().who, request.remote_addr)
    except LookupError:
        return _not_found(f"no conversation {member!r}")
    except isvc.NotRecorded as exc:  # sent: 202, so that a script does not send it again
        return jsonify(member=member, text=exc.body, recorded=False, warning=str(exc)), 202
    except isvc.ReplyRefused as exc:
        if exc.conflict:
            return jsonify(error=str(exc)), 409
        raise Unprocessable(str(exc)) from None
    return jsonify(member=member, text=body, recorded=True), 202


@bp.post("/inbox/<member>/done")
@requires(ORGANIZER)
def inbox_done(member: str):
    member_id = isvc.member_of(member)
    if member_id is None or not isvc.set_status(runtime(), member_id, True, _user().who, request.remote_addr):
        return _not_found(f"no conversation {member!r}")
    return "", 204
