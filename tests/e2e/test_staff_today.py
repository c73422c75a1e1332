"""The console's "today" and its days are calendar days in FIRMA_TIMEZONE, not UTC days."""

from __future__ import annotations

from datetime import date, timedelta

from bots import dashboard
from bots.runtime import Runtime
from storage import repository as repo
from storage.models import Member, Signature


def _signed(rt, *hours_ago):
    with rt.db.uow() as uow:
        for i, h in enumerate(hours_ago):
            m = Member(channel="sms", address=f"+1312555{i:04d}", language="en", created_at=rt.now())
            uow.session.add(m)
            uow.session.flush()
            uow.session.add(Signature(member_id=m.id, campaign="end-scomm", channel="sms", name=f"P {i}",
                                      zip_code="60601", city="Chicago", state="IL", language="en", simulated=False,
                                      signed_at=rt.now() - timedelta(hours=h)))
        repo.recount(uow.session, "end-scomm")
        uow.commit()


def test_today_is_the_organizations_day(rt, settings, catalog, clock):
    # 18:00 UTC is 13:00 in New York; 17 hours ago was 20:00 yesterday there, but today in UTC
    _signed(rt, 2, 17, 30)
    assert rt.settings.timezone == "America/New_York"
    stats = dashboard.campaign_stats(rt, "end-scomm", rt.now())
    assert stats.today == 1
    assert stats.by_day[-1] == (date(2026, 11, 27), 1) and stats.by_day[-2] == (date(2026, 11, 26), 2)
    assert [c.today for c in dashboard.overview(rt, rt.now())] == [1]
    utc = Runtime.build(settings.with_(timezone="UTC"), catalog=catalog)
    utc.clock = clock
    try:
        assert dashboard.campaign_stats(utc, "end-scomm", utc.now()).today == 2
    finally:
        utc.db.dispose()
