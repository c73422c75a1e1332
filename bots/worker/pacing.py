"""The worker's pacing: each channel's rate shared through one throttle row, calls given slots spaced
by it, and the slots kept honest when the event loop runs late."""

from __future__ import annotations

import asyncio
import time

from storage import broadcasts as sql


class Pacing:
    """Part of ``Worker`` (bots.worker.loop), which holds the state these methods use."""

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
