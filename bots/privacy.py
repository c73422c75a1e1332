"""Forgetting a member (``firma member forget``), and recognising a forgotten number when it returns.

Forgetting keeps what the organisation must keep and nothing that names the person:
- the member row stays, its address replaced by ``forgotten:<HMAC-SHA256(FIRMA_SECRET_KEY, channel:address)>``
  (irreversible without the key, and a phone number is too short a secret for a plain hash), opted out
  and unreachable, so no broadcast reaches it;
- their signatures stay as rows with the name, ZIP, city and state erased, so campaign counts do not
  change (and the export leaves them out);
- the pending conversation, the inbound counter and every stored reply that quoted their name lose it;
- their conversation with staff (the inbox: their own words, the acknowledgements, staff replies) is
  deleted;
- a consent event of kind "forget" records when and on whose request (the audit entry).
If the same number writes again, storage.inbound.create_member finds the token, and the new member
row starts opted out: nothing but STOP/HELP or a new explicit keyword gets an answer.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from dataclasses import dataclass
from datetime import datetime

from config.gsm import to_gsm
from storage import broadcasts as broadcast_sql
from storage import db
from storage import delivery_files as delivery_files_sql
from storage import inbound as hot
from storage import inbox as inbox_sql
from storage import repository as repo
from storage.uow import UnitOfWork

PREFIX = repo.FORGOTTEN_PREFIX


def forget_token(key: str, channel: str, address: str) -> str:
    digest = hmac.new(key.encode(), f"{channel}:{address}".encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:48]


def forget_token_or_none(key: str | None, channel: str, address: str) -> str | None:
    """The token a forgotten contact's address became (None without a key): a new member whose token
    is in use starts opted out (storage.inbound.create_member checks it in the same statement)."""
    return forget_token(key, channel, address) if key else None


def _spellings(name: str) -> set[str]:
    return {name, to_gsm(name), html.escape(name, quote=False)}


@dataclass
class Forgotten:
    channel: str
    signatures: int  # kept, anonymised, still counted
    contacts: int = 1  # the member and the chats linked to the same person
    member_id: int | None = None  # the row asked for (the audit log names it, never the contact)
    delivery_files: int = 0  # delivery PDFs kept for the console, which could list the name: all deleted


def locate(uow: UnitOfWork, candidates: list[tuple[str, str]]) -> tuple[str, str] | None:
    """The first (channel, address) of ``candidates`` that is a member (a contact staff typed may be
    read several ways: bots.channels.contact_candidates)."""
    with uow:
        for channel, address in candidates:
            if repo.find_member(uow.session, channel, address) is not None:
                return channel, address
    return None


def forget(uow: UnitOfWork, key: str, channel: str, contact: str, now: datetime, requested_by: str = "cli") -> Forgotten | None:
    """Erase the member ``contact`` on ``channel``; None when there is no such member.

    A member linked to others as one person (a Telegram chat that shared its phone number, and the SMS
    member with that number) is forgotten with all of them: the link would otherwise tie the erased
    chat to a phone number that still names the person. The links stay, between rows that now name
    nobody, so the person still counts once and every campaign count stays exact."""
    with uow:
        session = uow.session
        conn = hot.Transaction.within(session)
        found = hot.lock_state(conn, channel, contact)
        if found is None:
            return None
        member = repo.member(session, found.id)
        kept, contacts = 0, 0
        for other in repo.person_members(session, member):
            if other.address.startswith(PREFIX):
                continue  # forgotten before
            hot.lock_state(conn, other.channel, other.address)
            other = repo.member(session, other.id)
            token = forget_token(key, other.channel, other.address)
            kept += repo.forget_member_data(session, other, token, now, _spellings)
            inbox_sql.erase(session, other.id)
            repo.add_consent(session, other, kind="forget", cause=f"erasure request ({requested_by})",
                             campaign=None, text_sent=None, now=now)
            contacts += 1
        files = delivery_files_sql.purge(session)  # made again in a minute, without the name
        uow.commit()
        db.checkpoint(uow.session.get_bind())
    return Forgotten(channel, kept, contacts, member.id, files)


PROCESSED_RETENTION_DAYS = 30  # providers retry within a day (Telegram) or never (Twilio)
INBOX_RETENTION_DAYS = 180  # a conversation staff closed is kept this long, then dropped
# A signed Twilio request carries no time: replayed a year later, it would act again (re-subscribe a
# member who sent STOP since) unless its MessageSid is still known. Ids alone are small (about 100
# bytes a message with the index): kept two years; rotate the auth token at least as often
# (SECURITY.md), which voids every signature captured before.
PROVIDER_IDS_KEPT_DAYS = 730
DELIVERY_FILES_KEPT_DAYS = 7  # a delivery PDF made for the console (it can hold every signer's full name)


@dataclass
class Purged:
    processed: int  # handled messages whose reply (and, except unique ids, id) was dropped
    counters: int
    early_statuses: int = 0
    conversations: int = 0  # inbox conversations done more than inbox_days ago
    ids: int = 0  # unique provider ids dropped after PROVIDER_IDS_KEPT_DAYS
    delivery_files: int = 0  # delivery PDFs kept for the console, dropped after DELIVERY_FILES_KEPT_DAYS


def purge(uow: UnitOfWork, now: datetime, days: int = PROCESSED_RETENTION_DAYS,
          inbox_days: int = INBOX_RETENTION_DAYS) -> Purged:
    """Delete what is kept only for a short while: provider message ids with the replies given (they
    can quote a name) older than ``days``, inbound counters older than an hour, Twilio status
    callbacks kept for a message that no delivery ever claimed, older than ``days``, and inbox
    conversations marked done more than ``inbox_days`` ago (with their messages)."""
    from datetime import timedelta

    from bots import channels

    unique = [c.name for c in channels.channels() if c.provider_ids_unique]
    others = [c.name for c in channels.channels() if c.name not in unique]
    with uow:
        cutoff = now - timedelta(days=days)
        processed = repo.purge_processed(uow.session, cutoff, others)
        processed += repo.purge_responses(uow.session, cutoff, unique)
        ids = repo.purge_processed(uow.session, now - timedelta(days=max(days, PROVIDER_IDS_KEPT_DAYS)), unique)
        counters = repo.purge_inbound_counters(uow.session, now - timedelta(hours=1))
        early = broadcast_sql.purge_early_statuses(uow.session, now - timedelta(days=days))
        conversations = inbox_sql.purge_done(uow.session, now - timedelta(days=inbox_days))
        files = delivery_files_sql.purge(uow.session, now - timedelta(days=DELIVERY_FILES_KEPT_DAYS))
        uow.commit()
    return Purged(processed, counters, early, conversations, ids, files)
