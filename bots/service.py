"""Service functions: one inbound message, one transaction.

claim the provider id -> lock the member -> load the state -> engine.step -> apply the effects ->
save the state -> commit. The replies are rendered before commit so the consent log keeps the exact
text sent, and kept with the provider id so that a retry after a lost response gets the same answer.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, fields
from datetime import datetime
from zoneinfo import ZoneInfo

from bots import broadcasts, channels, privacy
from bots.engine import Consent, Engine, ForStaff, Inbound, RecordSignature, Reply, Signed, State, opt_out_in_words
from bots.events import ContactShared, Event, GroupPost, Reachability
from config.campaigns import Catalog
from config.keywords import OPT_OUT, normalize_keyword
from storage import inbound as hot
from storage import repository as repo
from storage.uow import UnitOfWork


@dataclass
class Outcome:
    messages: list[str] = field(default_factory=list)
    language: str = "en"
    duplicate: bool = False
    signed: str | None = None  # the campaign signed by this message, if any
    throttled: bool = False  # over the per-sender limit: nothing done, nothing to send
    opted_out: bool = False  # the member is opted out after this message
    first_group_post: bool = False  # a group seen for the first time (it gets one note)


log = logging.getLogger(__name__)

# The per-sender inbound limit: no person types this many texts a minute; a script does. Over it, a
# message is counted and dropped (the provider gets an empty answer, so it neither retries nor sends
# anything), except opt-outs (in plain words too), which always work.
INBOUND_LIMIT_PER_MINUTE = 30


def always_handled(inbound: Inbound, catalog: Catalog) -> bool:
    """Messages that the inbound limit never drops: STOP and its synonyms, opt-outs in plain words, and
    the provider's verdicts."""
    return bool(inbound.provider_opt) or inbound.command == "stop" or \
        normalize_keyword(inbound.text or "") in OPT_OUT or opt_out_in_words(inbound, catalog) is not None


# What the engine's State and the stored conversation (storage.inbound.ConversationState) share, by name;
# the engine has whether the inbox acknowledged them today where storage keeps the day.
_KEPT = tuple(f.name for f in fields(State) if f.name in hot.STATE_FIELDS)

DEFAULT_TIMEZONE = "America/New_York"


def organization_day(now: datetime, timezone: str) -> str:
    """The organization's date (FIRMA_TIMEZONE) at ``now``: the inbox acknowledges once per such day."""
    return now.astimezone(ZoneInfo(timezone)).date().isoformat()


def handle_inbound(uow: UnitOfWork, inbound: Inbound, engine: Engine, now: datetime, *,
                   limit: int | None = INBOUND_LIMIT_PER_MINUTE, forget_key: str | None = None,
                   timezone: str = DEFAULT_TIMEZONE) -> Outcome:
    """``limit``: messages per minute per sender (None: no limit). ``forget_key``: FIRMA_SECRET_KEY, to
    recognise a forgotten member who writes again (they start opted out). ``timezone``: FIRMA_TIMEZONE,
    whose days bound the inbox's one acknowledgement a day.

    The hot path of every conversation: its statements are storage.inbound's, compiled once
    and run on the driver's connection; on PostgreSQL a message costs two round trips (BEGIN with the
    admission and the read; the writes with COMMIT), three when it signs."""
    with uow.inbound() as conn:
        admission = _admit(conn, inbound, now, limit, engine.catalog)
        if isinstance(admission, Outcome):
            return admission
        channel, address = inbound.channel, inbound.address
        member, created = admission.member, False
        if member is None:
            # someone who asked to be forgotten and writes again starts opted out: that opt-out still holds;
            # the same number on SMS and WhatsApp is one person (link): the new member joins it
            member, created = hot.create_or_lock(conn, channel, address, now, inbound.simulated,
                                                 privacy.forget_token_or_none(forget_key, channel, address),
                                                 link=channels.get(channel).phone_numbers)
        last = member.last_signature
        today = organization_day(now, timezone)
        state = State(**{name: getattr(member, name) for name in _KEPT}, known=not created, signed=member.signed,
                      last_signed=Signed(*last) if last else None, acked_today=member.acked_on == today)
        result = engine.step(state, inbound)
        new = result.state
        replies = result.replies
        signed = None
        for effect in result.effects:
            if isinstance(effect, RecordSignature):
                # member.signed was read under the person's lock: another chat of the same person that
                # signed meanwhile is in it (and the unique constraint catches this chat signing twice)
                if effect.campaign not in member.signed and hot.add_signature(
                        conn, member, channel, campaign=effect.campaign, name=effect.name, zip_code=effect.zip_code,
                        city=effect.city, state=effect.state, timezone=effect.timezone, language=new.language,
                        now=now):
                    signed = effect.campaign
                else:  # signed already, by this chat or another of the same person: say so, count nothing
                    replies = (Reply("already_signed", campaign=effect.campaign),)
        messages = channels.get(channel).render(replies, new.language, engine.catalog)
        text_sent = "\n".join(messages) or None
        consents = [hot.ConsentRecord(effect.kind, effect.cause, effect.campaign or new.campaign, text_sent)
                    for effect in result.effects if isinstance(effect, Consent)]
        acknowledged = new.acked_today and not state.acked_today
        kept = next((hot.KeptMessage(e.text, e.media, e.campaign, text_sent if acknowledged else None)
                     for e in result.effects if isinstance(e, ForStaff)), None)
        if member.simulated:
            kept = None  # the simulator's members are not people: nothing for staff to read or answer
        saved = hot.ConversationState(**{name: getattr(new, name) for name in _KEPT},
                                      acked_on=today if acknowledged else member.acked_on)
        hot.save_and_commit(conn, member.id, channel, inbound.provider_id, consents=consents, state=saved,
                            response=_stored(messages, new.language, signed), now=now, kept=kept)
    if any(isinstance(effect, Consent) and effect.kind == "opt_out" for effect in result.effects):
        # committed: no worker hands a message to this member over now; one handed over before must
        # reach the provider before the confirmation does
        broadcasts.wait_in_flight(uow, member.id, now)
    return Outcome(messages, new.language, signed=signed, opted_out=new.opted_out)


