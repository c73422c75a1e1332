"""What a process builds once at start-up: settings, database, campaign catalog, ZIP data, engine.

The web app, the CLI and the workers each make one Runtime; nothing here runs at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from bots.engine import Engine
from bots.zips import ZipDirectory
from config.campaigns import Catalog, load_catalog
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


@dataclass
class Runtime:
    settings: Settings
    db: Database
    catalog: Catalog
    zips: ZipDirectory
    engine: Engine
    clock: Callable[[], datetime] = field(default=utcnow)

    @classmethod
    def build(cls, settings: Settings | None = None, db: Database | None = None,
              catalog: Catalog | None = None) -> "Runtime":
        settings = settings or Settings.from_env()
        catalog = catalog or load_catalog(settings.campaigns_path)
        zips = zip_directory()
        db = db or Database(settings.database_url)
        return cls(settings, db, catalog, zips, Engine(catalog, zips))

    def now(self) -> datetime:
        return self.clock()
