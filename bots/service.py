"""Service functions: one inbound message, one transaction.

claim the provider id -> lock the member -> load the state -> engine.step -> apply the effects ->
save the state -> commit. The replies are rendered before commit so the consent log keeps the exact
text sent, and kept with the provider id so that a retry after a lost response gets the same answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from bots.engine import Consent, Engine, Inbound, RecordSignature, Reply, State
from bots.render import render
from storage import repository as repo
from storage.uow import UnitOfWork


@dataclass
class Outcome:
    messages: list[str] = field(default_factory=list)
    language: str = "en"
    duplicate: bool = False
    signed: str | None = None  # the campaign signed by this message, if any


def handle_inbound(uow: UnitOfWork, inbound: Inbound, engine: Engine, now: datetime) -> Outcome:
    with uow:
        session = uow.session
        if inbound.provider_id:
            claim = repo.claim_message(session, inbound.channel, inbound.provider_id, now)
            if claim is not repo.CLAIMED:
                uow.rollback()
                return Outcome(json.loads(claim) if claim else [], duplicate=True)
        member, created = repo.lock_member(session, inbound.channel, inbound.address, now,
                                           simulated=inbound.simulated)
        conv = repo.conversation_for(session, member.id, new_member=created)
        state = State(
            language=member.language, known=not created, opted_out=member.opted_out_at is not None,
            disclosed=member.disclosed_at is not None, campaign=conv.campaign, step=conv.step,
            pending_name=conv.pending_name, invalid_count=conv.invalid_count,
            signed=frozenset() if created else repo.signed_campaigns(session, member.id),
        )
        result = engine.step(state, inbound)
        new = result.state
        replies = result.replies
        signed = None
        for effect in result.effects:
            if isinstance(effect, RecordSignature):
                if repo.add_signature(session, member, campaign=effect.campaign, name=effect.name,
                                      zip_code=effect.zip_code, city=effect.city, state=effect.state,
                                      timezone=effect.timezone, language=new.language, now=now):
                    signed = effect.campaign
                else:  # the unique constraint caught a second signature: say so, count nothing
                    replies = (Reply("already_signed", campaign=effect.campaign),)
        messages = render(replies, new.language, inbound.channel, engine.catalog)
        text_sent = "\n".join(messages) or None
        for effect in result.effects:
            if isinstance(effect, Consent):
                repo.add_consent(session, member, kind=effect.kind, cause=effect.cause,
                                 campaign=effect.campaign or new.campaign, text_sent=text_sent, now=now)

        member.language = new.language
        if new.opted_out and member.opted_out_at is None:
            member.opted_out_at = now
        elif not new.opted_out:
            member.opted_out_at = None
        if new.disclosed and member.disclosed_at is None:
            member.disclosed_at = now
        member.last_seen_at = now
        member.unreachable_at = None  # they wrote to us: reachable again
        conv.campaign, conv.step, conv.pending_name = new.campaign, new.step, new.pending_name
        conv.invalid_count, conv.updated_at = new.invalid_count, now
        if inbound.provider_id:
            repo.store_response(session, inbound.channel, inbound.provider_id, json.dumps(messages))
        uow.commit()
    return Outcome(messages, new.language, signed=signed)
