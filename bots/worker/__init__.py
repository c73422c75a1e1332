"""The broadcast worker (bots.worker.loop), in rooms by purpose: claims, pacing, sending, outcomes."""

from bots.worker.loop import Options, Stats, Worker, make_senders, run_worker, worker_id

__all__ = ["Options", "Stats", "Worker", "make_senders", "run_worker", "worker_id"]
