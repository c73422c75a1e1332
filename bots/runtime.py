"""What a process builds once at start-up: settings, database, campaign catalog, ZIP data, engine.

The web app, the CLI and the workers each make one Runtime; nothing here runs at import time. The
catalog and the engine built on it change while the process runs (staff edit campaigns: see
bots/catalog.py): they are one immutable ``Live`` value, replaced whole, so a request that reads
``rt.engine`` gets an engine and its catalog from the same version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from bots import catalog as catalogs
from bots.engine import Engine
from bots.zips import ZipDirectory
from config.campaigns import Catalog
from config.settings import Settings
from storage.uow import Database

_ZIPS: ZipDirectory | None = None


def zip_directory() -> ZipDirectory:
    """The ZIP table is read-only data (seconds to load): one copy per process, loaded on first use
    or by ``.load()`` at start-up."""
    global _ZIPS
    if _ZIPS is None:
        _ZIPS = ZipDirectory()
    return _ZIPS


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Live:
    catalog: Catalog
    engine: Engine
    version: int | None  # the database's catalog version; None: not from the database (yet)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    zips: ZipDirectory
    live: Live
    clock: Callable[[], datetime] = field(default=utcnow)
    _swap: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(cls, settings: Settings | None = None, db: Database | None = None,
              catalog: Catalog | None = None) -> "Runtime":
        """Without ``catalog``, the database's campaigns (seeded from the campaign file when it has
        none); a ``catalog`` given is used as it is (tests, benchmarks) until a change is loaded."""
        settings = settings or Settings.from_env()
        zips = zip_directory()
        db = db or Database(settings.database_url)
        version = None
        if catalog is None:
            catalog, version = catalogs.load(db, settings.campaigns_path, utcnow())
        return cls(settings, db, zips, Live(catalog, Engine(catalog, zips), version))

    @property
    def catalog(self) -> Catalog:
        return self.live.catalog

    @property
    def engine(self) -> Engine:
        return self.live.engine

    def use(self, catalog: Catalog, version: int) -> bool:
        """Run on ``catalog`` from now on, unless this process already runs on that version or a later
        one (the watcher and an edit made in this process may both bring one). True when swapped."""
        with self._swap:
            if self.live.version is not None and version <= self.live.version:
                return False
            self.live = Live(catalog, Engine(catalog, self.zips), version)
            return True

    def now(self) -> datetime:
        return self.clock()
