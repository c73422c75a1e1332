"""A signed Twilio request captured by someone and replayed after `firma db purge` changes nothing:
the message ids are kept (without the replies) long after the replies are purged."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import func, select

from storage import repository as repo
from storage.models import ConsentEvent, ProcessedMessage
from tests.support.twilio_client import messages, new_sid, post_sms

PHONE = "+13125550177"


def purge(rt, *args):
    from webhooks.cli import Context, main

    ctx = Context()
    ctx._settings, ctx._runtime = rt.settings, rt
    return CliRunner().invoke(main, ["db", "purge", *args], obj=ctx, catch_exceptions=False)


def test_a_keyword_replayed_after_purge_does_not_resubscribe_a_member_who_stopped(client, rt, clock):
    join = new_sid()
    assert post_sms(client, PHONE, "SCOMM", sid=join).status_code == 200
    clock.advance(days=2)
    assert "unsubscribed" in messages(post_sms(client, PHONE, "STOP"))[0]
    clock.advance(days=40)
    result = purge(rt)
    assert result.exit_code == 0, result.output

    replay = post_sms(client, PHONE, "SCOMM", sid=join)  # the captured request, signature and all
    assert replay.status_code == 200 and messages(replay) == []
    with rt.db.uow() as uow:
        member = repo.find_member(uow.session, "sms", PHONE)
        assert member.opted_out_at is not None
        kinds = list(uow.session.scalars(select(ConsentEvent.kind).where(ConsentEvent.member_id == member.id)
                                         .order_by(ConsentEvent.id)))
        assert kinds == ["opt_in", "opt_out"]
        # the replies are gone (they can quote a name); the ids stay
        assert uow.session.scalar(select(func.count()).select_from(ProcessedMessage)
                                  .where(ProcessedMessage.response.is_not(None))) == 0
        assert uow.session.scalar(select(func.count()).select_from(ProcessedMessage)) == 2
