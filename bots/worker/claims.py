"""The worker's database steps (run in threads): claim due rows, reap expired leases, and hand a
message over (`sending`, committed) just before its provider call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

from bots import broadcast_plan as plan
from bots import channels
from bots.broadcasts import OUTSIDE_WINDOW
from storage import broadcasts as sql
from storage.models import Broadcast

log = logging.getLogger("firma.worker")

_DOWN = object()  # what Worker._db returns while the database is unavailable


class Claims:
    """Part of ``Worker`` (bots.worker.loop), which holds the state these methods use."""

    def _reap(self) -> tuple[int, int]:
        """Rows a dead worker left `sending`: (requeued, unknown), see storage.broadcasts.reap_expired;
        status callbacks kept for SIDs that some worker wrote but did not get to apply them (it
        stopped, or the database went away) are applied."""
        with self.rt.db.uow() as uow:
            now = self.rt.now()
            reaped = sql.reap_expired(uow.session, now)
            sql.apply_early_statuses(uow.session, now)
            uow.commit()
            return reaped

    def _anything_left(self, channel: str) -> bool:
        with self.rt.db.reader() as uow:
            return sql.anything_left(uow.session, self.rt.now(), channel, self.o.broadcast_id)

    def _claim(self, channel: str, limit: int, interval: float):
        """Claim up to ``limit`` due rows: skip the blocked, hold the quiet, reserve rate slots for the
        rest and mark them `sending`, all in one commit. Returns ([(row, slot)], wait_seconds).

        The channel's throttle row, which every worker's claims queue on, is locked last, for the
        slots, the rows' leases and the commit only: the rows themselves are claimed before it (workers
        skip each other's), so two workers do not hold each other up for the whole claim."""
        now = self.rt.now()
        quiet = self.rt.settings.quiet_hours
        keeps_quiet_hours = channels.get(channel).quiet_hours
        window = getattr(channels.get(channel), "reply_window", None)
        with self.rt.db.uow() as uow:
            s = uow.session
            ahead = self._ahead(sql.peek_throttle(s, channel), self._earliest_slot(channel))
            if ahead > self.o.horizon:  # other workers hold the next second of slots already
                uow.rollback()
                return [], ahead - self.o.horizon
            rows = sql.claim_candidates(s, channel, limit, now, self.o.broadcast_id)
            if not rows:
                uow.commit()
                return [], 0.0
            cancelled = [r.id for r in rows if r.cancelled]
            blocked = [r.id for r in rows if r.blocked and not r.cancelled]
            held: dict[datetime, list[int]] = defaultdict(list)
            send: list[sql.Claimed] = []
            for r in rows:
                if r.blocked or r.cancelled:
                    continue
                until = plan.quiet_until(r.timezone, now, quiet) if keeps_quiet_hours else None
                if until is not None:
                    held[until].append(r.id)
                else:
                    send.append(r)
            # Slots due at once (the channel's slots are free, and this many fit in the hand-over's lead:
            # all of a block without a rate cap) are handed over by this claim, sparing a transaction each.
            early: set[int] = set()
            if send and ahead <= 0:
                fit = 1 + int(self._hand_lead / interval)
                first = send[:fit]
                subscribed = sql.lock_subscribed(s, (r.member_id for r in first))
                early = {r.id for r in first if r.member_id in subscribed}
                gone = [r.id for r in first if r.member_id not in subscribed]
                blocked += gone
                send = [r for r in send if r.id not in gone]
            sql.mark_skipped(s, blocked, now, "opted_out")
            sql.mark_skipped(s, cancelled, now, "cancelled")
            for until, ids in held.items():
                sql.mark_held(s, ids, until, now)
            self._load_templates(s, {r.broadcast_id for r in send})
            outside: list[int] = []
            if window is not None:
                # Free text reaches a member only within the window after their last message; outside
                # it the broadcast's approved template goes, or nothing (counted as outside the window).
                send, outside = self._within_window(send, now - window)
                sql.mark_skipped(s, outside, now, "no_template", status=OUTSIDE_WINDOW)
            start = 0.0
            if send:
                throttle = sql.lock_throttle(s, channel, create=channel not in self._throttle_made)
                t = self._earliest_slot(channel)  # after the lock: waiting for it must not make slots late
                ahead = self._ahead(throttle, t)
                if ahead > self.o.horizon:  # taken meanwhile by other workers: the rows stay due
                    uow.rollback()
                    return [], ahead - self.o.horizon
                start = sql.reserve_slots(throttle, len(send), interval, t)
                lease_until = now + timedelta(seconds=(start - t) + len(send) * interval + self.o.lease)
                # only those whose slots did come at once (another worker may have taken the free ones)
                early &= {r.id for i, r in enumerate(send) if start + i * interval <= t + self._hand_lead}
                sql.mark_sending(s, [r.id for r in send], now, lease_until, handed=sorted(early))
                send = [replace(r, lease_until=lease_until, handed=r.id in early) for r in send]
                new_ids = {r.broadcast_id for r in send} - self._started
                if new_ids:
                    sql.mark_started(s, new_ids, now)
            uow.commit()
        if send:
            # The throttle row exists and is committed now: later claims need not insert it (after a
            # claim that failed before its commit, they still do).
            self._throttle_made.add(channel)
        self._started |= {r.broadcast_id for r in send}
        self.stats.add("skipped", len(blocked) + len(cancelled))
        self.stats.add(OUTSIDE_WINDOW, len(outside))
        self.stats.add("held", sum(len(v) for v in held.values()))
        return [(r, start + i * interval) for i, r in enumerate(send)], 0.0

    def _within_window(self, rows: list[sql.Claimed], since: datetime) -> tuple[list[sql.Claimed], list[int]]:
        """(rows to send, each marked ``templated`` when outside the window; ids of those outside it
        whose broadcast has no template)."""
        send, outside = [], []
        for r in rows:
            if r.last_seen is not None and r.last_seen >= since:
                send.append(r)
            elif self._templates[r.broadcast_id].window_template:
                send.append(replace(r, templated=True))
            else:
                outside.append(r.id)
        return send, outside

    def _load_templates(self, session, ids: set[int]) -> None:
        with self._templates_lock:
            missing = ids - self._templates.keys()
        for bid in missing:
            b = session.get(Broadcast, bid)
            if b is not None:
                session.expunge(b)
                with self._templates_lock:
                    self._templates[bid] = b

    def _finish(self) -> None:
        with self.rt.db.uow() as uow:
            sql.finish_broadcasts(uow.session, self.rt.now())
            uow.commit()

    async def _hand_over(self, row: sql.Claimed) -> bool | None:
        """Hand this claim to the provider (sql.hand_over): True to call the provider, False when it must
        not be sent, None when the database is unavailable. The hand-overs of a moment (a few ms, any
        channel) share one transaction."""
        fut = asyncio.get_running_loop().create_future()
        self._handing.append((row, fut))
        if len(self._handing) == 1:
            asyncio.create_task(self._hand_over_batch())
        return await fut

    async def _hand_over_batch(self) -> None:
        await asyncio.sleep(self.o.hand_over_window)  # let the other hand-overs of this moment join
        batch, self._handing = self._handing, []
        began = time.time()
        try:
            result = await self._db(self._hand_over_step, [row for row, _ in batch], pause=False)
        except Exception as exc:  # noqa: BLE001 - handed to every waiter
            for _, fut in batch:
                fut.set_exception(exc)
            return
        # Hand over this far ahead of the slots, so that the commit does not make them late. Up at
        # once on a slow one, down slowly.
        self._hand_lead = min(0.25, max(0.95 * self._hand_lead,
                                        2 * (time.time() - began) + self.o.hand_over_window))
        for row, fut in batch:
            fut.set_result(None if result is _DOWN else row.id in result.handed)

    def _hand_over_step(self, rows: list[sql.Claimed]) -> sql.HandOver:
        with self.rt.db.uow() as uow:
            done = sql.hand_over(uow.session, [(r.id, r.member_id, r.lease_until) for r in rows], self.rt.now())
            uow.commit()
        if done.skipped:
            log.info("%d messages not sent: opted out or cancelled after they were claimed", len(done.skipped))
        return done
