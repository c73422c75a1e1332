"""Broadcast service functions, shared by the CLI and the staff console: preview, create, progress,
list, and the Twilio status callback. Creating a broadcast only writes rows; workers send them."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from bots import broadcast_plan as plan
from bots import channels
from bots.broadcast_plan import BroadcastError
from bots.runtime import Runtime
from config.campaigns import Catalog
from storage import broadcasts as sql
from storage import staff_queries as staff_q
from storage.models import Broadcast
from storage.uow import UnitOfWork, unavailable

log = logging.getLogger(__name__)

__all__ = ["BroadcastError", "BroadcastRequest", "Preview", "preview", "create_broadcast", "progress",
           "list_broadcasts", "record_status", "stop_notice"]

ALL = "all"  # a broadcast's channel filter: every channel, or one channel's name
_STATE = re.compile(r"[A-Z]{2}")
_ZIP_PREFIX = re.compile(r"[0-9]{1,5}")
_CONTENT_SID = re.compile(r"HX[0-9a-f]{32}")
# How problems name the two texts, for whoever asked: the CLI's options, the console's fields, the API's keys.
FIELD_NAMES = {"cli": ("--message", "--message-es", "--whatsapp-template"),
               "console": ("the English text", "the Spanish text", "the WhatsApp template"),
               "api": ("message", "message_es", "whatsapp_template")}


@dataclass(frozen=True)
class BroadcastRequest:
    campaign: str
    message_en: str
    message_es: str | None = None
    channel: str = "all"
    state: str | None = None
    zip_prefix: str | None = None
    signed_since: datetime | None = None
    created_by: str = "cli"
    # An approved template (Twilio Content SID, "HX...") for members outside a channel's reply window
    # (WhatsApp: 24 hours after their last message); its variable 1 is the member's first name.
    window_template: str | None = None
    wording: str = "cli"  # a key of FIELD_NAMES: how problems name the texts
    send_at: datetime | None = None  # later: the broadcast waits until then (a worker queues it)

    def filters(self) -> sql.Filters:
        return sql.Filters(self.campaign, self.channel, self.state, self.zip_prefix, self.signed_since)


def validate(req: BroadcastRequest, catalog: Catalog) -> BroadcastRequest:
    """The request with its texts and filters checked and normalised; BroadcastError says what is wrong."""
    if req.campaign not in catalog.campaigns:
        raise BroadcastError(f"no campaign {req.campaign!r}; campaigns: {', '.join(catalog.campaigns)}")
    choices = (ALL, *channels.names())
    if req.channel not in choices:
        raise BroadcastError(f"channel must be one of {', '.join(choices)}, not {req.channel!r}")
    state = (req.state or "").strip().upper() or None
    if state and not _STATE.fullmatch(state):
        raise BroadcastError(f"state must be a two-letter code like CA, not {req.state!r}")
    zp = (req.zip_prefix or "").strip() or None
    if zp and not _ZIP_PREFIX.fullmatch(zp):
        raise BroadcastError(f"ZIP prefix must be 1 to 5 digits, not {req.zip_prefix!r}")
    if req.signed_since is not None and req.signed_since.tzinfo is None:
        raise BroadcastError("signed-since needs a time zone (UTC)")
    if req.send_at is not None and req.send_at.tzinfo is None:
        raise BroadcastError("the send time needs a time zone")
    en_name, es_name, template_name = FIELD_NAMES.get(req.wording, FIELD_NAMES["cli"])
    en = plan.check_template(req.message_en, en_name)
    es = plan.check_template(req.message_es, es_name) if (req.message_es or "").strip() else None
    template = (req.window_template or "").strip() or None
    if template and not _CONTENT_SID.fullmatch(template):
        raise BroadcastError(f"{template_name} must be an approved template's Content SID (HX and 32 hex "
                             f"digits), not {template[:40]!r}")
    return replace(req, message_en=en, message_es=es, state=state, zip_prefix=zp, created_by=req.created_by[:200],
                   window_template=template)


def stop_notice(catalog: Catalog, campaign: str, language: str) -> str | None:
    """The "Reply STOP to opt out." a campaign's broadcasts carry (channels that need it add it)."""
    if not catalog.campaigns[campaign].broadcast_stop_notice:
        return None
    return catalog.template("broadcast_stop_notice", language if language in catalog.languages else "en")


def targets(req_or_broadcast) -> list[channels.Channel]:
    """The channels a broadcast reaches (its filter: all, or one)."""
    return [c for c in channels.channels() if req_or_broadcast.channel in (ALL, c.name)]


