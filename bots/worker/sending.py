"""One delivery: render the message, call the channel's sender at its slot, and turn the provider's
answer into an outcome (sent, opted out, unreachable, retry later, or a pause of the channel)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from bots import broadcast_plan as plan
from bots import channels
from bots.broadcasts import OUTSIDE_WINDOW, stop_notice, template_for
from storage import broadcasts as sql
from storage.uow import unavailable

log = logging.getLogger("firma.worker")


class Sending:
    """Part of ``Worker`` (bots.worker.loop), which holds the state these methods use."""

    def render(self, channel: str, row: sql.Claimed) -> str:
        b = self._templates[row.broadcast_id]
        lang = row.language if row.language in self.rt.catalog.languages else "en"
        template, text_lang = template_for(b, lang)
        return channels.get(channel).broadcast_text(template, row.name,
                                                    stop_notice(self.rt.catalog, b.campaign, text_lang))

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
