"""How the staff dashboard holds up with many signatures: aggregate queries only.

    python3 bench/staff_dashboard.py [--rows 1000000] [--database-url URL]

Fills a fresh database (SQLite in a temporary folder by default; a PostgreSQL URL makes a scratch
database on that server and drops it after) with ROWS signatures spread over 60 days, 50 states, both
channels and both languages, generated inside the database; then times the overview, the campaign
statistics and the rendered campaign page (median of 5). Prints one line per measurement.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402
from bench.common import page_bench_main  # noqa: E402

STATES = "ALAKAZARCACOCTDEFLGAHIIDILINIAKSKYLAMEMDMAMIMNMSMOMTNENVNHNJNMNYNCNDOHOKORPARISCSDTNTXUTVTVAWAWVWIWY"


def fill(url: str, rows: int) -> None:
    engine = create_engine(url)
    pg = engine.dialect.name == "postgresql"
    when = ("timestamptz '2026-11-27 17:00:00+00' - (x % 60) * interval '1 day'" if pg
            else "strftime('%Y-%m-%d %H:%M:%S.000000', '2026-11-27 17:00:00', '-' || (x % 60) || ' days')")
    false = "false" if pg else "0"
    series = (f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) " if not pg
              else f"WITH c(x) AS (SELECT generate_series(1, {rows})) ")
    with engine.begin() as conn:
        conn.execute(text(series + f"""
            INSERT INTO members (id, channel, address, language, simulated, created_at)
            SELECT x, CASE WHEN x % 5 = 0 THEN 'telegram' ELSE 'sms' END, '+1' || (3120000000 + x),
                   CASE WHEN x % 3 = 0 THEN 'es' ELSE 'en' END, {false}, {when} FROM c"""))
        conn.execute(text(series + f"""
            INSERT INTO signatures (id, member_id, campaign, channel, name, zip_code, city, state, timezone,
                                    language, simulated, signed_at)
            SELECT x, x, 'end-scomm', CASE WHEN x % 5 = 0 THEN 'telegram' ELSE 'sms' END, 'Person ' || x, '60601',
                   'City', substr('{STATES}', (x % 50) * 2 + 1, 2), NULL,
                   CASE WHEN x % 3 = 0 THEN 'es' ELSE 'en' END, {false}, {when} FROM c"""))
        conn.execute(text("INSERT INTO campaign_counts (campaign, signatures) VALUES ('end-scomm', :n)"), {"n": rows})
    if pg:  # what autovacuum does soon after a bulk load: statistics, and the visibility map for index-only scans
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def median_ms(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(url: str, rows: int) -> None:
    from datetime import datetime, timezone

    from argon2 import PasswordHasher, profiles

    from bots import dashboard
    from bots import staff_accounts as svc
    from bots.runtime import Runtime
    from config.settings import Settings
    from storage import db as dbmod
    from webhooks import create_app

    dbmod.upgrade(url)
    start = time.perf_counter()
    fill(url, rows)
    print(f"fill: {rows:,} signatures in {time.perf_counter() - start:.1f} s")
    rt = Runtime.build(Settings(database_url=url, secret_key="bench", secret_key_generated=False))
    now = datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)
    rt.clock = lambda: now
    print(f"overview: {median_ms(lambda: dashboard.overview(rt, now)):.1f} ms")
    stats = dashboard.campaign_stats(rt, "end-scomm", now)
    assert stats.total == rows, stats.total
    print(f"campaign_stats: {median_ms(lambda: dashboard.campaign_stats(rt, 'end-scomm', now)):.1f} ms")
    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    svc._hasher = lambda: cheap  # the bench measures pages, not password hashing
    svc.add_staff(rt.db, "bench@example.org", "bench password 123", now)
    app = create_app({"TESTING": True}, rt)
    client = app.test_client()
    client.get("/staff/login")
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/staff/login").get_data(as_text=True)).group(1)
    client.post("/staff/login", data={"email": "bench@example.org", "password": "bench password 123", "csrf_token": token})

    def page():
        r = client.get("/staff/campaigns/end-scomm")
        assert r.status_code == 200 and f">{rows:,}<" in r.get_data(as_text=True)
    print(f"GET /staff/campaigns/end-scomm: {median_ms(page):.1f} ms")
    rt.db.dispose()


def main() -> None:
    page_bench_main(__doc__, run, 1_000_000, "rows")


if __name__ == "__main__":
    main()
