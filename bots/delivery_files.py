"""Delivery packages too large to make inside a web request: the console asks, a broadcast worker
(`firma worker`) makes the PDF and keeps it in the database, the console offers it for a week.

Why: a web worker streaming a million signers' PDF is busy for 15-25 s (two at once on two CPUs), close
to gunicorn's 30 s timeout, and meanwhile answers no member. Up to DIRECT_LIMIT signers the console
still streams the PDF at once (a few seconds at most).

A worker that dies mid-way stops writing; after STALE_AFTER another worker starts the file again. A
worker that stops (SIGTERM) hands the file back to the queue. Erasing a member drops every kept file
(they may list the member's name); `firma db purge` and the workers drop files older than a week
(bots.privacy.DELIVERY_FILES_KEPT_DAYS).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Generator, Iterator

from bots import delivery
from bots.privacy import DELIVERY_FILES_KEPT_DAYS
from bots.runtime import Runtime
from storage import delivery_files as store
from storage.models import DeliveryFile
from storage.uow import unavailable

log = logging.getLogger("firma.delivery")

DIRECT_LIMIT = 100_000  # signers the console streams itself: about 2.5 s of a web worker (bench/delivery.py)
CHUNK = 1 << 20  # bytes per stored piece
STALE_AFTER = timedelta(minutes=2)  # a making worker writes a piece every second or so
NO_WORKER_AFTER = timedelta(minutes=1)  # queued this long: the console asks whether a worker runs


STATUS_LABELS = {"queued": "waiting", "making": "being made", "ready": "ready", "failed": "failed"}


@dataclass(frozen=True)
class FileView:
    """What the console shows of a delivery file."""
    id: int
    campaign: str
    state: str | None
    names: str
    language: str
    listed: int
    requested_by: str
    requested_at: datetime
    status: str  # queued | making | ready | failed
    finished_at: datetime | None
    size: int
    error: str | None
    kept_until: datetime
    waiting_for_a_worker: bool

    @property
    def filename(self) -> str:
        return delivery.Request(self.campaign, self.state).filename

    @property
    def done(self) -> bool:
        return self.status in ("ready", "failed")

    @property
    def status_label(self) -> str:
        """The status in staff's words."""
        return STATUS_LABELS[self.status]


def _view(row: DeliveryFile, now: datetime) -> FileView:
    return FileView(row.id, row.campaign, row.state, row.names, row.language, row.listed, row.requested_by,
                    row.requested_at, row.status, row.finished_at, row.size, row.error,
                    row.requested_at + timedelta(days=DELIVERY_FILES_KEPT_DAYS),
                    row.status == "queued" and now - row.requested_at >= NO_WORKER_AFTER)


def made_by_a_worker(req: delivery.Request) -> bool:
    return req.listed > DIRECT_LIMIT


def request(rt: Runtime, req: delivery.Request, requested_by: str) -> int:
    """Queue the file for a worker; its id."""
    with rt.db.uow() as uow:
        file_id = store.add(uow.session, campaign=req.campaign, state=req.state, names=req.names,
                            language=req.language, listed=req.listed, requested_by=requested_by, now=rt.now())
        uow.commit()
    return file_id


def find(rt: Runtime, campaign: str, file_id: int) -> FileView | None:
    """The file, if it is this campaign's and still kept."""
    now = rt.now()
    with rt.db.snapshot() as uow:
        row = store.get(uow.session, file_id)
        if row is None or row.campaign != campaign or now - row.requested_at >= timedelta(days=DELIVERY_FILES_KEPT_DAYS):
            return None
        return _view(row, now)


def recent(rt: Runtime, campaign: str) -> list[FileView]:
    now = rt.now()
    with rt.db.snapshot() as uow:
        return [_view(row, now) for row in store.recent(uow.session, campaign, now - timedelta(days=DELIVERY_FILES_KEPT_DAYS))]


def content(rt: Runtime, file_id: int) -> Iterator[bytes]:
    """A ready file's bytes, one stored piece per read (each a short statement on the web path)."""
    with rt.db.snapshot() as uow:
        pieces = store.chunk_count(uow.session, file_id)
    for seq in range(pieces):
        with rt.db.snapshot() as uow:
            data = store.chunk(uow.session, file_id, seq)
        if data is None:  # purged or erased while it was being downloaded: stop short, never mix files
            return
        yield data


def make_next(rt: Runtime, stopping: Callable[[], bool] = lambda: False) -> int | None:
    """Make the next file waiting (or one a dead worker left); its id, or None when none waits.
    ``stopping()`` true mid-way hands the file back to the queue. The database going away is raised
    (the worker waits for it; the file is taken up again after STALE_AFTER); anything else marks the
    file failed, with one line saying why, and never stops the worker."""
    now = rt.now()
    with rt.db.uow() as uow:
        row = store.claim(uow.session, now, now - STALE_AFTER)
        if row is None:
            return None
        file_id, attempt = row.id, row.attempt
        asked = (row.campaign, row.state, row.names, row.language)
        uow.commit()
    log.info("delivery file #%d: making it (%s, names %s, %s)", file_id, asked[0], asked[2], asked[1] or "all states")
    try:
        req = delivery.check(rt, *asked)
        outcome = _write(rt, file_id, attempt, delivery.render(rt, req), stopping)
        error = None
    except delivery.DeliveryError as exc:
        outcome, error = "failed", str(exc)
    except Exception as exc:  # noqa: BLE001 - one file's bug must not stop the broadcasts
        if unavailable(exc):
            raise
        log.exception("delivery file #%d could not be made", file_id)
        outcome, error = "failed", f"it could not be made ({exc.__class__.__name__}); the worker's log says more"
    if outcome is None:  # another worker took it over
        return file_id
    with rt.db.uow() as uow:
        store.end(uow.session, file_id, attempt, outcome, rt.now(), error)
        uow.commit()
    log.info("delivery file #%d: %s%s", file_id, {"queued": "handed back to the queue"}.get(outcome, outcome),
             f" ({error})" if error else "")
    return file_id


def _write(rt: Runtime, file_id: int, attempt: int, pieces: Generator[bytes, None, None], stopping: Callable[[], bool]) -> str | None:
    """Store the PDF's bytes in CHUNK pieces: "ready", "queued" (stopping), or None (taken over)."""
    buffer = bytearray()
    seq = 0

    def flush() -> bool:
        nonlocal seq, buffer
        with rt.db.uow() as uow:
            held = store.add_chunk(uow.session, file_id, attempt, seq, bytes(buffer), rt.now())
            uow.commit()
        seq, buffer = seq + 1, bytearray()
        return held

    try:
        for piece in pieces:
            buffer += piece
            if len(buffer) >= CHUNK:
                if not flush():
                    return None
                if stopping():
                    return "queued"
        if buffer and not flush():
            return None
        return "ready"
    finally:
        pieces.close()  # ends its read transaction now, not when collected


def purge(rt: Runtime, now: datetime) -> int:
    """Drop the files asked for more than DELIVERY_FILES_KEPT_DAYS ago."""
    with rt.db.uow() as uow:
        dropped = store.purge(uow.session, now - timedelta(days=DELIVERY_FILES_KEPT_DAYS))
        uow.commit()
    return dropped