def template_for(broadcast_or_req, language: str) -> tuple[str, str]:
    """(the text a member of ``language`` gets, the language it is in): English when there is no
    translation, and then the STOP notice is in English too."""
    if language == "es" and broadcast_or_req.message_es:
        return broadcast_or_req.message_es, "es"
    return broadcast_or_req.message_en, "en"


@dataclass
class Preview:
    request: BroadcastRequest
    recipients: dict[str, int]  # channel -> recipients
    by_language: dict[tuple[str, str], int]  # (channel, language) -> recipients
    texts: list[plan.TextCheck]
    segments: int  # estimated segments in all on segmented channels (the sample's segments x recipients)
    warnings: list[str] = field(default_factory=list)
    # channel -> recipients outside its reply window now (WhatsApp: no message from them in 24 hours):
    # sent the template if there is one, else not sent to
    outside_window: dict[str, int] = field(default_factory=dict)

    def outside_lines(self) -> list[str]:
        """What staff read about them, one line per channel with a reply window."""
        lines = []
        for name, n in self.outside_window.items():
            label = channels.label(name)
            what = (f"get the approved template {self.request.window_template}" if self.request.window_template
                    else "are not sent to (no template)")
            lines.append(f"{n} outside the {label} window (no message from them in the last "
                         f"{_hours(channels.get(name).reply_window)} hours): they {what}")
        return lines

    @property
    def total(self) -> int:
        return sum(self.recipients.values())


def _hours(window: timedelta) -> int:
    return int(window.total_seconds() // 3600)


def windowed(req_or_broadcast) -> list[channels.Channel]:
    """The channels a broadcast reaches that take free text only within a reply window."""
    return [c for c in targets(req_or_broadcast) if getattr(c, "reply_window", None)]


def preview(rt: Runtime, req: BroadcastRequest) -> Preview:
    """Who would get what, and what the SMS would cost, without writing anything."""
    req = validate(req, rt.catalog)
    now = rt.now()
    with rt.db.reader() as uow:
        counts = sql.count_recipients(uow.session, req.filters())
        outside = {c.name: sql.count_outside_window(uow.session, req.filters(), c.name, now - c.reply_window)
                   for c in windowed(req) if counts_for(counts, c.name)}
    recipients: dict[str, int] = {}
    for (ch, _lang), n in counts.items():
        recipients[ch] = recipients.get(ch, 0) + n
    texts, segments, warnings = [], 0, []
    for channel in targets(req):
        for lang in rt.catalog.languages:
            template, text_lang = template_for(req, lang)
            check = channel.check_broadcast(template, lang, stop_notice(rt.catalog, req.campaign, text_lang))
            texts.append(check)
            if channel.segmented:
                segments += check.segments * counts.get((channel.name, lang), 0)
    spanish = sum(n for (ch, lang), n in counts.items() if lang == "es")
    if spanish and not req.message_es:
        no_spanish = FIELD_NAMES.get(req.wording, FIELD_NAMES["cli"])[1].removeprefix("the ")
        warnings.append(f"{spanish} Spanish-speaking recipients will get the English text (no {no_spanish})")
    other = sum(n for (ch, lang), n in counts.items() if lang not in rt.catalog.languages)
    if other:
        warnings.append(f"{other} recipients with another language will get the English text")
    preview = Preview(req, recipients, counts, texts, segments, warnings,
                      outside_window={k: n for k, n in outside.items() if n})
    warnings.extend(preview.outside_lines())
    return preview


def counts_for(counts: dict[tuple[str, str], int], channel: str) -> int:
    return sum(n for (ch, _lang), n in counts.items() if ch == channel)


def parse_send_at(text: str, zone: str, what: str = "--at") -> datetime:
    """A send time in ISO 8601 (2026-12-05T10:00, a space instead of the T, or with an offset); without
    an offset it is in ``zone`` (FIRMA_TIMEZONE). Returned in UTC. BroadcastError when it is not one."""
    raw = (text or "").strip()
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BroadcastError(f"{what} must be a date and time like 2026-12-05T10:00, not {raw!r}") from None
    if len(raw) <= 10:  # a date alone: which hour is meant is not for us to guess
        raise BroadcastError(f"{what} needs a time too, like {raw}T10:00")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=ZoneInfo(zone))
    return dt.astimezone(timezone.utc)


def local_time(dt: datetime | None, zone: str) -> str:
    """A time as the organization reads it: 2026-12-05 10:00 EST."""
    if dt is None:
        return "-"
    return dt.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


