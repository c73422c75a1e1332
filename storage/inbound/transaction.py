"""The inbound hot path's transaction: one pooled connection used through its driver, raising what
SQLAlchemy would raise."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from storage.db import begin_write, transaction_settings

if TYPE_CHECKING:
    from storage.inbound.sql import _Sql

log = logging.getLogger(__name__)


class Transaction:
    """One inbound message's transaction, on a connection checked out of the engine's pool and used
    through its driver (``raw``): ``with Transaction(engine) as tx: ...; tx.commit()``; what is not
    committed is rolled back when the block ends, and the connection goes back to the pool as it came
    (a connection that cannot be cleaned up is discarded instead).

    The transaction begins with its first statement (``begin``). On SQLite it begins as a writer
    (storage.db.begin_write: BEGIN IMMEDIATE after the queue for the database's writer). On PostgreSQL
    the connection is in the driver's autocommit mode, in which the server's transaction is the one
    this BEGIN opens, sent in a pipeline with the statements after it (psycopg would send its own and
    wait for it first); commit and rollback reach the server all the same, and the ordinary mode is
    restored before the connection goes back."""

    _session: Session | None = None
    _connection: Connection | None = None

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect
        self.pg = self.dialect.name == "postgresql"
        self.begun = False

    @classmethod
    def within(cls, session: Session) -> "Transaction":
        """The transaction of ``session``, for work that goes on with the ORM after the hot path's
        statements (a Telegram contact): its connection, on PostgreSQL in the driver's autocommit mode
        as above (SQLAlchemy restores the mode when the connection goes back). Not a context manager:
        the session's unit of work ends it; commit and rollback are the session's."""
        pg = session.get_bind().dialect.name == "postgresql"
        connection = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"} if pg else None)
        tx = cls(connection.engine)
        tx._session, tx._connection = session, connection
        tx.raw = connection.connection.dbapi_connection
        tx.begun = not pg  # SQLAlchemy's begin (storage.db) sent BEGIN IMMEDIATE on SQLite
        return tx

    def __enter__(self) -> "Transaction":
        dialect = self.dialect
        try:
            self._pooled = self.engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:  # no connection to be had: as SQLAlchemy's connect() raises
            raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect,
                                      connection_invalidated=dialect.is_disconnect(exc, None, None)) from exc
        self.raw = self._pooled.dbapi_connection
        if self.pg:
            try:
                with _driver(self):
                    self.raw.autocommit = True
            except BaseException:
                self._pooled.close()
                raise
        return self

    def begin(self) -> None:
        """BEGIN, unless the transaction has begun (call it inside ``_driver``)."""
        if self.begun:
            return
        if self.pg:
            log.debug("BEGIN")
            self.raw.execute("BEGIN")
            settings = transaction_settings(self.raw)  # the web path's timeouts, behind a pooler
            if settings:
                self.raw.execute(settings)
        else:
            log.debug("BEGIN IMMEDIATE")
            begin_write(self.raw)
        self.begun = True

    def commit(self) -> None:
        self._end("commit")

    def rollback(self) -> None:
        self._end("rollback")

    def _end(self, how: str) -> None:
        """COMMIT or ROLLBACK: the session's (``within``), else the driver's."""
        self.begun = False
        if self._session is not None:
            getattr(self._session, how)()
            return
        with _driver(self):
            getattr(self.raw, how)()

    def invalidate(self, exc: BaseException) -> None:
        if self._connection is not None:
            self._connection.invalidate(exc)
        else:
            self._pooled.invalidate(exc)

    def __exit__(self, *exc_info) -> None:
        try:
            if self._pooled.is_valid:
                self.raw.rollback()  # nothing to do after a commit
                if self.pg:
                    self.raw.autocommit = False
        except Exception as exc:  # a connection that died meanwhile: not back into the pool
            log.warning("inbound transaction: the connection could not be cleaned up (%s); discarded",
                        exc.__class__.__name__)
            self._pooled.invalidate(exc)
        finally:
            self._pooled.close()



@contextmanager
def _driver(conn: Transaction):
    """The driver's connection under ``conn`` (in its transaction), raising what SQLAlchemy would raise:
    a driver error becomes SQLAlchemy's (OperationalError, IntegrityError, ...), and a lost connection
    is invalidated, with the pool behind it, as SQLAlchemy does (so a retry connects anew, and the web
    app answers 503 rather than 500)."""
    raw = conn.raw
    try:
        yield raw
    except conn.dialect.loaded_dbapi.Error as exc:
        dialect = conn.dialect
        lost = dialect.is_disconnect(exc, raw, None)
        if lost:
            conn.invalidate(exc)
            conn.engine.dispose(close=False)  # the other pooled connections may be dead too: new ones
        raise DBAPIError.instance(None, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=lost,
                                  dialect=dialect) from exc


def _execute(raw, sql: _Sql, given: dict):
    """One statement on the driver's connection (queued, inside a pipeline); logged at DEBUG, as SQLAlchemy's
    echo would (config.redaction masks the phone numbers in the parameters)."""
    params = sql.params(given)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s\n%r", sql.text, params)
    return raw.execute(sql.text, params)


def _run(conn: Transaction, sql: _Sql, params: dict):
    with _driver(conn) as raw:
        conn.begin()
        return _execute(raw, sql, params)
