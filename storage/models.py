"""SQLAlchemy 2.0 typed models. Every time is stored in UTC."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Member(Base):
    """One person on one channel: a phone number (E.164) or a Telegram user id."""

    __tablename__ = "members"
    # ix_members_address: a phone number's members on other channels (one person on SMS and WhatsApp)
    __table_args__ = (UniqueConstraint("channel", "address"), Index("ix_members_address", "address"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="en")
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disclosed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # SMS opt-in disclosure sent
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unreachable_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The person this member is: members.id of the SMS member whose number a Telegram member shared
    # (NULL: the member is a person of its own). Counts and exports count people, not chats.
    person_id: Mapped[int | None] = mapped_column(BigId, index=True)


class Conversation(Base):
    """Where a member's conversation stands; one row per member, read and written under its lock."""

    __tablename__ = "conversations"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    campaign: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(32), default="idle")
    pending_name: Mapped[str | None] = mapped_column(String(200))
    invalid_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The day (YYYY-MM-DD in FIRMA_TIMEZONE) the inbox last acknowledged the member's own words: at
    # most one acknowledgement a day.
    acked_on: Mapped[str | None] = mapped_column(String(10))


class Signature(Base):
    __tablename__ = "signatures"
    __table_args__ = (
        UniqueConstraint("member_id", "campaign"),
        Index("ix_signatures_campaign_signed_at", "campaign", "signed_at"),
        Index("ix_signatures_campaign_state", "campaign", "state"),
        # The staff API pages through a campaign's signatures by id (a keyset cursor, no OFFSET).
        Index("ix_signatures_campaign_id", "campaign", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    campaign: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    zip_code: Mapped[str] = mapped_column(String(10))
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProcessedMessage(Base):
    """Provider message ids already handled (Twilio MessageSid, Telegram update_id).

    The reply that was given is kept, so a provider's retry after a lost response gets the same
    answer, and nothing else happens twice.
    """

    __tablename__ = "processed_messages"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    response: Mapped[str | None] = mapped_column(Text)


# Room for "staff reply (api:<a 100-character token label> (<a 254-character email>))" whole.
CAUSE_MAX = 400


class ConsentEvent(Base):
    """Every opt-in, opt-out and HELP: what caused it and the exact text sent back (carrier audits)."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_member_id_created_at", "member_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # opt_in | opt_out | help
    channel: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(String(CAUSE_MAX))  # keyword, OptOutType:STOP, twilio:21610, staff reply (who)
    campaign: Mapped[str | None] = mapped_column(String(64))
    text_sent: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignCount(Base):
    """Signatures per campaign, kept in the transaction that records each one (no COUNT(*) per page view)."""

    __tablename__ = "campaign_counts"

    campaign: Mapped[str] = mapped_column(String(64), primary_key=True)
    signatures: Mapped[int] = mapped_column(BigInteger, default=0)


# --- Staff console: staff logins, sign-in attempts (throttling), audit log ---------------


class StaffUser(Base):
    """A staff login. ``session_token`` is in every signed session cookie; changing it ends them all."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-case
    password_hash: Mapped[str] = mapped_column(String(255))
    session_token: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    role: Mapped[str] = mapped_column(String(16), default="organizer")  # admin, organizer or viewer


class ApiToken(Base):
    """A staff member's API token for /api/staff/: only its SHA-256 is kept (the token is shown once;
    it is 256 random bits, so a fast hash is enough). It acts with its staff member's role."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SignInAttempt(Base):
    """One try at the staff sign-in form; failures in a sliding window throttle an account and an IP."""

    __tablename__ = "staff_sign_in_attempts"
    __table_args__ = (
        Index("ix_staff_sign_in_attempts_email_at", "email", "at"),
        Index("ix_staff_sign_in_attempts_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    ip: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditLog(Base):
    """What staff did: sign-in, export, member lookup, broadcast. Append-only; the email is kept as
    text so the entry still names who did it after the login is removed."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    staff_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(200))  # a campaign slug, a member id, ...
    detail: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(String(64))


# The staff dashboard's aggregates are answered from these two indexes alone, without reading
# signature rows: counts per day and today's count (a range of signed_at), and the breakdown by
# channel, language and state (read in index order, so grouping needs no sort).
Index("ix_signatures_dashboard_days", Signature.campaign, Signature.simulated, Signature.signed_at)
Index("ix_signatures_dashboard_groups", Signature.campaign, Signature.simulated, Signature.channel,
      Signature.language, Signature.state)

# --- Reliability and security -------------------------------------------------------------


class InboundCounter(Base):
    """Messages received from one sender in the current minute (the per-sender inbound limit).

    One row per sender, rewritten in place: a flood costs one row, not one row per message, and the
    count is shared by every web process because it lives in the database.
    """

    __tablename__ = "inbound_counters"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=0)

# --- Telegram ------------------------------------------------------------------------


class TelegramGroupNotice(Base):
    """Groups and channels that got the one "message me privately" note (never a second one)."""

    __tablename__ = "telegram_group_notices"

    chat_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

# --- Broadcasts: a message to a campaign's signers, and one delivery row per recipient ---

# pending: due at due_at; held: quiet hours, due at due_at (when their window opens); sending: claimed
# by a worker until lease_until; sent: the provider took it; delivered/failed: a status callback said
# so (or the provider refused it); skipped: not sent on purpose (opted out since); unknown: a worker
# died or timed out mid-call, so whether it went out is unknown (reported, never resent by itself).
DELIVERY_STATUSES = ("pending", "held", "sending", "sent", "delivered", "failed", "skipped", "unknown")


class Broadcast(Base):
    __tablename__ = "broadcasts"
    __table_args__ = (
        # What workers look for: scheduled broadcasts not yet queued.
        Index("ix_broadcasts_scheduled", "send_at", postgresql_where=text("queued_at IS NULL"),
              sqlite_where=text("queued_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64), index=True)
    message_en: Mapped[str] = mapped_column(Text)
    message_es: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16), default="all")  # filter: "all" or one channel's name
    state: Mapped[str | None] = mapped_column(String(2))  # filter: signature state
    zip_prefix: Mapped[str | None] = mapped_column(String(5))  # filter: signature ZIP starts with
    signed_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # filter: signed at or after
    created_by: Mapped[str] = mapped_column(String(200), default="cli")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    timezones: Mapped[str] = mapped_column(Text, default="")  # recipients' zones, newline-separated
    # The staff console's one-time token for the confirmation that sent it: a second submit of the same
    # confirmation (a double click, a reload) finds this broadcast instead of sending another.
    send_token: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # staff stopped it: nothing more goes out
    cancelled_by: Mapped[str | None] = mapped_column(String(200))
    # An approved template (Twilio Content SID) for members outside a channel's reply window
    # (WhatsApp's 24 hours); without one they are not sent to.
    window_template: Mapped[str | None] = mapped_column(String(64))
    # Scheduling: a broadcast with a send_at in the future has no deliveries yet; a worker writes them
    # (queued_at) when the time comes, for the signers of that moment. Until then it can be edited
    # or cancelled. A broadcast sent at once is queued when it is made.
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Delivery(Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "member_id"),
        # What workers claim: due rows per channel, oldest due first.
        Index("ix_deliveries_due", "channel", "due_at", "id",
              postgresql_where=text("status IN ('pending', 'held')"),
              sqlite_where=text("status IN ('pending', 'held')")),
        # Rows a dead worker left behind.
        Index("ix_deliveries_lease", "lease_until",
              postgresql_where=text("status = 'sending'"), sqlite_where=text("status = 'sending'")),
        Index("ix_deliveries_broadcast_status", "broadcast_id", "status"),
        # A member's messages claimed by a worker: an opt-out waits for those already handed to the
        # provider before it is answered. Only rows in flight have entries.
        Index("ix_deliveries_in_flight", "member_id",
              postgresql_where=text("status = 'sending'"), sqlite_where=text("status = 'sending'")),
        # Status callbacks find their delivery by Twilio's SID; unsent rows (NULL) stay out of it,
        # so materialising a million deliveries does not write a million index entries.
        Index("ix_deliveries_provider_id", "provider_id",
              postgresql_where=text("provider_id IS NOT NULL"), sqlite_where=text("provider_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the worker handed this claim to the provider: set, just before the provider call, only while
    # the member is still subscribed and the broadcast not cancelled (storage.broadcasts.hand_over).
    # NULL on a `sending` row: claimed, waiting for its rate slot, not sent.
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(64))
    error_code: Mapped[str | None] = mapped_column(String(32))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EarlyStatus(Base):
    """A Twilio status callback that came before its delivery had the message's SID: Twilio may call
    back before its answer to the send has reached the worker, and the worker writes what it sent a
    batch at a time. Kept until the worker writes the SID, then applied and deleted; ``firma db
    purge`` drops those never claimed (another application's messages on the same account)."""

    __tablename__ = "early_statuses"

    provider_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SendThrottle(Base):
    """One row per channel: the next free send slot (epoch seconds), shared by every worker, so the
    per-channel rate holds for all of them together; and a pause (Telegram 429 retry_after)."""

    __tablename__ = "send_throttles"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    next_slot: Mapped[float] = mapped_column(Float(53), default=0.0)
    paused_until: Mapped[float] = mapped_column(Float(53), default=0.0)

# --- Campaigns: the organization and its campaigns, edited by staff; the campaign file seeds them ---


class OrganizationRow(Base):
    """The one organization (id 1) and the catalog's version: every change to the organization or a
    campaign bumps ``catalog_version`` in its own transaction, and every process compares it every
    few seconds with the version it runs on (a one-row read outside any request)."""

    __tablename__ = "organization"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    help_contact: Mapped[str] = mapped_column(Text)
    default_campaign: Mapped[str] = mapped_column(String(64))
    catalog_version: Mapped[int] = mapped_column(BigInteger, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrganizationTextRow(Base):
    __tablename__ = "organization_texts"

    language: Mapped[str] = mapped_column(String(8), primary_key=True)
    program: Mapped[str] = mapped_column(Text)
    frequency: Mapped[str] = mapped_column(Text)


class CampaignRow(Base):
    """A campaign; its slug never changes (signatures and broadcasts name it). Listed in id order."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    goal: Mapped[int] = mapped_column(BigInteger, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    broadcast_stop_notice: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignTextRow(Base):
    __tablename__ = "campaign_texts"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    language: Mapped[str] = mapped_column(String(8), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    statement: Mapped[str] = mapped_column(Text)


class CampaignKeywordRow(Base):
    """A keyword, normalised as members' texts are matched: unique across every campaign."""

    __tablename__ = "campaign_keywords"

    keyword: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(8))
    spelled: Mapped[str] = mapped_column(String(64))  # as staff wrote it ("SUEÑO" for SUENO)
    position: Mapped[int] = mapped_column(Integer, default=0)  # the first per language is the one members are told

# --- The inbox: members' own words, the bot's acknowledgements and staff replies -------------------

INBOX_SENDERS = ("member", "bot", "staff")


class InboxThread(Base):
    """One member's conversation with staff: open while something they wrote waits, done when staff
    closed it. Written in the inbound transaction that keeps a message, so the inbox page reads one
    row per conversation (newest first) and never scans the messages."""

    __tablename__ = "inbox_threads"
    __table_args__ = (
        Index("ix_inbox_threads_status_last_at", "status", "last_at", "member_id"),
        # the navigation's unread count: open conversations with something staff have not read
        Index("ix_inbox_threads_unread", "member_id",
              postgresql_where=text("status = 'open' AND unread > 0"),
              sqlite_where=text("status = 'open' AND unread > 0")),
    )

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    campaign: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8), default="open")  # open | done
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the member's latest message
    last_text: Mapped[str] = mapped_column(Text, default="")  # its first characters, for the list
    unread: Mapped[int] = mapped_column(Integer, default=0)  # member messages since staff last read it
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(254))