@dataclass(frozen=True)
class Created:
    id: int
    recipients: int
    held: int
    held_until: datetime | None
    repeated: bool = False  # the same confirmation was sent before: this is that broadcast, nothing new
    send_at: datetime | None = None  # scheduled for then: no delivery is written yet


def _check_texts(rt: Runtime, req: BroadcastRequest) -> None:
    """Refuse texts that cannot be sent, before anything is written."""
    for lang in rt.catalog.languages:
        for channel in targets(req):
            template, text_lang = template_for(req, lang)
            channel.check_broadcast(template, lang, stop_notice(rt.catalog, req.campaign, text_lang))


def _scheduled_for(req: BroadcastRequest, now: datetime) -> datetime | None:
    """The request's send time when it is still to come; None to send now. A time already past is
    refused: sending a broadcast meant for an hour ago without asking would surprise its author."""
    if req.send_at is None:
        return None
    if req.send_at <= now - timedelta(minutes=1):
        raise BroadcastError(f"the send time {req.send_at:%Y-%m-%d %H:%M} UTC has passed")
    return req.send_at if req.send_at > now else None


def create_broadcast(rt: Runtime, req: BroadcastRequest, send_token: str | None = None) -> Created:
    """Write the broadcast and its deliveries in one transaction (set-wise), holding SMS whose
    recipients are in quiet hours right now. Sends nothing. With a send time to come, only the
    broadcast is written: a worker writes its deliveries when the time comes (release_due).

    ``send_token``: the staff confirmation's one-time token. Submitted again (a double click, a reload,
    two tabs), even at the same moment, it returns the broadcast it made (``repeated``) and writes
    nothing: the unique token makes the second writer wait for the first and then find its row."""
    req = validate(req, rt.catalog)
    _check_texts(rt, req)
    now = rt.now()
    send_at = _scheduled_for(req, now)
    with rt.db.uow() as uow:
        s = uow.session
        b = Broadcast(campaign=req.campaign, message_en=req.message_en, message_es=req.message_es,
                      channel=req.channel, state=req.state, zip_prefix=req.zip_prefix,
                      signed_since=req.signed_since, created_by=req.created_by, created_at=now,
                      recipients=0, timezones="", send_token=send_token, window_template=req.window_template,
                      send_at=send_at)
        if (sent := sql.add_unless_sent(s, b)) is not None:  # this confirmation made it, maybe a moment ago
            return Created(sent.id, sent.recipients, 0, None, repeated=True, send_at=sent.send_at)
        if send_at is not None:
            uow.commit()
            return Created(b.id, 0, 0, None, send_at=send_at)
        held, until = _queue(rt, s, b, now)
        uow.commit()
        return Created(b.id, b.recipients, held, until)


def _queue(rt: Runtime, s, b: Broadcast, now: datetime) -> tuple[int, datetime | None]:
    """Write the broadcast's deliveries for its signers of this moment (one INSERT ... SELECT), give
    phone numbers without a ZIP time zone their area code's, and hold the messages of channels with
    quiet hours whose recipients are in their local night. (held, until when)"""
    b.recipients = sql.materialise(s, b, sql.Filters(b.campaign, b.channel, b.state, b.zip_prefix, b.signed_since),
                                   now)
    b.queued_at = now
    phones = [c.name for c in channels.channels() if c.phone_numbers]
    for ac in sql.area_codes_without_zone(s, b.id, phones):
        zone = rt.zips.timezone_for_area_code(ac)
        if zone:
            sql.set_zone_for_area_code(s, b.id, ac, zone, phones)
    quiet = [c.name for c in channels.channels() if c.quiet_hours]
    zones = sql.zones(s, b.id, quiet)
    b.timezones = "\n".join(sorted(z or "" for z in zones))
    held, until = 0, None
    for zone in zones:
        opens = plan.quiet_until(zone, now, rt.settings.quiet_hours)
        if opens is not None:
            n = sql.hold_zone(s, b.id, zone, opens, quiet)
            if n:
                held += n
                until = opens if until is None else min(until, opens)
    return held, until


def release_due(rt: Runtime, limit: int = 10) -> list[int]:
    """Queue the scheduled broadcasts whose time has come (a worker calls this): each in its own
    transaction, its row locked and skipped by other workers (PostgreSQL: SKIP LOCKED). A broadcast
    cancelled or edited meanwhile is seen as it now is. Returns the ids queued."""
    done: list[int] = []
    while len(done) < limit:
        now = rt.now()
        with rt.db.uow() as uow:
            b = sql.claim_due_scheduled(uow.session, now)
            if b is None:
                uow.rollback()
                break
            _queue(rt, uow.session, b, now)
            uow.commit()
            done.append(b.id)
    return done


