"""How the staff API pages through a campaign's signatures (a CRM sync reading every few minutes):
a keyset cursor on (campaign, id), so a page deep in a million signatures costs what the first does.

    python3 bench/staff_api.py [--rows 1000000] [--limit 1000] [--database-url URL]

Fills a fresh database as bench/staff_dashboard.py does (SQLite in a temporary folder by default; a
PostgreSQL URL makes a scratch database there and drops it after), then times, through the app with
a bearer token, GET /api/staff/signatures pages at the start, the middle and the end (median of 5),
and, as the baseline in the same run, the same page read with LIMIT/OFFSET: the cost OFFSET would
have at each depth. Prints one line per measurement and the ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import scratch_postgres  # noqa: E402

from bench.staff_dashboard import fill, median_ms  # noqa: E402


def run(url: str, rows: int, limit: int) -> None:
    import time
    from datetime import datetime, timezone

    from argon2 import PasswordHasher, profiles

    from bots import api_tokens
    from bots import staff_accounts as svc
    from bots.runtime import Runtime
    from config.settings import Settings
    from storage import db as dbmod
    from storage import repository as repo
    from storage.models import Signature
    from webhooks import create_app

    dbmod.upgrade(url)
    start = time.perf_counter()
    fill(url, rows)
    print(f"fill: {rows:,} signatures in {time.perf_counter() - start:.1f} s")
    rt = Runtime.build(Settings(database_url=url, secret_key="bench", secret_key_generated=False))
    now = datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)
    rt.clock = lambda: now
    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    svc._hasher = lambda: cheap
    svc.add_staff(rt.db, "bench@example.org", "bench password 123", now)
    token, _ = api_tokens.create_token(rt.db, "bench@example.org", "bench", now)
    client = create_app({"TESTING": True}, rt).test_client()
    headers = {"Authorization": f"Bearer {token}"}

    def page(after: int):
        def get():
            r = client.get(f"/api/staff/signatures?campaign=end-scomm&limit={limit}&after={after}", headers=headers)
            assert r.status_code == 200 and len(r.get_json()["signatures"]) == limit, r.status_code
        return get

    def offset_page(skip: int):
        def get():
            with rt.db.reader() as uow:
                got = uow.session.execute(repo.export_query("end-scomm").with_only_columns(Signature.id)
                                          .order_by(None).order_by(Signature.id).offset(skip).limit(limit)).all()
            assert len(got) == limit
        return get

    depths = {"first": 0, "middle": rows // 2, "last": rows - limit}
    keyset = {name: median_ms(page(after)) for name, after in depths.items()}
    offset = {name: median_ms(offset_page(skip)) for name, skip in depths.items()}
    for name in depths:
        print(f"page of {limit:,} at the {name} ({depths[name]:,}): keyset {keyset[name]:.1f} ms "
              f"(the whole request); OFFSET, the ids alone: {offset[name]:.1f} ms")
    print(f"keyset last/first: {keyset['last'] / keyset['first']:.2f}x; "
          f"OFFSET last/first: {offset['last'] / offset['first']:.2f}x")
    rt.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a scratch database is made there)")
    args = parser.parse_args()
    if args.database_url:
        with scratch_postgres(args.database_url) as url:
            print(f"PostgreSQL, {args.rows:,} rows")
            run(url, args.rows, args.limit)
    else:
        with tempfile.TemporaryDirectory() as folder:
            print(f"SQLite, {args.rows:,} rows")
            run(f"sqlite:///{folder}/bench.db", args.rows, args.limit)


if __name__ == "__main__":
    main()