class InboxMessage(Base):
    """A message of a conversation with staff, in order: the member's words (text, media flag), the
    bot's acknowledgement, a staff reply (who sent it)."""

    __tablename__ = "inbox_messages"
    __table_args__ = (Index("ix_inbox_messages_member_id_id", "member_id", "id"),
                      Index("ix_inbox_messages_at", "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    sender: Mapped[str] = mapped_column(String(8))  # member | bot | staff
    staff_email: Mapped[str | None] = mapped_column(String(254))
    channel: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[bool] = mapped_column(Boolean, default=False)


class SavedReply(Base):
    """An answer staff give often, in one language; admins manage them."""

    __tablename__ = "saved_replies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(254))


# --- Delivery packages made by a worker for the console ---------------------------------------------

DELIVERY_FILE_STATUSES = ("queued", "making", "ready", "failed")


class DeliveryFile(Base):
    """A delivery package PDF a staff member asked for in the console and a worker makes: a large one
    takes longer than a web request may hold a web worker. Its pages are kept in DeliveryFileChunk
    rows (the only store every host shares) for a week, then purged; erasing a member drops them all."""

    __tablename__ = "delivery_files"
    __table_args__ = (Index("ix_delivery_files_status_id", "status", "id"),
                      Index("ix_delivery_files_campaign_id", "campaign", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign: Mapped[str] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(2))
    names: Mapped[str] = mapped_column(String(8))  # full | short | none
    language: Mapped[str] = mapped_column(String(8))
    listed: Mapped[int] = mapped_column(BigInteger, default=0)  # signers to list, when asked for
    requested_by: Mapped[str] = mapped_column(String(254))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(8), default="queued")
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # claims so far: a worker writes only under its own
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the making worker's latest write
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    size: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes written so far
    error: Mapped[str | None] = mapped_column(Text)


class DeliveryFileChunk(Base):
    """One piece of a delivery file's bytes, in order."""

    __tablename__ = "delivery_file_chunks"

    file_id: Mapped[int] = mapped_column(ForeignKey("delivery_files.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
