"""One member's history for staff: finding a member by a contact typed in any spelling, their
opt-ins and opt-outs, signatures and broadcast messages, and plain sentences that explain them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from bots import channels
from bots.broadcasts import stop_notice, template_for
from bots.runtime import Runtime
from storage import inbox as inbox_sql
from storage import staff_queries as q


@dataclass
class MemberHistory:
    member: object
    consent: list
    signatures: list
    deliveries: list["DeliveryLine"]  # broadcast messages made for them, newest first
    explanation: list[str]
    conversation: inbox_sql.ThreadRow | None = None  # their words for staff in the inbox, if they wrote any


@dataclass(frozen=True)
class DeliveryLine:
    """One broadcast message made for a member, and what became of it."""

    broadcast_id: int
    campaign: str
    channel: str
    status: str  # pending | held | sending | sent | delivered | failed | skipped | unknown
    when: datetime | None  # sent, or last changed, or (not sent yet) due
    error_code: str | None
    text: str  # what they read (or will read)
    created_by: str


def find_members(rt: Runtime, query: str) -> list:
    candidates = channels.contact_candidates(query)
    if not candidates:
        return []
    with rt.db.reader() as uow:
        found = q.members_at(uow.session, candidates)
        uow.session.expunge_all()  # keep the loaded values after the session closes
        return found


def _when(t: datetime | None) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if t else "never"


def explain(member, consent: list, signatures: list, catalog) -> list[str]:
    """Plain sentences answering "why am I getting these texts?" and "did my signature count?"."""
    lines: list[str] = []
    if member.simulated:
        lines.append("This is a simulator conversation: it is never counted, exported or sent broadcasts.")
    opt_ins = [e for e in consent if e.kind == "opt_in"]
    if opt_ins:
        first = opt_ins[0]
        lines.append(f"First opted in on {_when(first.created_at)} by sending “{first.cause}”"
                     + (f" (campaign {first.campaign})." if first.campaign else "."))
    else:
        lines.append(f"First wrote on {_when(member.created_at)}; no opt-in is recorded.")
    if member.opted_out_at is not None:
        outs = [e for e in consent if e.kind == "opt_out"]
        cause = f" (“{outs[-1].cause}”)" if outs else ""
        lines.append(f"Opted out on {_when(member.opted_out_at)}{cause}: firma sends them nothing more, on any "
                     f"campaign, unless they opt in again (START).")
    elif member.unreachable_at is not None:
        lines.append(f"Unreachable since {_when(member.unreachable_at)} (for example the Telegram bot was blocked): "
                     "no broadcasts until they write again.")
    else:
        lines.append("Subscribed: broadcasts to the signers of the campaigns below reach them. Texting STOP "
                     "(or /stop on Telegram) ends all messages.")
    for sig in signatures:
        title = catalog.campaigns[sig.campaign].text("en").title if sig.campaign in catalog.campaigns else sig.campaign
        counted = "not counted (simulated)" if sig.simulated else "counted"
        lines.append(f"Signed “{title}” on {_when(sig.signed_at)} as {sig.name}, {sig.city}, {sig.state}: {counted}.")
    if not signatures:
        lines.append("No signature is recorded for this member.")
    return lines


def member_history(rt: Runtime, member_id: int) -> MemberHistory | None:
    with rt.db.reader() as uow:
        member = q.member(uow.session, member_id)
        if member is None:
            return None
        consent = q.member_consent(uow.session, member_id)
        signatures = q.member_signatures(uow.session, member_id)
        deliveries = [_delivery_line(rt, d, b) for d, b in q.member_deliveries(uow.session, member_id)]
        conversation = inbox_sql.thread(uow.session, member_id)
        uow.session.expunge_all()
    lines = explain(member, consent, signatures, rt.catalog)
    if deliveries:
        lines.append(f"{len(deliveries)} broadcast message{'s' if len(deliveries) != 1 else ''} made for them "
                     f"(the latest from broadcast #{deliveries[0].broadcast_id}, to signers of "
                     f"{deliveries[0].campaign}): see “Broadcast messages sent” below.")
    return MemberHistory(member, consent, signatures, deliveries, lines, conversation)


def _delivery_line(rt: Runtime, d, b) -> DeliveryLine:
    template, text_lang = template_for(b, d.language)
    notice = stop_notice(rt.catalog, b.campaign, text_lang) if b.campaign in rt.catalog.campaigns else None
    try:
        text = channels.get(d.channel).broadcast_text(template, d.name, notice)
    except KeyError:  # a channel this deployment no longer speaks: the text as written
        text = template
    return DeliveryLine(b.id, b.campaign, d.channel, d.status, d.sent_at or d.updated_at or d.due_at,
                        d.error_code, text, b.created_by)