def update_scheduled(rt: Runtime, broadcast_id: int, req: BroadcastRequest) -> datetime:
    """Change a scheduled broadcast (texts, filters, template, send time) while it has not started. Returns its
    send time. BroadcastError when it has started, was cancelled, or the change is not valid;
    LookupError when there is no such broadcast."""
    req = validate(req, rt.catalog)
    _check_texts(rt, req)
    now = rt.now()
    if req.send_at is None:
        raise BroadcastError("a send time is needed")
    send_at = _scheduled_for(req, now) or now
    with rt.db.uow() as uow:
        b = sql.lock_broadcast(uow.session, broadcast_id)
        if b is None:
            raise LookupError(broadcast_id)
        if b.cancelled_at is not None:
            raise BroadcastError(f"broadcast #{broadcast_id} was cancelled")
        if b.queued_at is not None:
            raise BroadcastError(f"broadcast #{broadcast_id} has started: it cannot be changed any more")
        b.campaign, b.message_en, b.message_es, b.channel = req.campaign, req.message_en, req.message_es, req.channel
        b.state, b.zip_prefix, b.signed_since, b.send_at = req.state, req.zip_prefix, req.signed_since, send_at
        b.window_template = req.window_template
        uow.commit()
        return send_at


def list_scheduled(rt: Runtime) -> list[Broadcast]:
    """Broadcasts waiting for their time, soonest first."""
    with rt.db.reader() as uow:
        rows = sql.scheduled(uow.session)
        uow.session.expunge_all()
        return rows


def request_of(b: Broadcast, **changes) -> BroadcastRequest:
    """A broadcast's texts and filters as a request (to edit a scheduled one)."""
    req = BroadcastRequest(b.campaign, b.message_en, b.message_es, b.channel, b.state, b.zip_prefix, b.signed_since,
                           created_by=b.created_by, send_at=b.send_at)
    return replace(req, **changes)


@dataclass(frozen=True)
class Cancelled:
    id: int
    cancelled: int  # messages that will not go out: queued, held, or claimed by a worker but not handed over
    in_flight: int  # messages already handed to the provider, which finish as they would
    already: bool = False  # it was cancelled before (nothing changed now)
    finished: bool = False  # every message had gone out already: nothing to cancel


def cancel_broadcast(rt: Runtime, broadcast_id: int, by: str) -> Cancelled | None:
    """Stop a broadcast: every message not yet handed to the provider (queued, held, or claimed by a
    worker and waiting for its rate slot) is skipped as `cancelled`, and a worker skips any that comes
    back later (a retry). Messages already with the provider finish. None when there is no such
    broadcast. Cancelling twice changes nothing the second time.

    The deliveries are updated before the broadcast row is locked, the order a worker takes them in
    (it claims deliveries, then marks their broadcast started), so the two never deadlock."""
    now = rt.now()
    with rt.db.uow() as uow:
        s = uow.session
        n = sql.cancel_open(s, broadcast_id, now)
        b = sql.lock_broadcast(s, broadcast_id)
        if b is None:
            return None
        already = b.cancelled_at is not None
        if b.queued_at is None:  # scheduled, not started: nothing was written, nothing will be
            if not already:
                b.cancelled_at, b.cancelled_by, b.finished_at = now, by, now
            uow.commit()
            return Cancelled(broadcast_id, 0, 0, already=already)
        in_flight = sql.status_counts(s, broadcast_id).get("sending", 0)  # what is left: handed over
        if not already and not n and not in_flight:
            return Cancelled(broadcast_id, 0, 0, finished=True)  # everything had gone out: nothing to stop
        if not already:
            b.cancelled_at, b.cancelled_by = now, by
        if not in_flight and b.finished_at is None:
            b.finished_at = now  # else the worker finishes it when the last one in flight is done
        uow.commit()
        return Cancelled(broadcast_id, n, in_flight, already=already)


def sent_with_token(rt: Runtime, send_token: str) -> int | None:
    """The id of the broadcast a staff confirmation (its one-time token) already sent, if any."""
    with rt.db.reader() as uow:
        b = sql.broadcast_by_token(uow.session, send_token)
        return b.id if b is not None else None


