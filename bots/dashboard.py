"""The staff dashboard's figures: every campaign's total and today's count, and one campaign's
breakdown by channel, language, state and day. Aggregates only: no signature row is loaded."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from bots import channels
from bots.runtime import Runtime
from storage import repository as repo
from storage import staff_queries as q

DAYS_SHOWN = 30


def start_of_day(now: datetime, zone: str = "UTC", days_before: int = 0) -> datetime:
    """Midnight (in UTC) of the day ``now`` falls on in ``zone`` (FIRMA_TIMEZONE: the organization's
    "today"), or of ``days_before`` days earlier; each day is a calendar day there, 23 or 25 hours
    long when the clocks change."""
    tz = ZoneInfo(zone)
    day = now.astimezone(tz).date() - timedelta(days=days_before)
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)


@dataclass
class CampaignStats:
    slug: str
    title: str
    goal: int
    active: bool
    total: int = 0
    today: int = 0
    by_channel: list[tuple[str, int]] = field(default_factory=list)
    by_language: list[tuple[str, int]] = field(default_factory=list)
    by_state: list[tuple[str, int]] = field(default_factory=list)
    by_day: list[tuple[date, int]] = field(default_factory=list)  # the last DAYS_SHOWN days, oldest first


def overview(rt: Runtime, now: datetime) -> list[CampaignStats]:
    """Every campaign's total (the maintained counter) and today's count (an indexed range count)."""
    today = start_of_day(now, rt.settings.timezone)
    with rt.db.reader() as uow:
        counts = repo.signature_counts(uow.session)
        out = []
        for c in rt.catalog.campaigns.values():
            total = counts.get(c.slug, 0)
            out.append(CampaignStats(c.slug, c.text("en").title, c.goal, c.active, total=total,
                                     today=q.count_since(uow.session, c.slug, today) if total else 0))
    return out


def _ranked(counter: Counter) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


def campaign_stats(rt: Runtime, slug: str, now: datetime, days: int = DAYS_SHOWN) -> CampaignStats | None:
    campaign = rt.catalog.campaigns.get(slug)
    if campaign is None:
        return None
    zone = rt.settings.timezone
    today = start_of_day(now, zone)
    day_starts = [start_of_day(now, zone, days_before=days - 1 - i) for i in range(days)]
    with rt.db.reader() as uow:
        s = uow.session
        groups = q.breakdown(s, slug)
        per_day = q.counts_per_day(s, slug, day_starts, start_of_day(now + timedelta(days=1), zone))
        today_count = q.count_since(s, slug, today)
    by_channel: Counter[str] = Counter()
    by_language: Counter[str] = Counter()
    by_state: Counter[str] = Counter()
    for channel, language, state, n in groups:
        by_channel[channel] += n
        by_language[language] += n
        by_state[state] += n
    by_channels = [(ch, by_channel.pop(ch, 0)) for ch in channels.names()] + sorted(by_channel.items())
    by_channels.sort(key=lambda kv: -kv[1])
    return CampaignStats(
        slug, campaign.text("en").title, campaign.goal, campaign.active,
        total=sum(n for _, n in by_channels), today=today_count, by_channel=by_channels,
        by_language=_ranked(by_language), by_state=_ranked(by_state),
        by_day=[(d.astimezone(ZoneInfo(zone)).date(), n) for d, n in zip(day_starts, per_day)],
    )
