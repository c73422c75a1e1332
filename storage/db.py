"""Engines, sessions and migrations. Made by the caller (the app factory, a CLI command), never at import."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from config.settings import database_pooler

try:
    import fcntl  # POSIX; elsewhere processes meet SQLite's own busy handler
except ImportError:  # pragma: no cover
    fcntl = None

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Seconds to wait for a PostgreSQL connection: when the server is gone, a webhook answers 503 after
# this long instead of hanging until the provider's own timeout (Twilio gives up after 15 s).
PG_CONNECT_TIMEOUT_S = 3
# Pooled PostgreSQL connections are replaced after this many seconds, before idle-connection killers
# (firewalls, PgBouncer's server_lifetime) get them. Long-lived commands (workers, polling) ping each
# connection before use; the web app does not (Database.for_requests: the ping cost a round trip per
# request): there a connection that died since its last use fails its first statement, SQLAlchemy
# discards the whole pool, and the request gets a 503 (the inbound SMS webhook retries once first:
# storage.uow.retry_on_disconnect).
PG_POOL_RECYCLE_S = 600
# A database host that vanished (a failover, a pulled cable: no reset comes back) would hold a statement
# in flight for the kernel's retransmission timeout, about 15 minutes; a broadcast worker would stall
# that long. libpq's TCP options end such a connection after 10 s of unacknowledged data, and probe idle
# pooled ones every 10 s after 30 s of quiet. A slow query is not affected: the server's kernel
# acknowledges what it receives at once. Options given in the database URL win.
PG_TCP_OPTIONS = {"tcp_user_timeout": 10_000, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                  "keepalives_count": 3}
# The web path's budget. A server (or pooler) that hangs rather than refusing keeps the connection open
# and its kernel acknowledging, so none of the above ends the wait: without a limit of our own a webhook
# would wait until gunicorn killed the worker (30 s, longer than Twilio's 15). On the request engine
# (storage.uow.Database.for_requests) every wait for the server's answer ends after REQUEST_ANSWER_S:
# the connection is closed and the request answers 503. Before that, the server itself cancels a
# statement after REQUEST_STATEMENT_TIMEOUT_MS, or a wait for a lock (a migration's, say) after
# REQUEST_LOCK_TIMEOUT_MS, so a slow server frees the connection cleanly (also a 503). A longer task
# on the request path (the console's broadcast creation) asks for its own budget (``budget``).
REQUEST_ANSWER_S = 5.0
REQUEST_STATEMENT_TIMEOUT_MS = 4_000
REQUEST_LOCK_TIMEOUT_MS = 2_000


def is_sqlite(url_or_engine) -> bool:
    url = url_or_engine.url if isinstance(url_or_engine, Engine) else make_url(str(url_or_engine))
    return url.get_backend_name() == "sqlite"


def normalize_url(url: str) -> str:
    """Accept the URLs operators paste (postgres://, postgresql://) and use psycopg 3 for them."""
    u = make_url(url)
    if u.drivername in ("postgres", "postgresql"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def url_password(url: str) -> str | None:
    """The password in the database URL ``url``, decoded (as the server knows it), for the logs to
    redact (config.redaction.secrets_of); None when it has none or the URL does not parse."""
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except (ArgumentError, ValueError):  # an unparsable URL has no password we could find
        return None


_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _sqlite_write_lock(path: str) -> threading.Lock:
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(str(Path(path).resolve()), threading.Lock())


class _QueuedWriterConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions queue for the database's single writer.

    SQLite has one writer; a connection waiting for it in BEGIN IMMEDIATE polls (the busy handler sleeps
    1, 2, 5 ... 100 ms between tries), so under several threads and processes a waiting request can lose
    the lock to others again and again (hundreds of ms at p99). Here threads of one process first queue
    on a lock per database file, handed over the moment COMMIT or ROLLBACK is done; the one thread per
    process at the head of that queue then takes an advisory lock (flock) on a file beside the database,
    which other processes on the host (gunicorn workers, the CLI) take too, polling every fraction of a
    millisecond; only then BEGIN IMMEDIATE, which no longer waits. Waiting longer than the busy timeout
    fails as SQLite would ("database is locked"). A process that dies loses its flock with it."""

    write_lock: threading.Lock | None = None
    lock_file: str | None = None
    holds_write_lock = False
    _lock_fd: int | None = None

    def acquire_write_lock(self) -> None:
        if self.write_lock is None or self.holds_write_lock:
            return
        deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
        if not self.write_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise sqlite3.OperationalError("database is locked")
        try:
            self._flock(deadline)
        except BaseException:
            self.write_lock.release()
            raise
        self.holds_write_lock = True

    def _flock(self, deadline: float) -> None:
        if self.lock_file is None:
            return
        if self._lock_fd is None:
            try:
                self._lock_fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:  # not ours to open (another user's file, a read-only folder): SQLite's own wait
                self.lock_file = None
                return
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    def release_write_lock(self) -> None:
        if self.holds_write_lock:
            self.holds_write_lock = False
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self.write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_write_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_write_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_write_lock()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def begin_write(dbapi_connection, begin=None) -> None:
    """Begin a SQLite write transaction: queue for the database's writer (_QueuedWriterConnection),
    then BEGIN IMMEDIATE (by ``begin``, else on the driver's connection), which then has no one left to
    wait for. The queue is left again if BEGIN fails."""
    queued = isinstance(dbapi_connection, _QueuedWriterConnection)
    if queued:
        dbapi_connection.acquire_write_lock()  # threads of this process queue here, then processes
    try:
        if begin is None:
            dbapi_connection.execute("BEGIN IMMEDIATE")
        else:
            begin()
    except BaseException:
        if queued:
            dbapi_connection.release_write_lock()
        raise


_budget = threading.local()


@contextmanager
def budget(seconds: float) -> Iterator[None]:
    """In this thread, for the block: the request engine waits up to ``seconds`` for each answer and
    its statements may run that long (each transaction begun inside the block), instead of the web
    path's few seconds. For long work a person started and waits for (the console's broadcast
    creation); keep it below gunicorn's worker timeout."""
    before = getattr(_budget, "seconds", None)
    _budget.seconds = seconds
    try:
        yield
    finally:
        _budget.seconds = before


def _timeouts_sql(statement_ms: int, lock_ms: int) -> str:
    """The statement that sets the server's timeouts for the current transaction only (``SET LOCAL``
    as a function: one statement for both, with bind-free literals a pooler can pass along)."""
    return (f"SELECT set_config('statement_timeout', '{int(statement_ms)}', true), "
            f"set_config('lock_timeout', '{int(lock_ms)}', true)")


def transaction_settings(dbapi_connection) -> str | None:
    """What a transaction on this driver connection must send right after BEGIN, or None: the request
    engine's timeouts, per transaction when a pooler stands between (no setting survives a transaction
    there) or when this thread has a longer ``budget``."""
    seconds = getattr(_budget, "seconds", None)
    if seconds is not None and getattr(dbapi_connection, "answer_within", None) is not None:
        return _timeouts_sql(int(seconds * 1000), int(seconds * 1000))
    return getattr(dbapi_connection, "local_settings", None)


@lru_cache(maxsize=1)
def _deadline_connection_class():
    """psycopg's Connection, with a limit on each wait for the server's answer (``answer_within``
    seconds, or this thread's ``budget``; None: no limit). Past it the connection is closed and a
    psycopg OperationalError raised, which SQLAlchemy (and storage.inbound) take for a lost connection:
    the pool discards it, and the web app answers 503."""
    import psycopg

    expired = getattr(psycopg.errors, "_WaitTimeout", psycopg.errors.OperationalError)  # what wait(timeout=) raises

    class DeadlineConnection(psycopg.Connection):
        answer_within: float | None = None
        local_settings: str | None = None

        def wait(self, gen, interval=0.1, timeout=None):
            limit = self.answer_within and (getattr(_budget, "seconds", None) or self.answer_within)
            if not limit:  # an engine off the web path (the worker, the commands): no limit
                return super().wait(gen, interval=interval, timeout=timeout)
            try:
                return super().wait(gen, interval=interval, timeout=limit if timeout is None else min(timeout, limit))
            except expired:
                if self.closed:
                    raise
                self.pgconn.finish()  # mid-statement: the connection cannot be used again
                error = psycopg.OperationalError(f"the database did not answer within {limit:g} s")
                error.firma_no_answer = True  # (did_not_answer) not worth a second try in this request
                raise error from None

    return DeadlineConnection


def did_not_answer(exc: BaseException) -> bool:
    """Whether ``exc`` (SQLAlchemy's, or the driver's) is the web path's limit running out: the
    database hangs, and trying again within the same request would only double the wait."""
    return bool(getattr(getattr(exc, "orig", exc), "firma_no_answer", False))


def make_engine(url: str, pooler: str | None = None, answer_within: float | None = None, **kwargs) -> Engine:
    """An engine for ``url``. ``pooler``: what stands between firma and PostgreSQL (config.settings.
    database_pooler; None: FIRMA_DATABASE_POOLER). ``answer_within``: the web path's budget (seconds;
    REQUEST_ANSWER_S above): each wait for the server is limited, and the server's statement and lock
    timeouts are set."""
    url = normalize_url(url)
    if is_sqlite(url):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False,
                                                  "factory": _QueuedWriterConnection}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_connection.cursor()
            if engine.url.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
                dbapi_connection.write_lock = _sqlite_write_lock(engine.url.database)
                if fcntl is not None:
                    dbapi_connection.lock_file = str(Path(engine.url.database).resolve()) + "-writer.lock"
            cur.execute("PRAGMA foreign_keys=ON")
            # Deleted and overwritten rows are zeroed, not left in free space for anyone with the file
            # (an erased member's number and name); the cost is a write of what a delete frees.
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # A write transaction takes SQLite's single write lock up front, so two answers from one
            # member are serialised instead of failing with "database is locked" at commit.
            options = conn.get_execution_options()
            if options.get("isolation_level") == "AUTOCOMMIT":
                return  # single-statement reads (Database.snapshot): no transaction at all
            mode = options.get("sqlite_begin", "IMMEDIATE")
            if mode == "IMMEDIATE":  # BEGIN through SQLAlchemy, so that its errors come out as SQLAlchemy's
                begin_write(conn.connection.dbapi_connection, lambda: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            else:
                conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", PG_POOL_RECYCLE_S)
    given = make_url(url).query
    defaults = {k: v for k, v in {"connect_timeout": PG_CONNECT_TIMEOUT_S, **PG_TCP_OPTIONS}.items() if k not in given}
    kwargs["connect_args"] = {**defaults, **kwargs.get("connect_args", {})}
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_timeout", 10)  # every connection busy that long: 503, within Twilio's 15 s
    pooler = database_pooler() if pooler is None else pooler
    if pooler == "transaction":
        # A transaction pooler may run each transaction on another server connection: a statement
        # psycopg prepared on one (after prepare_threshold uses) is missing on the next, or its name is
        # taken there ("_pg3_0" already exists / does not exist). Prepare nothing on the server then.
        kwargs["connect_args"].setdefault("prepare_threshold", None)
    local_settings = None
    if answer_within is not None:
        if pooler == "none" and "options" not in given:
            # straight to PostgreSQL: set once per connection, at no cost per transaction (a pooler
            # refuses the option: "unsupported startup parameter: options", the sign that
            # FIRMA_DATABASE_POOLER is missing)
            kwargs["connect_args"].setdefault(
                "options", f"-c statement_timeout={REQUEST_STATEMENT_TIMEOUT_MS} -c lock_timeout={REQUEST_LOCK_TIMEOUT_MS}")
        else:  # a pooler does not keep session settings (nor pass them at connect): each transaction sets them
            local_settings = _timeouts_sql(REQUEST_STATEMENT_TIMEOUT_MS, REQUEST_LOCK_TIMEOUT_MS)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, _record, cargs, cparams):
        connection = _deadline_connection_class().connect(*cargs, **cparams)
        connection.answer_within, connection.local_settings = answer_within, local_settings
        return connection

    if answer_within is not None:
        @event.listens_for(engine, "begin")
        def _per_transaction(conn):
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                return  # single statements outside a transaction: the connection's wait limit holds
            statement = transaction_settings(conn.connection.dbapi_connection)
            if statement:
                conn.exec_driver_sql(statement)

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_only(engine: Engine) -> Engine:
    """An engine view whose transactions do not take SQLite's write lock (long reads, exports)."""
    return engine.execution_options(sqlite_begin="DEFERRED") if is_sqlite(engine) else engine


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def _first_line(exc: BaseException) -> str:
    """The driver's own words, first line only (SQLAlchemy adds the statement and a link below)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0].strip() if text else orig.__class__.__name__


_DRIVERS = {"psycopg", "psycopg2", "pg8000", "asyncpg", "MySQLdb", "pymysql", "mysql", "oracledb", "cx_Oracle",
            "pyodbc", "pymssql"}  # DBAPI modules a URL can ask for


def describe_error(exc: BaseException, url: str) -> str | None:
    """One line saying what is wrong with opening the database ``url`` and what to do, or None when
    ``exc`` is not such a problem. Never the password."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    driver_missing = isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in _DRIVERS
    if isinstance(exc, NoSuchModuleError) or driver_missing:
        return (f"the database driver FIRMA_DATABASE_URL asks for is not installed ({_first_line(exc)}): use "
                "postgresql+psycopg://... (psycopg is installed with firma) or sqlite:///firma.db")
    if isinstance(exc, ArgumentError) or (isinstance(exc, ValueError) and "URL" in str(exc)):
        return ("FIRMA_DATABASE_URL is not a database URL: use sqlite:///firma.db or "
                "postgresql+psycopg://user:password@host/dbname")
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001
        return None
    if isinstance(exc, (DBAPIError, sqlite3.Error)):
        if parsed.get_backend_name() == "sqlite":
            folder = Path(parsed.database or ".").resolve().parent
            if not folder.is_dir():
                return (f"cannot open the SQLite database {parsed.database}: the folder {folder} does not exist "
                        "(create it, or set FIRMA_DATABASE_URL)")
            return f"cannot open the SQLite database {parsed.database}: {_first_line(exc)}"
        where = parsed.render_as_string(hide_password=True)
        return (f"cannot reach the database at {where}: {_first_line(exc)} (check FIRMA_DATABASE_URL and that the "
                "server is running)")
    return None


class SchemaNotReady(RuntimeError):
    """The database cannot be used as it is; the message says what the operator should do."""


def prepare(url: str) -> None:
    """Make the database usable by a command: a local SQLite file is created or migrated (as
    `firma serve` does); any other database must already be at the latest migration."""
    if is_sqlite(url):
        upgrade(url)
        return
    engine = make_engine(url)
    try:
        current = current_revision(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise SchemaNotReady(describe_error(exc, url) or f"cannot reach the database: {_first_line(exc)}") from None
    finally:
        engine.dispose()
    if current != head_revision(url):
        raise SchemaNotReady("the database schema is not up to date: run `firma db upgrade` first")


def checkpoint(engine: Engine) -> None:
    """SQLite: copy the write-ahead log into the database file and empty it, so the old versions of
    pages it holds (rows just erased) leave the disk now rather than at the next checkpoint. Another
    process reading at that moment keeps the log; the next checkpoint empties it."""
    if not is_sqlite(engine):
        return
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except SQLAlchemyError:  # busy: the next automatic checkpoint does it
        pass


def ping(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except (SQLAlchemyError, OSError):
        return False
