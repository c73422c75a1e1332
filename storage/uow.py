"""The database handle a process makes once, and the unit of work each request or job uses."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.db import make_engine, make_sessionmaker, ping, read_only


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


class Database:
    """One engine and its session factories for the life of a process (an app, a worker, a command)."""

    def __init__(self, url: str, engine: Engine | None = None, **engine_kwargs):
        self.engine = engine or make_engine(url, **engine_kwargs)
        self.url = self.engine.url
        self._sessions = make_sessionmaker(self.engine)
        self._read_sessions = make_sessionmaker(read_only(self.engine))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions)

    def reader(self) -> UnitOfWork:
        """A unit of work for reads that may be long (exports); it does not block writers on SQLite."""
        return UnitOfWork(self._read_sessions)

    def healthy(self) -> bool:
        return ping(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()