def _admit(conn: hot.Transaction, inbound: Inbound, now: datetime, limit: int | None,
           catalog: Catalog) -> hot.Admission | Outcome:
    """The checks before a message is handled: count it against its sender's per-minute limit, claim
    the provider's message id and lock and read the member (storage.inbound.admit). The admission to
    go on with; else the answer to give now: throttled (only the counter committed: a flood stores
    nothing else), or a retry's first answer (nothing committed)."""
    window = now.replace(second=0, microsecond=0) if limit is not None else None
    admission = hot.admit(conn, inbound.channel, inbound.address, inbound.provider_id, now, window)
    member = admission.member
    if limit is not None and admission.count > limit and (
            not always_handled(inbound, catalog) or (member is not None and member.opted_out)):
        # a STOP flood from a member already opted out: confirmed once already, nothing more to record
        if admission.count == limit + 1:
            log.warning("inbound limit: more than %d messages this minute from %s on %s; dropping the rest",
                        limit, inbound.address, inbound.channel)
        if admission.claimed and inbound.provider_id:
            hot.unclaim(conn, inbound.channel, inbound.provider_id)  # a flood leaves nothing but its count
        conn.commit()
        return Outcome([], throttled=True)
    if not admission.claimed:
        response = hot.stored_response(conn, inbound.channel, inbound.provider_id)
        conn.rollback()
        return _replayed(response)
    return admission


def _stored(messages: list[str], language: str, signed: str | None) -> str:
    """What is kept for a provider's retry: the replies, and what a channel needs to give them the same
    way again (Telegram's buttons depend on the language and on whether the message signed)."""
    return json.dumps({"messages": messages, "language": language, "signed": signed})


def _replayed(response: str | None) -> Outcome:
    """The first handling's outcome, from what it stored (a list of replies before the language and the
    signature were kept too; nothing while the first handling is still going, or when it was dropped)."""
    data = json.loads(response) if response else []
    if isinstance(data, list):
        return Outcome(data, duplicate=True)
    return Outcome(data["messages"], data.get("language", "en"), duplicate=True, signed=data.get("signed"))


def handle_event(uow: UnitOfWork, event: Event | None, engine: Engine, now: datetime, *,
                 forget_key: str | None = None, timezone: str = DEFAULT_TIMEZONE) -> Outcome:
    """Whatever a channel reported, handled by its service function (None: nothing to do)."""
    if isinstance(event, Inbound):
        return handle_inbound(uow, event, engine, now, forget_key=forget_key, timezone=timezone)
    if isinstance(event, ContactShared):
        return handle_contact(uow, event.inbound, event.phone, event.own, engine, now, forget_key=forget_key)
    if isinstance(event, Reachability):
        handle_reachability(uow, event.channel, event.address, event.provider_id, event.reachable, now)
    elif isinstance(event, GroupPost):
        return Outcome(first_group_post=handle_group_post(uow, event.channel, event.chat_id, event.provider_id, now))
    return Outcome()


