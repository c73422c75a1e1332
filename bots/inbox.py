"""The inbox for staff: members' own words (kept by the inbound service, bots/service.py), the
conversations staff read and close, and staff replies sent at once on the member's channel.

A reply goes through the channel's sender (the one the broadcast worker uses) and takes a slot on
the channel's shared throttle row, so it never pushes the channel over its rate cap together with
a broadcast. Quiet hours do not apply: the member wrote first. A member who opted out or cannot be
reached is never written to; the refusal says why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from bots import audit
from bots import broadcast_plan as plan
from bots import channels
from bots.runtime import Runtime
from storage import broadcasts as broadcast_sql
from storage import inbox as q
from storage import staff_queries
from storage.models import CAUSE_MAX, ConsentEvent
from storage.uow import unavailable

log = logging.getLogger("firma.inbox")

PAGE = 50
REPLY_MAX = 1000  # characters: a staff reply is a text message, not a letter
SLOT_WAIT_MAX = 10.0  # seconds a reply may wait for its rate slot before it is refused
REPEAT_WINDOW = 60  # seconds in which the same reply to the same member is taken for a double submit
HEADROOM = 0.15  # the broadcast worker's spacing of slots: (1 + HEADROOM) / rate


class NotRecorded(Exception):
    """The reply was sent, but the database could not record it; the message says so, for staff.
    ``body``: the text as the member read it."""

    def __init__(self, message: str, body: str):
        super().__init__(message)
        self.body = body


# Seconds between the tries to record a sent reply while the database does not answer: three tries,
# at worst (a hung database, 5 s a try on the web path) about 18 s, inside gunicorn's 30.
RECORD_RETRY_WAITS = (0.5, 2.0)


class ReplyRefused(Exception):
    """The reply was not sent; the message says why, in words for staff."""

    def __init__(self, reason: str, conflict: bool = True):
        super().__init__(reason)
        self.conflict = conflict  # the member's state forbids it (409), rather than the text (422)


@dataclass(frozen=True)
class Conversation:
    thread: q.ThreadRow
    member: object  # storage.models.Member, detached
    messages: list[q.MessageRow]
    name: str | None  # the name they signed with


def list_threads(rt: Runtime, filters: q.Filters, before: tuple[datetime, int] | None = None,
                 limit: int = PAGE) -> tuple[list[q.ThreadRow], dict[int, str]]:
    """A page of conversations, and the names their members signed with."""
    with rt.db.snapshot() as uow:
        rows = q.threads(uow.session, filters, limit, before)
        return rows, q.names(uow.session, [r.member_id for r in rows])


def unread(rt: Runtime) -> int:
    with rt.db.snapshot() as uow:
        return q.unread_count(uow.session)


def conversation(rt: Runtime, member_id: int, mark_read: bool = True) -> Conversation | None:
    """One member's conversation with staff (None: they never wrote words for staff); reading it marks
    it read."""
    with rt.db.uow() as uow:
        session = uow.session
        thread = q.thread(session, member_id)
        if thread is None:
            return None
        member = q.member(session, member_id)
        session.expunge(member)  # read whole; kept after the session
        messages = q.messages(session, member_id)
        name = q.names(session, [member_id]).get(member_id)
        if mark_read and thread.unread:
            q.mark_read(session, member_id)
            uow.commit()
        return Conversation(thread, member, messages, name)


def set_status(rt: Runtime, member_id: int, done: bool, by: str, ip: str | None = None) -> bool:
    """Mark a conversation done or open again (in the audit log); False for no such conversation."""
    now = rt.now()
    with rt.db.uow() as uow:
        changed = q.set_status(uow.session, member_id, "done" if done else "open", by, now)
        if changed:
            staff_queries.add_audit(uow.session, staff_email=by, action=audit.INBOX_STATUS, target=str(member_id),
                                    detail="done" if done else "reopened", ip=ip, now=now)
        uow.commit()
        return changed


# --- replying -------------------------------------------------------------------------------------


def check_text(text: str | None) -> str:
    text = (text or "").replace("\r\n", "\n").strip()
    if not text:
        raise ReplyRefused("The reply is empty.", conflict=False)
    if len(text) > REPLY_MAX:
        raise ReplyRefused(f"The reply has {len(text)} characters; the most is {REPLY_MAX}.", conflict=False)
    if plan.has_control_character(text):
        raise ReplyRefused("The reply has a control character (pasted from elsewhere?); take it out.",
                           conflict=False)
    return text


def refusal(member, now: datetime | None = None) -> str | None:
    """Why this member may not be written to (at ``now``: also the channel's reply window), or None."""
    if member.simulated:
        return "This is a simulator conversation: there is nobody to send a reply to."
    if member.opted_out_at is not None:
        return (f"Not sent: this member opted out on {member.opted_out_at:%Y-%m-%d}. STOP means stop: nothing is "
                "sent until they text START or a keyword again.")
    if member.unreachable_at is not None:
        return (f"Not sent: this member has been unreachable on {channels.label(member.channel)} since "
                f"{member.unreachable_at:%Y-%m-%d} (they blocked us, or the number cannot get messages). They can "
                "be answered again after they next write.")
    if now is not None:
        return outside_window(member, now)
    return None


def window_closes(member) -> datetime | None:
    """Until when a free reply reaches the member on a channel with a reply window (None: no window)."""
    window = getattr(channels.get(member.channel), "reply_window", None)
    return member.last_seen_at + window if window is not None and member.last_seen_at is not None else None


def outside_window(member, now: datetime) -> str | None:
    """A channel with a reply window (WhatsApp: 24 hours) takes free text only that long after the
    member's last message; the provider refuses it after (Twilio's 63016), so it is not sent at all."""
    window = getattr(channels.get(member.channel), "reply_window", None)
    last = member.last_seen_at
    if window is None or (last is not None and now - last < window):
        return None
    return _window_reason(member.channel, f"their last was {_ago(now - last)} ago" if last is not None
                          else "they have not written on it")


def _window_reason(channel: str, when: str) -> str:
    hours = round(channels.get(channel).reply_window.total_seconds() / 3600)
    return (f"Not sent: {channels.label(channel)} allows a free reply only within {hours} hours of the "
            f"member's last message; {when}. It can be sent once they write again; meanwhile only a broadcast "
            "with an approved template reaches them.")


def _ago(delta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24} days" if hours >= 48 else f"{hours} hours"


def reply(rt: Runtime, member_id: int, text: str | None, staff_email: str, ip: str | None = None) -> str:
    """Send ``text`` to the member now, on their channel; returns the text as they read it. ReplyRefused
    (with the reason) when it is not sent: opted out, unreachable, the channel not configured or paused,
    the provider refusing it."""
    text = check_text(text)
    with rt.db.uow() as uow:
        member = q.member(uow.session, member_id)
        if member is None or q.thread(uow.session, member_id) is None:  # staff answer conversations members start
            raise LookupError(member_id)
        last = q.last_staff_message(uow.session, member_id)
        uow.session.expunge(member)
    reason = refusal(member, rt.now())
    if reason:
        raise ReplyRefused(reason)
    if last is not None and last[0] == text and (rt.now() - last[1]).total_seconds() < REPEAT_WINDOW:
        raise ReplyRefused("This reply was sent a moment ago (a second click?); it was not sent again.",
                           conflict=False)
    channel = channels.get(member.channel)
    template = text.replace("{", "{{").replace("}", "}}")  # a reply is sent as written, not personalised
    try:
        channel.check_broadcast(template, member.language, None)
        body = channel.broadcast_text(template, "", None)
        sender = channel.sender(rt.settings, 1)
    except plan.BroadcastError as exc:
        raise ReplyRefused(f"Not sent: {exc}.", conflict=False) from None
    except channels.NotConfigured as exc:
        raise ReplyRefused(f"Not sent: {exc}.") from None
    _wait_for_slot(rt, member.channel, channel.rate(rt.settings))
    _still_subscribed(rt, member.id)
    result = asyncio.run(_send(sender, member.address, body))
    now = rt.now()
    if result.kind == plan.SENT:
        _record_sent(rt, member, text, body, staff_email, ip, now)
        return body
    with rt.db.uow() as uow:
        session = uow.session
        if result.kind == plan.OPTED_OUT:
            broadcast_sql.opt_out_member(session, member.id, member.channel, result.cause or "provider", now)
            uow.commit()
            raise ReplyRefused("Not sent: the provider says this member opted out (they replied STOP to the "
                               "carrier); they are now marked opted out.")
        if result.kind == plan.UNREACHABLE:
            broadcast_sql.mark_unreachable(session, member.id, now)
            uow.commit()
            raise ReplyRefused(f"Not sent: {channels.label(member.channel)} says this member cannot be reached "
                               "(blocked, or the account is gone); they are now marked unreachable.")
        if result.kind == plan.PAUSE:
            until = time.time() + (result.retry_after or 1.0)
            broadcast_sql.pause_channel(session, member.channel, until)
            uow.commit()
            raise ReplyRefused(f"Not sent: {channels.label(member.channel)} asks us to slow down; try again in "
                               f"{max(1, round(result.retry_after or 1))} seconds.", conflict=False)
    if result.kind == plan.OUTSIDE_WINDOW:  # the provider's clock, or a message we have not seen yet
        raise ReplyRefused(_window_reason(member.channel, f"{channels.label(member.channel)} says it has passed"))
    if result.kind == plan.UNKNOWN:
        raise ReplyRefused("The provider did not answer in time: the reply may or may not have arrived. Check "
                           "before sending it again.", conflict=False)
    raise ReplyRefused(f"Not sent: the provider refused it (error {result.error_code}).", conflict=False)


def _record_sent(rt: Runtime, member, text: str, body: str, staff_email: str, ip: str | None, now) -> None:
    """The sent reply in the thread, the consent log and the audit log, in one transaction. The member
    has it already: a database that does not answer is tried again for a few seconds (a restart, a
    failover), then NotRecorded tells staff it was sent, so that they do not send it twice."""
    for wait in (*RECORD_RETRY_WAITS, None):
        try:
            with rt.db.uow() as uow:
                session = uow.session
                q.add_message(session, member.id, member.channel, "staff", text, now, staff_email)
                # the consent log records every message that is not a broadcast, with its exact text
                session.add(ConsentEvent(member_id=member.id, kind="message", channel=member.channel,
                                         cause=f"staff reply ({staff_email})"[:CAUSE_MAX], campaign=None,
                                         text_sent=body, created_at=now))
                staff_queries.add_audit(session, staff_email=staff_email, action=audit.INBOX_REPLY,
                                        target=str(member.id),
                                        detail=f"{channels.label(member.channel)}, {len(body)} characters", ip=ip,
                                        now=now)
                uow.commit()
            return
        except Exception as exc:
            if not unavailable(exc):
                raise
            if wait is None:
                log.error("a staff reply to member #%d (%s, %d characters, by %s) was sent but could not be recorded: "
                          "the database did not answer (%s)", member.id, channels.label(member.channel), len(body),
                          staff_email, exc.__class__.__name__)
                raise NotRecorded("The reply was sent to the member, but the database did not answer, so it is not "
                                  "in the conversation or the consent log yet: do not send it again.", body) from None
            time.sleep(wait)


def _still_subscribed(rt: Runtime, member_id: int) -> None:
    """The member's last word before the provider call is theirs: a STOP that came while the reply
    waited for its slot refuses it (the row read under the lock a STOP's transaction waits on)."""
    with rt.db.uow() as uow:
        if broadcast_sql.lock_subscribed(uow.session, [member_id]):
            uow.commit()
            return
        reason = refusal(q.member(uow.session, member_id))
        uow.commit()
    raise ReplyRefused(reason or "Not sent: this member can no longer be written to.")


async def _send(sender, to: str, body: str) -> plan.SendResult:
    async with sender:
        return await sender.send(to, body)


def _wait_for_slot(rt: Runtime, channel: str, rate: float) -> None:
    """Take the channel's next send slot, shared with every broadcast worker, and wait for it."""
    at = time.time()
    with rt.db.uow() as uow:
        peek = broadcast_sql.peek_throttle(uow.session, channel)
        if peek is not None and peek.paused_until - at > SLOT_WAIT_MAX:
            raise ReplyRefused(f"Not sent: {channels.label(channel)} is paused by the provider for "
                               f"{round(peek.paused_until - at)} more seconds; try again then.", conflict=False)
        throttle = broadcast_sql.lock_throttle(uow.session, channel)
        slot = broadcast_sql.reserve_slots(throttle, 1, (1.0 + HEADROOM) / rate, at)
        uow.commit()
    delay = slot - time.time()
    if delay > 0:
        time.sleep(min(delay, SLOT_WAIT_MAX))


# --- saved replies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Saved:
    id: int
    language: str
    title: str
    text: str


def saved_replies(rt: Runtime) -> list[Saved]:
    with rt.db.snapshot() as uow:
        return [Saved(r.id, r.language, r.title, r.text) for r in q.saved_replies(uow.session)]


def add_saved_reply(rt: Runtime, language: str, title: str, text: str, by: str) -> Saved:
    title = (title or "").strip()
    text = (text or "").strip()
    if language not in rt.catalog.languages:
        raise ReplyRefused(f"Choose a language: {', '.join(rt.catalog.languages)}.", conflict=False)
    if not title or len(title) > 80:
        raise ReplyRefused("Give the saved reply a title of at most 80 characters.", conflict=False)
    if plan.has_control_character(title):
        raise ReplyRefused("The title has a control character (pasted from elsewhere?); take it out.",
                           conflict=False)
    check_text(text)
    with rt.db.uow() as uow:
        saved = q.add_saved_reply(uow.session, language, title, text, by, rt.now())
        uow.commit()
        return Saved(saved.id, saved.language, saved.title, saved.text)


def delete_saved_reply(rt: Runtime, reply_id: int) -> bool:
    with rt.db.uow() as uow:
        found = q.delete_saved_reply(uow.session, reply_id)
        uow.commit()
        return found


def erase(session, member_id: int) -> int:
    """Forgetting a member erases their conversation with staff (bots/privacy.py)."""
    return q.erase(session, member_id)


def purge(session, before: datetime) -> int:
    return q.purge_done(session, before)



# --- the staff API's view of the inbox ----------------------------------------------------------------

_OPAQUE = "m"


def opaque(member_id: int) -> str:
    """A conversation's member as the API names it: never the phone number or the Telegram id (nor a
    string of digits that could be taken for one)."""
    return f"{_OPAQUE}{member_id}"


def member_of(opaque_id: str) -> int | None:
    """The member id behind an opaque id; None when it cannot be one."""
    digits = opaque_id[len(_OPAQUE):] if opaque_id.startswith(_OPAQUE) else ""
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 19 else None


def _utc(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="seconds")[:19] + "Z"


def thread_json(row: q.ThreadRow) -> dict:
    return {"member": opaque(row.member_id), "channel": row.channel, "language": row.language,
            "campaign": row.campaign, "last_text": row.last_text, "last_at": _utc(row.last_at), "status": row.status}


def messages_json(found: Conversation) -> dict:
    return {"member": opaque(found.member.id),
            "messages": [{"at": _utc(m.at), "from": m.sender, "text": m.text} for m in found.messages]}
