"""The broadcast worker: claim due deliveries, mark them `sending` (committed), call the provider,
record the outcome. Any number of workers on any number of hosts share the work through the
database (PostgreSQL: FOR UPDATE SKIP LOCKED) and share each channel's rate through one throttle row.

Inside a worker everything is asyncio: provider calls run concurrently (bounded by ``concurrency``),
each at its reserved rate slot; database calls run in threads so they never stall the calls in flight;
outcomes are written in batches.

Crash safety: a row is `sending` in the database before its provider call starts, with a lease, and
handed over (committed) just before the call. A worker that dies leaves it `sending`; when the lease
runs out any worker queues it again if it was never handed over, else turns it into `unknown`, which
is reported and never resent by itself. So a crash can lose a message's outcome, never send it twice.

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
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from bots import broadcast_plan as plan
from bots import channels
from bots.channels import Sender
from bots.runtime import Runtime
from bots.worker.claims import _DOWN, Claims
from bots.worker.outcomes import Outcomes
from bots.worker.pacing import Pacing
from bots.worker.sending import Sending
from storage import broadcasts as sql
from storage.models import Broadcast
from storage.uow import unavailable

log = logging.getLogger("firma.worker")

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


class Worker(Claims, Pacing, Sending, Outcomes):
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
            scheduler = files = None
            if self.o.broadcast_id is None:  # the foreground `firma broadcast` sends its own, already queued
                await self._db(self._release_scheduled)  # before the first claims (and a drain's check)
                scheduler = asyncio.create_task(self._scheduler())
                files = asyncio.create_task(self._delivery_files())
            try:
                await asyncio.gather(*(self._channel_loop(ch, stack) for ch in self.senders))
                if files is not None and self.o.drain:
                    await files  # a draining worker makes the files waiting too
            finally:
                self.stop.set()
                if files is not None:  # a file being made goes back to the queue at its next piece
                    for failure in await asyncio.gather(files, return_exceptions=True):
                        if isinstance(failure, Exception):
                            log.error("delivery files: %r", failure)
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

    async def _delivery_files(self) -> None:
        """Delivery packages the console asked for (bots.delivery_files), one at a time, in a thread
        beside the sending; the expired ones dropped every hour. A draining worker ends when none waits."""
        from bots import delivery_files

        purged_at = -math.inf
        while not self.stop.is_set():
            if time.monotonic() - purged_at >= 3600 and await self._db(delivery_files.purge, self.rt,
                                                                       self.rt.now()) is not _DOWN:
                purged_at = time.monotonic()
            made = await self._db(delivery_files.make_next, self.rt, self.stop.is_set)
            if made is None and self.o.drain:
                return
            if made is None:
                await self._sleep(self.o.poll)

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
                reaped = await self._db(self._reap)
                if reaped is _DOWN:
                    continue
                requeued, unknown = reaped
                if requeued:
                    log.warning("%d deliveries claimed by a worker that stopped before handing them to the "
                                "provider: queued again", requeued)
                if unknown:
                    log.warning("%d deliveries were with the provider when their worker stopped: marked unknown "
                                "(they may have been sent; never resent)", unknown)
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
