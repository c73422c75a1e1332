"""Fresh PostgreSQL databases for tests, made on the server in FIRMA_TEST_POSTGRES_URL and dropped after.

When the server does not answer, the test is skipped with the reason; with FIRMA_REQUIRE_POSTGRES=1
(CI) it fails instead, so a PostgreSQL leg can never pass by skipping.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_SERVER = os.environ.get("FIRMA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REQUIRE_PG = os.environ.get("FIRMA_REQUIRE_POSTGRES") == "1"


@contextmanager
def fresh_database(prefix: str = "firma_test") -> Iterator[str]:
    """The URL of a new, empty database; dropped when the block ends."""
    server = make_url(PG_SERVER)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - turned into a skip or, in CI, a failure
        admin.dispose()
        message = (f"PostgreSQL at {server.render_as_string(hide_password=True)} is not available: "
                   f"{exc.__class__.__name__}")
        (pytest.fail if REQUIRE_PG else pytest.skip)(message)
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