# --- what channels report besides conversation messages --------------------------------------------


def _claim(conn: hot.Transaction, channel: str, provider_id: str | None, now: datetime) -> bool:
    """True when this process owns the update now; False for a redelivery already handled. The claim
    records an empty reply at once: a claim without a reply is one still being handled."""
    if not provider_id:
        return True
    if not hot.claim(conn, channel, provider_id, now):
        return False
    hot.store_response(conn, channel, provider_id, "[]")
    return True


def handle_contact(uow: UnitOfWork, inbound: Inbound, phone: str | None, own: bool, engine: Engine,
                   now: datetime, *, limit: int | None = INBOUND_LIMIT_PER_MINUTE,
                   forget_key: str | None = None) -> Outcome:
    """A shared phone number (E.164, or None when unreadable): link this chat to the SMS member with
    that number, so the person counts once. Only the sender's own number is linked. The inbound limit
    counts contacts too; a forgotten chat or number that comes back starts opted out."""
    with uow:
        session = uow.session
        conn = hot.Transaction.within(session)
        admission = _admit(conn, inbound, now, limit, engine.catalog)
        if isinstance(admission, Outcome):
            return admission
        found, created = admission.member, False
        if found is None:
            hint = (inbound.language_hint or "").split("-")[0].lower()
            found, created = hot.create_or_lock(
                conn, inbound.channel, inbound.address, now, inbound.simulated,
                privacy.forget_token_or_none(forget_key, inbound.channel, inbound.address),
                language=hint if hint in engine.catalog.languages else "en")
        member = repo.member(session, found.id)
        if created:
            repo.conversation_for(session, member.id, new_member=True)  # every member has one
        key = "contact_invalid" if phone is None else "contact_not_own" if not own else "contact_linked"
        if key == "contact_linked" and not member.simulated:
            # the number's person: its first member on a phone channel (SMS or WhatsApp), else a new SMS one;
            # a forgotten number starts opted out: it is never texted unless it texts us
            home = repo.phone_member(session, phone) or channels.phone_home().name
            found, new_person = hot.lock_or_create(conn, home, phone, now, False,
                                                   privacy.forget_token_or_none(forget_key, home, phone),
                                                   link=channels.get(home).phone_numbers, language=member.language)
            person = repo.member(session, found.id)
            if new_person:
                repo.conversation_for(session, person.id, new_member=True)
            repo.link_member(session, member, person)
        member.last_seen_at = now
        member.unreachable_at = None
        messages = channels.get(inbound.channel).render((Reply(key),), member.language, engine.catalog)
        if inbound.provider_id:
            hot.store_response(conn, inbound.channel, inbound.provider_id, json.dumps(messages))
        uow.commit()
        return Outcome(messages, member.language)


def handle_reachability(uow: UnitOfWork, channel: str, address: str, provider_id: str | None, reachable: bool,
                        now: datetime) -> bool:
    """Telegram's my_chat_member: blocked (kicked) -> unreachable, no broadcasts; member -> reachable.
    Returns False for a redelivery. A member we never met is not created for this."""
    with uow:
        session = uow.session
        conn = hot.Transaction.within(session)
        if not _claim(conn, channel, provider_id, now):
            uow.rollback()
            return False
        found = hot.lock_state(conn, channel, address)
        if found is not None:
            member = repo.member(session, found.id)
            if reachable:
                member.unreachable_at = None
            elif member.unreachable_at is None:
                member.unreachable_at = now
        uow.commit()
    return True


def mark_unreachable(uow: UnitOfWork, channel: str, address: str, now: datetime) -> None:
    """Sending a reply to this member failed for good (blocked, deactivated)."""
    with uow:
        member = repo.find_member(uow.session, channel, address)
        if member is not None and member.unreachable_at is None:
            member.unreachable_at = now
            uow.commit()


def handle_group_post(uow: UnitOfWork, channel: str, chat_id: str, provider_id: str | None, now: datetime) -> bool:
    """A post in a group or channel. True only the first time the group is seen: it gets one short
    "message me privately" note, never a second."""
    with uow:
        session = uow.session
        if provider_id and not _claim(hot.Transaction.within(session), channel, provider_id, now):
            uow.rollback()
            return False
        first = repo.claim_group_notice(session, chat_id, now)
        uow.commit()
    return first