def last_worker_send(rt: Runtime) -> datetime | None:
    """When a broadcast worker last sent (its latest reserved send slot), or None if none ever did.
    Workers keep no heartbeat, so an idle worker leaves no trace: this says when one last worked."""
    with rt.db.reader() as uow:
        slot = staff_q.last_send_slot(uow.session)
    return datetime.fromtimestamp(slot, timezone.utc) if slot else None


DUPLICATE_WINDOW = timedelta(minutes=10)


def recent_duplicate(rt: Runtime, req, now: datetime) -> tuple[int, datetime] | None:
    """(id, created_at) of a broadcast with the same texts and filters that the same sender made in
    the last DUPLICATE_WINDOW (a double submit or a resubmitted form), else None. ``req`` is a
    validated BroadcastRequest."""
    with rt.db.reader() as uow:
        b = staff_q.recent_same_broadcast(uow.session, created_by=req.created_by, campaign=req.campaign,
                                    message_en=req.message_en, message_es=req.message_es, channel=req.channel,
                                    state=req.state, zip_prefix=req.zip_prefix, signed_since=req.signed_since,
                                    since=now - DUPLICATE_WINDOW)
        return (b.id, b.created_at) if b is not None else None


@dataclass(frozen=True)
class Progress:
    broadcast: Broadcast
    counts: dict[str, int]
    next_release: datetime | None
    handed: int = 0  # of the `sending`: handed to the provider (the rest wait for their rate slot)

    def n(self, *statuses: str) -> int:
        return sum(self.counts.get(s, 0) for s in statuses)

    @property
    def not_sent(self) -> int:
        """Messages not handed to the provider yet: queued, held, or claimed by a worker (a cancel stops them)."""
        return self.n("pending", "held", "sending") - self.handed

    @property
    def done(self) -> int:
        return self.n("sent", "delivered", "failed", "skipped", "unknown", OUTSIDE_WINDOW)

    @property
    def open(self) -> int:
        return self.n("pending", "held", "sending")

    @property
    def state(self) -> str:
        """cancelled, scheduled (its time has not come), finished, held (only quiet-hours SMS left),
        waiting (for a worker) or sending."""
        b = self.broadcast
        if b.cancelled_at is not None:
            return "cancelled"
        if b.queued_at is None:
            return "scheduled"
        if b.recipients == 0 or (self.open == 0 and self.done > 0):
            return "finished"
        if self.open and self.n("held") == self.open:
            return "held"
        if b.started_at is None:
            return "waiting"
        return "sending"


def progress(rt: Runtime, broadcast_id: int) -> Progress | None:
    with rt.db.reader() as uow:
        b = uow.session.get(Broadcast, broadcast_id)
        if b is None:
            return None
        counts, handed = sql.counts_and_handed(uow.session, b.id)
        result = Progress(b, counts, sql.next_release(uow.session, b.id), handed)
        uow.session.expunge(b)  # a plain value for the caller, not expired by the unit of work's rollback
        return result


def list_broadcasts(rt: Runtime, limit: int = 20) -> list[Progress]:
    with rt.db.reader() as uow:
        ids = sql.recent_ids(uow.session, limit)
    return [p for p in (progress(rt, i) for i in ids) if p is not None]


# --- an opt-out and the messages on their way --------------------------------------------------

# How long an opt-out's answer waits for a message already handed to the provider: the provider's
# answer and the worker's next write of outcomes take well under a second; this bound only matters
# when the provider hangs (the senders give up after 15 s) or the worker died mid-call. It stays under
# the 15 s Twilio waits for a webhook's answer.
IN_FLIGHT_PATIENCE = 10.0
IN_FLIGHT_POLL = 0.02


def wait_in_flight(uow: UnitOfWork, member_id: int, now: datetime, patience: float = IN_FLIGHT_PATIENCE) -> bool:
    """Called after an opt-out has committed, before it is answered: wait until no broadcast message to
    the member is still on its way to the provider. No worker hands one over after that commit
    (storage.broadcasts.hand_over), and one handed over before it has reached the provider when this
    returns, so nothing reaches the provider after the confirmation. Usually one indexed read that
    finds nothing. False when it gave up (the database unavailable, or ``patience`` spent)."""
    deadline = time.monotonic() + patience
    try:
        while True:
            with uow:
                if not sql.in_flight_to(uow.session, member_id, now):
                    return True
            if time.monotonic() >= deadline:
                log.warning("an opt-out is answered while a broadcast message to member %s is still with a "
                            "worker after %.0f s (a provider that hangs, or a worker that died mid-call)",
                            member_id, patience)
                return False
            time.sleep(IN_FLIGHT_POLL)
    except Exception as exc:
        if not unavailable(exc):
            raise
        log.warning("an opt-out is answered without checking for messages in flight: the database is "
                    "unavailable (%s)", exc.__class__.__name__)
        return False
