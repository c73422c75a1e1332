"""The catalog a process runs on: the campaigns in the database (the campaign file seeds an empty
one), loaded at start and kept current by ``CatalogWatcher``.

Every change to a campaign bumps the catalog version in the same transaction. A watcher thread in
each long-lived process (every gunicorn worker, ``firma worker``, ``firma telegram poll``) reads
that one number every ``WATCH_INTERVAL`` seconds, outside any request, and when it moved loads the
catalog and swaps it into the Runtime whole: no request waits for the database because of it, and
nothing is kept per connection (no LISTEN/NOTIFY), so it works through a transaction pooler such as
PgBouncer and across hosts.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from config.campaigns import Catalog, load_catalog, load_texts, parse_catalog
from storage import campaigns as store
from storage.uow import DATABASE_ERRORS, Database

if TYPE_CHECKING:
    from bots.runtime import Runtime

log = logging.getLogger("firma.catalog")

WATCH_INTERVAL = 2.0  # seconds: a change reaches every process within this plus one load
DATABASE_SOURCE = "the campaigns in the database"


@lru_cache(maxsize=1)
def system_texts():
    """config/texts: shipped with the code, so read once per process."""
    return load_texts()


def from_data(data: dict, texts: Mapping) -> Catalog:
    return parse_catalog(data, DATABASE_SOURCE, texts)


def read(db: Database, texts: Mapping) -> tuple[Catalog, int] | None:
    """(catalog, version) from the database; None before it is seeded. The version is read again after
    the rows: if a change committed in between (each statement sees the latest commit), read again."""
    for _ in range(5):
        with db.reader() as uow:
            got = store.read(uow.session)
            if got is None:
                return None
            version, data = got
            if store.version(uow.session) == version:
                return from_data(data, texts), version
    raise RuntimeError("the campaigns kept changing while being read")


def seed(db: Database, catalog: Catalog, now: datetime) -> bool:
    """Store ``catalog`` if the database has no campaigns yet (once: True only for the process that did)."""
    with db.uow() as uow:
        if not store.claim_seed(uow.session, catalog.organization, now):
            return False
        store.save_campaigns(uow.session, list(catalog.campaigns.values()), now)
        uow.commit()
    log.info("campaigns: the database had none; stored %d (%s)", len(catalog.campaigns),
             ", ".join(catalog.campaigns))
    return True


def seed_from_file(db: Database, campaign_file: Path | str, now: datetime) -> Catalog | None:
    """Seed an empty database from the campaign file: the catalog stored, or None when the database
    had campaigns already (the file is not read then: the database is the truth)."""
    with db.snapshot() as uow:
        if store.version(uow.session) is not None:
            return None
    catalog = load_catalog(campaign_file)
    if not seed(db, catalog, now):
        return None
    log.info("campaigns: from %s; from now on the database has them (`firma campaigns`)", campaign_file)
    return catalog


def load(db: Database, campaign_file: Path | str, now: datetime) -> tuple[Catalog, int | None]:
    """The catalog to start a process with: the database's, after seeding it from the campaign file
    when it has none. When the database cannot be read (down, or not migrated yet) the process starts
    on the campaign file, with no version, and its watcher loads the database's as soon as it answers
    (requests fail with 503 meanwhile anyway: every one needs the database)."""
    texts = system_texts()
    try:
        got = read(db, texts)
        if got is None:
            seed_from_file(db, campaign_file, now)
            got = read(db, texts)
    except DATABASE_ERRORS as exc:
        log.warning("cannot read the campaigns from the database (%s); starting with the campaign file %s until "
                    "it answers", exc.__class__.__name__, campaign_file)
        return load_catalog(campaign_file), None
    return got


def refresh(rt: "Runtime") -> bool:
    """One check: load the catalog when the database's version is not the one ``rt`` runs on. True
    when a new catalog was swapped in."""
    with rt.db.snapshot() as uow:
        version = store.version(uow.session)
    if version is None or version == rt.live.version:
        return False
    got = read(rt.db, rt.catalog.texts)
    return got is not None and rt.use(*got)


class CatalogWatcher:
    """A daemon thread that runs ``refresh`` every ``interval`` seconds. ``start`` it in the process
    that serves; after a fork (gunicorn --preload starts the app before forking its workers) it is
    started again in the child, whose copy of the thread does not run."""

    def __init__(self, rt: "Runtime", interval: float = WATCH_INTERVAL):
        self.rt = rt
        self.interval = interval
        self.checks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        os.register_at_fork(after_in_child=functools.partial(_restart_after_fork, weakref.ref(self)))

    def start(self) -> "CatalogWatcher":
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), name="firma-catalog-watcher",
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None

    def check(self) -> bool:
        """One refresh; a database that does not answer is logged once, and tried again next time."""
        self.checks += 1
        try:
            changed = refresh(self.rt)
        except Exception as exc:  # the thread must outlive any failure: the next check tries again
            if not self._failing:
                log.warning("campaigns: cannot check for changes (%s: %s); trying again every %g s",
                            exc.__class__.__name__, exc, self.interval)
            self._failing = True
            return False
        if self._failing:
            log.info("campaigns: checking for changes again")
        self._failing = False
        if changed:
            log.info("campaigns: now on version %s", self.rt.live.version)
        return changed

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.check()

    def __enter__(self) -> "CatalogWatcher":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _restart_after_fork(ref: "weakref.ref[CatalogWatcher]") -> None:
    watcher = ref()
    if watcher is not None and watcher._thread is not None and not watcher._stop.is_set():
        # The parent's pooled connections (the catalog was read before the fork) stay the parent's:
        # the child opens its own (SQLAlchemy's advice for a forked process).
        watcher.rt.db.engine.dispose(close=False)
        watcher.start()
