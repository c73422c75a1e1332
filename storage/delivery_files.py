"""Delivery package PDFs a worker makes for the console: the request, a worker's claim (a conditional
UPDATE: any number of workers on any number of hosts, on SQLite and PostgreSQL alike), the pieces
written as pages are finished, and what the purge and an erasure delete."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from storage.models import DeliveryFile, DeliveryFileChunk


def add(session: Session, *, campaign: str, state: str | None, names: str, language: str, listed: int,
        requested_by: str, now: datetime) -> int:
    row = DeliveryFile(campaign=campaign, state=state, names=names, language=language, listed=listed,
                       requested_by=requested_by, requested_at=now, status="queued", attempt=0, size=0)
    session.add(row)
    session.flush()
    return row.id


def get(session: Session, file_id: int) -> DeliveryFile | None:
    return session.get(DeliveryFile, file_id)


def recent(session: Session, campaign: str, since: datetime, limit: int = 10) -> list[DeliveryFile]:
    return list(session.scalars(select(DeliveryFile).where(DeliveryFile.campaign == campaign,
                                                           DeliveryFile.requested_at >= since)
                                .order_by(DeliveryFile.id.desc()).limit(limit)))


def claim(session: Session, now: datetime, stale_before: datetime) -> DeliveryFile | None:
    """The oldest file waiting for a worker, or one whose worker stopped writing before ``stale_before``
    (it died): marked `making` under a new attempt number, its earlier pieces deleted. None when there
    is nothing to make, or another worker claimed the same file first."""
    candidate = session.execute(
        select(DeliveryFile.id, DeliveryFile.attempt)
        .where(or_(DeliveryFile.status == "queued",
                   (DeliveryFile.status == "making") & (DeliveryFile.heartbeat_at < stale_before)))
        .order_by(DeliveryFile.id).limit(1)).first()
    if candidate is None:
        return None
    file_id, attempt = candidate
    won = session.execute(update(DeliveryFile)
                          .where(DeliveryFile.id == file_id, DeliveryFile.attempt == attempt)
                          .values(status="making", attempt=attempt + 1, heartbeat_at=now, size=0, error=None)
                          .execution_options(synchronize_session=False)).rowcount
    if won != 1:
        return None
    session.execute(delete(DeliveryFileChunk).where(DeliveryFileChunk.file_id == file_id))
    session.flush()
    return session.get(DeliveryFile, file_id, populate_existing=True)


def add_chunk(session: Session, file_id: int, attempt: int, seq: int, data: bytes, now: datetime) -> bool:
    """Write one piece, if this attempt still holds the file (False: another worker took it over)."""
    held = session.execute(update(DeliveryFile)
                           .where(DeliveryFile.id == file_id, DeliveryFile.attempt == attempt,
                                  DeliveryFile.status == "making")
                           .values(heartbeat_at=now, size=DeliveryFile.size + len(data))
                           .execution_options(synchronize_session=False)).rowcount == 1
    if held:
        session.add(DeliveryFileChunk(file_id=file_id, seq=seq, data=data))
    return held


def end(session: Session, file_id: int, attempt: int, status: str, now: datetime, error: str | None = None) -> bool:
    """`ready`, `failed` (with the reason) or back to `queued` (a worker stopping mid-way)."""
    return session.execute(update(DeliveryFile)
                           .where(DeliveryFile.id == file_id, DeliveryFile.attempt == attempt,
                                  DeliveryFile.status == "making")
                           .values(status=status, finished_at=now if status != "queued" else None, error=error,
                                   heartbeat_at=None if status == "queued" else now)
                           .execution_options(synchronize_session=False)).rowcount == 1


def chunk_count(session: Session, file_id: int) -> int:
    return session.scalar(select(func.count()).select_from(DeliveryFileChunk)
                          .where(DeliveryFileChunk.file_id == file_id)) or 0


def chunk(session: Session, file_id: int, seq: int) -> bytes | None:
    return session.scalar(select(DeliveryFileChunk.data).where(DeliveryFileChunk.file_id == file_id,
                                                                DeliveryFileChunk.seq == seq))


def purge(session: Session, before: datetime | None = None) -> int:
    """Delete the files asked for before ``before`` (all of them when None); their pieces go with them
    (ON DELETE CASCADE, SQLite's foreign keys being on)."""
    stmt = delete(DeliveryFile)
    if before is not None:
        stmt = stmt.where(DeliveryFile.requested_at < before)
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount or 0
