"""The database handle a process makes once, and the unit of work each request or job uses."""

from __future__ import annotations

import logging
import threading
from typing import Callable, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from storage.db import REQUEST_ANSWER_S, budget, did_not_answer, make_engine, make_sessionmaker, ping, read_only
from storage.inbound import Transaction, prepare as prepare_inbound


class UnitOfWork:
    """``with uow: ...; uow.commit()``; anything not committed is rolled back on exit."""

    session: Session

    def __init__(self, session_factory: sessionmaker[Session]):
        self._factory = session_factory

    def __enter__(self) -> "UnitOfWork":
        self.session = self._factory()
        return self

    def __exit__(self, *exc) -> None:
        self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()

    def inbound(self) -> Transaction:
        """This unit of work as the inbound hot path's transaction (storage.inbound.Transaction): the
        same database, used through the driver instead of a Session, for the statements every
        conversation message sends."""
        return Transaction(self._factory.kw["bind"])


T = TypeVar("T")
log = logging.getLogger(__name__)


# The errors that say the database cannot be used just now (down, restarting, its connection lost,
# SQLite locked past its timeout, every pooled connection busy): the web app answers them with 503.
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)
# Any error from the database or its driver (down, not migrated yet, a statement refused), or no pooled
# connection free in time: what a caller that can go on without the database catches (bots.catalog
# starts a process on the campaign file), without naming SQLAlchemy itself.
DATABASE_ERRORS = (DBAPIError, PoolTimeout)


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` is one of those (``UNAVAILABLE``, or a lost connection): worth trying again
    later, unlike a bug or a constraint, which would fail the same way again."""
    return isinstance(exc, UNAVAILABLE) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)


def retry_on_disconnect(work: Callable[[], T]) -> T:
    """Run ``work`` (one unit of work); when it failed because its connection was dead, run it once
    more on a fresh one. The pool does not ping a connection before each use (a round trip per
    request), so after a database restart the first use of each stale connection fails; SQLAlchemy
    then discards the whole pool, and the second attempt connects anew.

    Only for work that may safely run twice: a failed attempt committed nothing, unless the connection
    died during COMMIT itself, when it may have; the inbound message handlers claim the provider's
    message id in the same transaction, so a second attempt after such a commit replays the stored
    answer and changes nothing."""
    try:
        return work()
    except DBAPIError as exc:
        if not exc.connection_invalidated or did_not_answer(exc):  # a hung database: 503 now, not twice as late
            raise
        log.warning("database connection lost (%s); trying once more on a new one", exc.__class__.__name__)
    return work()


class Database:
    """One engine and its session factories for the life of a process (an app, a worker, a command)."""

    def __init__(self, url: str, engine: Engine | None = None, **engine_kwargs):
        self.engine = engine or make_engine(url, **engine_kwargs)
        self.url = self.engine.url
        self._sessions = make_sessionmaker(self.engine)
        self._read_sessions = make_sessionmaker(read_only(self.engine))
        self._snapshots = make_sessionmaker(self.engine.execution_options(isolation_level="AUTOCOMMIT"))
        self._health_guard = threading.Lock()
        self._health_check: _HealthCheck | None = None

    @classmethod
    def for_requests(cls, url: str) -> "Database":
        """The web app's database: no ping before each use of a pooled connection (one round trip per
        request less); a connection found dead fails its request with a 503, or, for an inbound SMS,
        the message is handled once more on a new one (retry_on_disconnect). The inbound hot path's
        statements are compiled here, at start-up, not in a process's first message. A database that
        does not answer within the web path's budget (storage.db.REQUEST_ANSWER_S) fails the request
        with a 503 instead of holding it."""
        database = cls(url, pool_pre_ping=False, answer_within=REQUEST_ANSWER_S)
        prepare_inbound(database.engine)
        return database

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions)

    def reader(self) -> UnitOfWork:
        """A unit of work for reads that may be long (exports); it does not block writers on SQLite."""
        return UnitOfWork(self._read_sessions)

    def snapshot(self) -> UnitOfWork:
        """A unit of work for one read statement, outside any transaction (no BEGIN, no ROLLBACK: on
        PostgreSQL one round trip instead of three). Each statement sees the latest committed data,
        so use it for single-statement reads only; never for writes."""
        return UnitOfWork(self._snapshots)

    def budget(self, seconds: float):
        """``with database.budget(25): ...``: a longer wait for work a person started and waits for,
        on the web path whose database budget is a few seconds (storage.db.budget)."""
        return budget(seconds)

    def healthy(self, within: float = 1.5) -> bool:
        """Whether the database answers a query within ``within`` seconds. The query goes on in a
        thread of its own when it takes longer (it ends by the engine's own limits), and while it
        does, the database counts as not answering, without a second query piling up behind it."""
        with self._health_guard:
            running = self._health_check
            if running is None or not running.thread.is_alive():
                running = self._health_check = _HealthCheck(self.engine)
        running.thread.join(within)
        return running.result is True

    def dispose(self) -> None:
        self.engine.dispose()


class _HealthCheck:
    """One ping of the database, in a daemon thread; ``result`` is None until it has answered."""

    def __init__(self, engine: Engine):
        self.result: bool | None = None
        self.thread = threading.Thread(target=self._run, args=(engine,), name="firma-healthz", daemon=True)
        self.thread.start()

    def _run(self, engine: Engine) -> None:
        self.result = ping(engine)
