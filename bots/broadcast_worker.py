"""The broadcast worker: claim due deliveries, mark them `sending` (committed), call the provider,
record the outcome. Any number of workers on any number of hosts share the work through the
database (PostgreSQL: FOR UPDATE SKIP LOCKED) and share each channel's rate through one throttle row.

Inside a worker everything is asyncio: provider calls run concurrently (bounded by ``concurrency``),
each at its reserved rate slot; database calls run in threads so they never stall the calls in flight;
outcomes are written in batches.

Crash safety: a row is `sending` in the database before its provider call starts, with a lease. A
worker that dies leaves it `sending`; when the lease runs out any worker turns it into `unknown`,
which is reported and never resent by itself. So a crash can lose a message's outcome, never send
it twice.

The database going away (a restart, a failover, every connection busy) is not a crash: the worker
claims nothing until it is back, lets the calls in flight finish, keeps their outcomes and writes
them when it can, then carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Awaitable, Callable

from bots import broadcast_plan as plan
from bots import channels
from bots.channels import Sender
from bots.broadcasts import OUTSIDE_WINDOW, stop_notice, template_for
from bots.runtime import Runtime
from storage import broadcasts as sql
from storage.models import Broadcast
from storage.uow import unavailable

log = logging.getLogger("firma.worker")

_DOWN = object()  # what Worker._db returns while the database is unavailable


@dataclass
class Options:
    drain: bool = False  # exit when nothing is left to send (held rows for later do not count)
    broadcast_id: int | None = None  # only this broadcast (the foreground `firma broadcast`)
    batch: int = 500  # most rows claimed per transaction
    concurrency: int = 500  # most provider calls in flight per channel
    lease: float = 120.0  # seconds a claimed row may stay `sending` past its rate slot
    horizon: float = 1.0  # claim at most this many seconds' worth of rate slots at a time
    poll: float = 1.0  # idle wait between claims when nothing is due
    flush_interval: float = 0.1
    # Slots are spaced (1 + headroom) / rate apart: 150 ms a second of slack, a third for our own
    # lateness and two thirds for jitter between our call and the provider's clock, so that the cap
    # holds where the provider counts (a loaded host delays requests unevenly).
    headroom: float = 0.15
    reap_every: float = 2.0
    hand_over_window: float = 0.002  # hand-overs this close together share one transaction


@dataclass
class Stats:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    started: float = field(default_factory=time.monotonic)
    # Channels that could not send when the worker stopped: why (one line, no secret).
    unavailable: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def __getitem__(self, key: str) -> int:
        return self.counts.get(key, 0)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker:
    def __init__(self, rt: Runtime, senders: dict[str, Sender], options: Options | None = None):
        self.rt = rt
        self.senders = senders
        self.o = options or Options()
        self.stats = Stats()
        self.stop = asyncio.Event()
        self._inflight: dict[str, int] = defaultdict(int)
        self._paused_until: dict[str, float] = defaultdict(float)
        self._late: dict[str, list[asyncio.Future]] = defaultdict(list)
        self._throttle_made: set[str] = set()
        self._started: set[int] = set()  # broadcasts whose started_at this worker has seen set
        self._lead: dict[str, float] = defaultdict(lambda: 0.02)  # seconds from claim to first slot
        self._block_late: dict[str, float] = defaultdict(float)  # worst lateness since the last claim
        # When this worker can start its next call (its event loop starts them one after another), from
        # what a call costs the loop: a new block's slots begin no earlier, so that blocks do not fall on
        # the same instant and make each other's calls late.
        self._free_at: dict[str, float] = defaultdict(float)
        self._pace = 0.0005  # seconds of the event loop's CPU per call (all channels'), measured as it runs
        self._calls = 0  # calls started
        self._pace_mark: tuple[float, int] | None = None
        self._buffer: list[tuple[dict, tuple]] = []
        self._unswept = False  # SMS SIDs were written since kept early status callbacks were last looked at
        self._handing: list[tuple[sql.Claimed, asyncio.Future]] = []  # hand-overs waiting for this moment's batch
        self._hand_lead = 0.02  # seconds before its slot that a message is handed over
        self._templates: dict[int, Broadcast] = {}
        self._templates_lock = threading.Lock()
        self._flush_lock = asyncio.Lock()
        self._last_reap = 0.0
        self._down_since: float | None = None  # when the database stopped answering, while it does not
        self.db_retry = 1.0  # seconds between attempts while it does not
        self.provider_retry = 5.0  # first wait before a paused channel's provider is tried again (doubles)
        self.last_write_patience = 20.0  # seconds a stopping worker waits for it to write what is left

    def rate(self, channel: str) -> float:
        return channels.get(channel).rate(self.rt.settings)

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> Stats:
        async with contextlib.AsyncExitStack() as stack:
            self._install_signals()
            flusher = asyncio.create_task(self._flusher())
            scheduler = None
            if self.o.broadcast_id is None:  # the foreground `firma broadcast` sends its own, already queued
                await self._db(self._release_scheduled)  # before the first claims (and a drain's check)
                scheduler = asyncio.create_task(self._scheduler())
            try:
                await asyncio.gather(*(self._channel_loop(ch, stack) for ch in self.senders))
            finally:
                self.stop.set()
                if scheduler is not None:
                    scheduler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await scheduler
                await self._wait_idle()
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
                await self._last_flush()
                if await self._db(self._finish, pause=False) is _DOWN:
                    log.warning("the database is unavailable: broadcasts with nothing left to send get their "
                                "finish time when the next worker stops")
        return self.stats

    async def _scheduler(self) -> None:
        """Queue scheduled broadcasts when their time comes (every ``poll`` seconds, as claims look)."""
        while not self.stop.is_set():
            await self._sleep(self.o.poll)
            if not self.stop.is_set():
                await self._db(self._release_scheduled)

    def _release_scheduled(self) -> list[int]:
        from bots.broadcasts import release_due

        queued = release_due(self.rt)
        for broadcast_id in queued:
            log.info("scheduled broadcast #%d is due: its deliveries are queued", broadcast_id)
        return queued

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._graceful_stop)

    def _graceful_stop(self) -> None:
        log.info("stopping: finishing the calls in flight, claiming nothing more")
        self.stop.set()

    async def _wait_idle(self) -> None:
        while any(self._inflight.values()):
            await asyncio.sleep(0.01)

    async def _open(self, channel: str, stack: contextlib.AsyncExitStack) -> bool:
        """Start the channel's sender. While its provider refuses the credentials or cannot be reached,
        the channel waits (one line says why) and is tried again, doubling the wait up to five
        minutes; the other channels send meanwhile. A draining worker gives up on it at once."""
        wait = self.provider_retry
        while not self.stop.is_set():
            try:
                await stack.enter_async_context(self.senders[channel])
            except channels.ProviderUnavailable as exc:
                if self.stats.unavailable.get(channel) != str(exc):
                    log.error("%s is paused: %s. Its messages wait; the other channels keep sending%s",
                              channels.label(channel), exc, "" if self.o.drain else " (trying again)")
                self.stats.unavailable[channel] = str(exc)
                if self.o.drain:
                    return False
                await self._sleep(wait)
                wait = min(wait * 2, 300.0)
                continue
            if self.stats.unavailable.pop(channel, None):
                log.warning("%s is reachable again: sending", channels.label(channel))
            return True
        return False

    async def _channel_loop(self, channel: str, stack: contextlib.AsyncExitStack) -> None:
        if not await self._open(channel, stack):
            return
        rate = self.rate(channel)
        interval = (1.0 + self.o.headroom) / rate
        per_claim = max(1, min(self.o.batch, math.ceil(rate * self.o.horizon)))
        # How many rows a claim takes adapts (AIMD) so that this worker starts each block's calls
        # on time: slots it cannot use on time would be taken again (reslotted) at a cost.
        size = min(per_claim, 50)
        tolerance = self.o.headroom / 3
        while not self.stop.is_set():
            if self.o.drain and channel in self.stats.unavailable:  # refused mid-run: its rows wait
                while self._inflight[channel]:
                    await asyncio.sleep(0.01)
                return
            if time.monotonic() - self._last_reap >= self.o.reap_every:
                self._last_reap = time.monotonic()
                n = await self._db(self._reap)
                if n is _DOWN:
                    continue
                if n:
                    log.warning("%d deliveries were left `sending` by a worker that stopped: marked unknown", n)
            self._measure_pace()
            backlog = self._free_at[channel] - time.time()
            if backlog > self._lead[channel]:  # claimed calls keep the loop busy past the next claim
                await asyncio.sleep(min(backlog - self._lead[channel], 0.005))
                continue
            late, self._block_late[channel] = self._block_late[channel], 0.0
            if late > tolerance:
                size = max(1, size // 2)
            elif late < tolerance / 2:
                size = min(per_claim, int(size * 1.5) + 1)
            room = self.o.concurrency - self._inflight[channel]
            if room <= 0:
                await asyncio.sleep(0.002)
                continue
            began = time.time()
            result = await self._db(self._claim, channel, min(room, size), interval)
            if result is _DOWN:
                continue
            claimed, wait = result
            # Slots start this far ahead of the claim, so committing it does not make them late.
            # Up at once on a slow claim, down slowly: a block whose claim outran the lead is all late.
            self._lead[channel] = min(0.5, max(0.95 * self._lead[channel], 2 * (time.time() - began)))
            if wait:
                await self._sleep(min(wait, self.o.poll))
                continue
            if not claimed:
                if self.o.drain and await self._drained(channel):
                    return
                await self._sleep(min(self.o.poll, 0.2) if self.o.drain else self.o.poll)
                continue
            self._book(channel, [slot for _, slot in claimed])
            for row, slot in claimed:
                self._inflight[channel] += 1
                asyncio.create_task(self._send(channel, row, slot))

    def _book(self, channel: str, slots: list[float]) -> None:
        """Calls at these slots keep the loop busy: each starts at its slot or once the one before it
        has started, whichever is later."""
        free = self._free_at[channel]
        for slot in slots:
            free = max(slot, free) + self._pace
        self._free_at[channel] = free

    def _measure_pace(self) -> None:
        """The event loop's CPU per call started, over the last 100 calls or more (runs on the loop's
        thread, so thread_time is the loop's own CPU: request building, responses, outcomes)."""
        cpu, calls = time.thread_time(), self._calls
        if self._pace_mark is None:
            self._pace_mark = (cpu, calls)
        elif calls - self._pace_mark[1] >= 100:
            pace = (cpu - self._pace_mark[0]) / (calls - self._pace_mark[1])
            self._pace = 0.5 * self._pace + 0.5 * min(pace, 0.01)
            self._pace_mark = (cpu, calls)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop.wait(), timeout=max(0.0, seconds))

    async def _drained(self, channel: str) -> bool:
        if self._inflight[channel] or not await self.flush():
            return False
        left = await self._db(self._anything_left, channel)
        return left is not _DOWN and not left

    # --- the database going away ----------------------------------------------------------------------

    async def _db(self, step: Callable, *args, pause: bool = True):
        """Run a database step in a thread. While the database is unavailable, return ``_DOWN`` (after
        a pause of ``db_retry`` seconds, unless ``pause`` is false); any other error is a bug: raised."""
        try:
            result = await asyncio.to_thread(step, *args)
        except Exception as exc:
            if not unavailable(exc):
                raise
            self._went_down(exc)
            if pause:
                await self._sleep(self.db_retry)
            return _DOWN
        self._came_back()
        return result

    def _went_down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("the database is unavailable (%s): claiming nothing until it is back; the calls in "
                        "flight finish and their outcomes wait to be written", exc.__class__.__name__)

    def _came_back(self) -> None:
        if self._down_since is not None:
            log.warning("the database is back after %.1f s: carrying on", time.monotonic() - self._down_since)
            self._down_since = None

    # --- database steps (run in threads) ----------------------------------------------------------

    def _reap(self) -> int:
        """Rows a dead worker left `sending` become `unknown`; status callbacks kept for SIDs that some
        worker wrote but did not get to apply them (it stopped, or the database went away) are applied."""
        with self.rt.db.uow() as uow:
            now = self.rt.now()
            n = sql.reap_expired(uow.session, now)
            sql.apply_early_statuses(uow.session, now)
            uow.commit()
            return n

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

    def _earliest_slot(self, channel: str) -> float:
        """The earliest this worker's next slots may start: after the time a claim's commit and the
        hand-over to the event loop take (the lead), and not before it has started the calls it has
        claimed already."""
        return max(time.time() + self._lead[channel], self._free_at[channel])

    @staticmethod
    def _ahead(throttle: sql.ThrottleState | None, at: float) -> float:
        """How far past ``at`` the channel's slots are taken already, or paused."""
        if throttle is None:
            return 0.0
        return max(throttle.next_slot, throttle.paused_until) - at

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

    # --- one delivery -------------------------------------------------------------------------------

    def render(self, channel: str, row: sql.Claimed) -> str:
        b = self._templates[row.broadcast_id]
        lang = row.language if row.language in self.rt.catalog.languages else "en"
        template, text_lang = template_for(b, lang)
        return channels.get(channel).broadcast_text(template, row.name,
                                                    stop_notice(self.rt.catalog, b.campaign, text_lang))

    def _reserve(self, channel: str, count: int) -> float:
        with self.rt.db.uow() as uow:
            throttle = sql.lock_throttle(uow.session, channel)
            start = sql.reserve_slots(throttle, count, (1.0 + self.o.headroom) / self.rate(channel),
                                      self._earliest_slot(channel))
            uow.commit()
            return start

    async def _reslot(self, channel: str) -> float:
        """A new slot for a message that missed its own; the late ones of a moment share one transaction."""
        fut = asyncio.get_running_loop().create_future()
        waiting = self._late[channel]
        waiting.append(fut)
        if len(waiting) == 1:
            async def reserve():
                await asyncio.sleep(0.005)  # let the other late ones of this moment join
                batch, self._late[channel] = self._late[channel], []
                try:
                    start = await asyncio.to_thread(self._reserve, channel, len(batch))
                except Exception as exc:  # noqa: BLE001 - handed to every waiter
                    for f in batch:
                        f.set_exception(exc)
                    return
                interval = (1.0 + self.o.headroom) / self.rate(channel)
                slots = [start + i * interval for i in range(len(batch))]
                self._book(channel, slots)
                for f, slot in zip(batch, slots):
                    f.set_result(slot)

            asyncio.create_task(reserve())
        return await fut

    @staticmethod
    async def _sleep_until(at: float) -> None:
        delay = at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

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

    async def _send(self, channel: str, row: sql.Claimed, slot: float) -> None:
        try:
            # Hand it over just before its slot: the last look at the member and the broadcast, and the
            # point after which an opt-out waits for this message rather than stopping it.
            handed = row.handed
            if not handed:
                await self._sleep_until(slot - self._hand_lead)
                try:
                    handed = await self._hand_over(row)
                except Exception:  # noqa: BLE001 - not handed over, so not sent: back to the queue
                    log.exception("handing delivery %s over failed", row.id)
                    handed = None
            if handed is None:  # the database could not say: back to the queue, unsent
                self._outcome(channel, row, plan.SendResult(plan.PAUSE, error_code="late", retry_after=0.0))
                return
            if not handed:  # opted out or cancelled since the claim (written), or no longer this worker's
                self.stats.add("skipped")
                return
            tolerance = self.o.headroom / 3  # a third of the slack for our own lateness, the rest for the network
            on_time = False
            for _ in range(10):
                delay = slot - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                late = time.time() - slot
                self._block_late[channel] = max(self._block_late[channel], late)
                if late <= tolerance:
                    on_time = True
                    break
                # Too late for this slot (a slow commit, a busy loop): sending now could bunch with
                # the next slots, so take a new one.
                self.stats.add("reslotted")
                try:
                    slot = await self._reslot(channel)
                except Exception as exc:  # noqa: BLE001 - no new slot, so no call: back to the queue, unsent
                    if not unavailable(exc):
                        log.exception("taking a new slot for delivery %s failed", row.id)
                    break
            if not on_time:  # never on time: back to the queue, unsent, rather than over the cap
                self._outcome(channel, row, plan.SendResult(plan.PAUSE, error_code="late", retry_after=0.0))
                return
            self._calls += 1
            if time.time() < self._paused_until[channel]:
                # The channel was paused (429) after this slot was reserved: do not call; retry later.
                result = plan.SendResult(plan.PAUSE, error_code="paused",
                                         retry_after=self._paused_until[channel] - time.time())
            else:
                result = await self._deliver(channel, row)
            self._outcome(channel, row, result)
        except Exception:  # noqa: BLE001 - a bug must not leave the row claimed forever: record it
            log.exception("sending delivery %s failed unexpectedly", row.id)
            self._outcome(channel, row, plan.SendResult(plan.UNKNOWN, error_code="worker_error"))
        finally:
            self._inflight[channel] -= 1

    async def _deliver(self, channel: str, row: sql.Claimed) -> plan.SendResult:
        """The broadcast's text; or its approved template, for a member outside the channel's reply
        window (known before, or learnt from the provider's refusal of the text)."""
        sender = self.senders[channel]
        template = self._templates[row.broadcast_id].window_template
        if not row.templated:
            result = await sender.send(row.address, self.render(channel, row))
            if result.kind != plan.OUTSIDE_WINDOW or not template:
                return result
        variables = channels.get(channel).template_variables(row.name)
        return await sender.send_template(row.address, template, variables)

    def _outcome(self, channel: str, row: sql.Claimed, r: plan.SendResult) -> None:
        now = self.rt.now()
        out = {"id": row.id, "lease": row.lease_until, "channel": channel, "status": None,
               "provider_id": r.provider_id, "error_code": r.error_code, "due_at": None, "attempts_delta": 0}
        effect: tuple = ()
        if r.kind == plan.SENT:
            out["status"] = "sent"
            self.stats.unavailable.pop(channel, None)
        elif r.kind in (plan.FAILED, plan.UNKNOWN):
            out["status"] = "failed" if r.kind == plan.FAILED else "unknown"
        elif r.kind == plan.OPTED_OUT:
            out["status"] = "failed"
            effect = ("opt_out", row.member_id, channel, self._templates[row.broadcast_id].campaign,
                      r.cause or f"{channel}:{r.error_code}")
            self.stats.add("opted_out")
        elif r.kind == plan.OUTSIDE_WINDOW:  # refused outside the reply window, and no template to send
            out["status"] = OUTSIDE_WINDOW
        elif r.kind == plan.UNREACHABLE:
            out["status"] = "failed"
            effect = ("unreachable", row.member_id)
            self.stats.add("unreachable")
        elif r.kind == plan.RETRY:
            tries = row.attempts + 1
            if tries >= plan.MAX_ATTEMPTS:
                out["status"] = "failed"
            else:
                out["status"], out["due_at"] = "pending", now + plan.backoff(tries)
                self.stats.add("retried")
        elif r.kind == plan.PAUSE:
            # 429 from the provider pauses the channel; "paused" (it was) and "late" (missed its slot)
            # only put the delivery back in the queue. None of these counts as an attempt.
            wait = max(0.0, r.retry_after if r.retry_after is not None else 1.0)
            until = time.time() + wait
            if r.error_code not in ("paused", "late"):  # the provider's 429 (or WhatsApp's 63018), or refused credentials
                if until > self._paused_until[channel]:
                    self._paused_until[channel] = until
                    if r.cause:
                        log.error("%s is paused for %.0f s: %s", channels.label(channel), wait, r.cause)
                    else:
                        log.warning("%s asked us to wait %.0f s (429): pausing the channel", channel, wait)
                if r.cause:
                    self.stats.unavailable[channel] = r.cause
                effect = ("pause", channel, until)
                self.stats.add("paused")
            out["status"], out["due_at"], out["attempts_delta"] = "pending", now + timedelta(seconds=wait), -1
        if out["due_at"] is None:
            out["due_at"] = now  # unchanged meaning for final rows; keeps the executemany uniform
        self.stats.add(out["status"] if out["status"] != "pending" else "requeued")
        self._buffer.append((out, effect))

    # --- writing outcomes ------------------------------------------------------------------------

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.o.flush_interval if self._down_since is None else self.db_retry)
            try:
                await self.flush()
            except Exception:
                log.exception("writing outcomes failed: stopping (the deliveries stay `sending` until their "
                              "lease ends, then `unknown`)")
                self.stop.set()
                raise

    async def flush(self) -> bool:
        """Write the outcomes gathered so far, then apply the status callbacks that came before the
        SMS they report was written; False when the database is unavailable (what is left is kept and
        written by a later flush, in the same order)."""
        async with self._flush_lock:
            if self._buffer:
                batch, self._buffer = self._buffer, []
                if await self._db(self._write, batch, pause=False) is _DOWN:
                    # One transaction: nothing of it was written, unless the connection died during
                    # COMMIT, in which case writing the same outcomes again changes nothing (each
                    # applies only to the claim it reports on; see sql.record_outcomes).
                    self._buffer[:0] = batch
                    return False
                self._unswept |= any(o["status"] == "sent" and channels.get(o["channel"]).status_callbacks
                                     for o, _ in batch)
            if self._unswept:
                # After the commit above: a callback that kept its status before it is applied here;
                # one that keeps it later finds the SID itself (bots.broadcasts.record_status).
                if await self._db(self._apply_early, pause=False) is _DOWN:
                    return False
                self._unswept = False
            return True

    async def _last_flush(self) -> None:
        """Before exiting: write what is left, waiting up to ``last_write_patience`` for the database."""
        deadline = time.monotonic() + self.last_write_patience
        while not await self.flush():
            if time.monotonic() >= deadline:
                if self._buffer:
                    log.error("the database is still unavailable: %d outcomes were not written; those deliveries"
                              " stay `sending` until their lease ends, then `unknown` (never resent)",
                              len(self._buffer))
                # the status callbacks kept for the SIDs written are applied by the next worker's sweep
                return
            await asyncio.sleep(self.db_retry)

    def _apply_early(self) -> None:
        with self.rt.db.uow() as uow:
            sql.apply_early_statuses(uow.session, self.rt.now())
            uow.commit()

    def _write(self, batch: list[tuple[dict, tuple]]) -> None:
        now = self.rt.now()
        with self.rt.db.uow() as uow:
            s = uow.session
            pauses = [e for _, e in batch if e and e[0] == "pause"]
            for _, ch, until in pauses:
                sql.pause_channel(s, ch, until)
            sql.record_outcomes(s, [o for o, _ in batch], now)
            for _, e in batch:
                if e and e[0] == "opt_out":
                    sql.opt_out_member(s, e[1], e[2], e[4], now, e[3])
                elif e and e[0] == "unreachable":
                    sql.mark_unreachable(s, e[1], now)
            uow.commit()