FOLLOW_UP_COUNTS = ("pending", "held", "sending", "sent", "delivered", "failed", "cancelled", "skipped", "unknown",
                    "outside_window")  # outside_window: a reply window had closed and there was no template


def status_of(b: Broadcast, counts: dict[str, int]) -> str:
    """scheduled (no worker has queued it yet), sending, finished or cancelled."""
    if b.cancelled_at is not None:
        return "cancelled"
    if b.queued_at is None:
        return "scheduled"
    if any(counts.get(s, 0) for s in ("pending", "held", "sending")):
        return "sending"
    return "finished"


def follow_up(rt: Runtime, broadcast_id: int) -> dict | None:
    """A broadcast's status, send time, deliveries by outcome, and the opt-outs and replies of its
    recipients in the 48 hours after their message (storage/broadcast_follow_up.py). None when there
    is no such broadcast."""
    from storage import broadcast_follow_up as fu

    with rt.db.reader() as uow:
        s = uow.session
        b = s.get(Broadcast, broadcast_id)
        if b is None:
            return None
        counts = fu.outcome_counts(s, broadcast_id)
        until = fu.window_end(s, broadcast_id)
        opt_outs = fu.opt_outs_after(s, broadcast_id, until) if until else 0
        replies = fu.replies_after(s, broadcast_id, until) if until else 0
        send_at = b.send_at
        return {"status": status_of(b, counts), "campaign": b.campaign,
                "send_at": send_at.isoformat() if send_at else None,
                "recipients_total": b.recipients,
                "counts": {k: counts.get(k, 0) for k in FOLLOW_UP_COUNTS},
                "opt_outs_after": opt_outs, "replies_after": replies,
                "window_ends_at": until.isoformat() if until else None}


# --- Twilio status callbacks ---------------------------------------------------------------------

UNSUBSCRIBED = "21610"
OUTSIDE_WINDOW = "outside_window"  # a delivery's status: refused outside the reply window, no template


def record_status(uow: UnitOfWork, *, message_sid: str, status: str, error_code: str | None, to: str | None,
                  channel: str, now: datetime, effect: str | None = None) -> str | None:
    """A Twilio status callback: move the delivery to delivered or failed, and opt the member out on
    21610. ``effect`` is the error code's meaning on that channel (broadcast_plan's kinds): a member
    unreachable there, or a message refused outside the channel's reply window (counted as such).
    Returns the delivery's new status (None when nothing moved, or the message is not one of ours). Twilio may call back before the worker has written the message's SID (before its answer to
    the send reached the worker, or while the database was briefly unavailable to the worker): a final
    status is then kept and applied when the SID is written (storage.broadcasts.EarlyStatus)."""
    status = (status or "").lower()
    early = False
    with uow:
        s = uow.session
        d = sql.delivery_by_provider_id(s, message_sid)
        new = None
        if d is not None:
            new = sql.move_delivery(d, status, error_code, now)
            if new == "failed" and effect == plan.OUTSIDE_WINDOW:
                d.status = new = OUTSIDE_WINDOW
            if new == "failed" and effect == plan.UNREACHABLE:
                sql.mark_unreachable(s, d.member_id, now)
        elif status in sql.FINAL_OK | sql.FINAL_FAILED:
            sql.keep_early_status(s, message_sid, status, error_code, now)
            early = True
        if error_code == UNSUBSCRIBED or effect == plan.OPTED_OUT:
            member_id = d.member_id if d is not None else None
            if member_id is None and to:
                from storage import repository

                m = repository.find_member(s, channel, to)
                member_id = m.id if m else None
            if member_id is not None:
                campaign = None
                if d is not None:
                    campaign = sql.campaign_of(s, d.broadcast_id)
                sql.opt_out_member(s, member_id, d.channel if d is not None else channel, f"twilio:{error_code}",
                                   now, campaign)
        uow.commit()
    if early:
        # The worker applies kept statuses after it commits the SIDs it wrote; if that commit came
        # after the lookup above but before the kept status was committed, it did not see it: apply
        # it here. One of the two always sees the other (both look after their own commit).
        with uow:
            if sql.apply_early_statuses(uow.session, now, message_sid):
                new = sql.delivery_by_provider_id(uow.session, message_sid).status
            uow.commit()
    return new
