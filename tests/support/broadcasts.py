"""Helpers for broadcast tests and the benchmark: signers written straight to the database, and
settings that point the real provider clients at the stand-ins."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from sqlalchemy import func, select

from storage.models import Delivery, Member, Signature

TG_TOKEN = "123456:TEST-token"


def add_signer(rt, address: str, *, channel: str = "sms", name: str = "Ana Lopez", zip_code: str = "60601",
               state: str = "IL", tz: str | None = "America/Chicago", language: str = "en",
               campaign: str = "end-scomm", opted_out: bool = False, unreachable: bool = False,
               simulated: bool = False, signed_at: datetime | None = None) -> int:
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    with rt.db.uow() as uow:
        s = uow.session
        m = s.scalars(select(Member).where(Member.channel == channel, Member.address == address)).first()
        if m is None:
            m = Member(channel=channel, address=address, language=language, simulated=simulated, created_at=now,
                       opted_out_at=now if opted_out else None, unreachable_at=now if unreachable else None)
            s.add(m)
            s.flush()
        s.add(Signature(member_id=m.id, campaign=campaign, channel=channel, name=name, zip_code=zip_code,
                        city="Somewhere", state=state, timezone=tz, language=language, simulated=simulated,
                        signed_at=signed_at or now))
        uow.commit()
        return m.id


def settings_for(rt, twilio=None, telegram=None, **changes):
    """rt.settings pointed at the stand-ins, quiet hours off and generous rates unless changed."""
    base = dict(quiet_hours=None, sms_rate=1000.0, telegram_rate=1000.0)
    if twilio is not None:
        base["twilio_api_url"] = twilio.url
    if telegram is not None:
        base.update(telegram_api_url=telegram.url, telegram_bot_token=telegram.token)
    base.update(changes)
    return rt.settings.with_(**base)


def deliveries(rt, broadcast_id: int | None = None) -> list[Delivery]:
    with rt.db.uow() as uow:
        q = select(Delivery).order_by(Delivery.id)
        if broadcast_id is not None:
            q = q.where(Delivery.broadcast_id == broadcast_id)
        rows = list(uow.session.scalars(q))
        uow.session.expunge_all()
        return rows


def status_of(rt, broadcast_id: int | None = None) -> dict[str, int]:
    with rt.db.uow() as uow:
        q = select(Delivery.status, func.count()).group_by(Delivery.status)
        if broadcast_id is not None:
            q = q.where(Delivery.broadcast_id == broadcast_id)
        return {k: v for k, v in uow.session.execute(q)}


def telegram_sends(standin) -> list[tuple[str, float]]:
    """(chat_id, arrival time: Recorded.arrived) of every sendMessage the Telegram stand-in got."""
    out = []
    for r in standin.requests:
        if r.path.endswith("/sendMessage"):
            params = r.json if r.json is not None else {k: v[0] for k, v in r.form.items()}
            out.append((str(params.get("chat_id")), r.arrived))
    return out


def max_in_any_second(times: list[float]) -> int:
    """The most requests that arrived within any sliding one-second window [t, t + 1)."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - 1.0 + 1e-9 and j < i:
            j += 1
        # requests in (t - 1, t]: the window ending at this request
        best = max(best, i - j + 1)
    return best


class WorkerThread(threading.Thread):
    """A worker with its own event loop (as in its own process), for tests that run two at once."""

    def __init__(self, rt, options):
        super().__init__(daemon=True)
        self.rt, self.options, self.stats, self.error = rt, options, None, None

    def run(self):
        from bots.worker import run_worker

        try:
            self.stats = run_worker(self.rt, self.options)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def add_signers_bulk(rt, n: int, *, channel: str = "sms", start: int = 0, campaign: str = "end-scomm",
                     tz: str | None = "America/Chicago", language: str = "en", chunk: int = 10_000) -> None:
    """``n`` signers written with a few executemany statements (for big tests and the benchmark).
    SMS numbers are +1312 followed by a 7-digit counter; Telegram ids are 10^9 + counter."""
    from sqlalchemy import insert

    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    for lo in range(start, start + n, chunk):
        hi = min(start + n, lo + chunk)
        addresses = [f"+1312{i:07d}" if channel == "sms" else str(10**9 + i) for i in range(lo, hi)]
        with rt.db.uow() as uow:
            s = uow.session
            s.execute(insert(Member), [dict(channel=channel, address=a, language=language, simulated=False,
                                            created_at=now) for a in addresses])
            ids = {address: id_ for address, id_ in s.execute(
                select(Member.address, Member.id).where(Member.channel == channel, Member.address.in_(addresses)))}
            s.execute(insert(Signature), [dict(member_id=ids[a], campaign=campaign, channel=channel,
                                               name=f"Signer {i}", zip_code="60601", city="Chicago", state="IL",
                                               timezone=tz, language=language, simulated=False, signed_at=now)
                                          for i, a in zip(range(lo, hi), addresses)])
            uow.commit()