# --- entry points for the CLI and the staff console ---------------------------------------------

def make_senders(rt: Runtime, names: tuple[str, ...] | None = None, concurrency: int = 500,
                 required: bool = False) -> dict[str, Sender]:
    """A sender per configured channel (all of them, or those ``names``). Unconfigured channels are
    left out (their rows wait), or, with ``required``, reported as an error naming the missing
    settings."""
    senders: dict[str, Sender] = {}
    problems = []
    for channel in channels.channels():
        if names is not None and channel.name not in names:
            continue
        try:
            senders[channel.name] = channel.sender(rt.settings, concurrency)
        except channels.NotConfigured as exc:
            problems.append((channel.name, str(exc)))
    if required and problems:
        raise plan.BroadcastError("; ".join(p for _, p in problems))
    for name, p in problems:
        with rt.db.reader() as uow:
            waiting = sql.waiting_on(uow.session, name)
        label = channels.label(name)
        if waiting:  # an operator's mistake to fix: messages are queued that this worker will not send
            log.warning("%s: %s %s message%s wait%s until it is set", p, f"{waiting:,}", label,
                        "" if waiting == 1 else "s", "s" if waiting == 1 else "")
        else:
            log.info("%s: this worker sends no %s messages (none is queued)", p, label)
    return senders


def run_worker(rt: Runtime, options: Options, senders: dict[str, Sender] | None = None,
               on_progress: Callable[[Stats], Awaitable[None] | None] | None = None,
               every: float = 0.5) -> Stats:
    """Run a worker to completion (``drain``) or until SIGTERM/SIGINT, in a fresh event loop."""
    senders = senders if senders is not None else make_senders(rt, concurrency=options.concurrency)
    if not senders:
        raise plan.BroadcastError("no channel is configured: set the Twilio and/or Telegram settings")

    async def main() -> Stats:
        # Database calls run in threads beside a busy event loop; the default 5 ms GIL hand-over would
        # add that much to every statement of a claim.
        sys.setswitchinterval(0.0005)
        worker = Worker(rt, senders, options)
        if on_progress is None:
            return await worker.run()

        async def ticker():
            while True:
                res = on_progress(worker.stats)
                if asyncio.iscoroutine(res):
                    await res
                await asyncio.sleep(every)

        tick = asyncio.create_task(ticker())
        try:
            return await worker.run()
        finally:
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick

    return asyncio.run(main())
