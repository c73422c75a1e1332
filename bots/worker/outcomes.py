"""Writing outcomes: buffered and written in batches, kept while the database is away, and the
last ones written when the worker stops."""

from __future__ import annotations

import asyncio
import logging
import time

from bots import channels
from bots.worker.claims import _DOWN
from storage import broadcasts as sql

log = logging.getLogger("firma.worker")


class Outcomes:
    """Part of ``Worker`` (bots.worker.loop), which holds the state these methods use."""

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
