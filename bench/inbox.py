"""How the staff inbox holds up with many open conversations (target: the page within 300 ms at
100,000 open messages, on PostgreSQL).

    python3 bench/inbox.py [--rows 100000] [--database-url URL] [--smoke]

Times the rendered inbox page on an empty inbox first (the baseline, same run, same process), then
fills a fresh database (SQLite in a temporary folder by default; a PostgreSQL URL makes a scratch
database on that server and drops it after) with ROWS members who each wrote one message still open
(and got the acknowledgement), over 30 days, both channels, both languages, two campaigns, generated
inside the database; then times the same page (with the navigation's unread count), the page
filtered by campaign, channel and language, the second page, and one conversation (median of 5).
Prints one line per measurement, with the ratio to the baseline.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402
from bench.common import page_bench_main  # noqa: E402

TARGET_MS = 300.0


def fill(url: str, rows: int) -> None:
    engine = create_engine(url)
    pg = engine.dialect.name == "postgresql"
    # spread over 30 days, one message a minute or so; member x wrote at "when"
    when = ("timestamptz '2026-11-27 17:00:00+00' - (x * 26) * interval '1 second'" if pg
            else "strftime('%Y-%m-%d %H:%M:%S.000000', '2026-11-27 17:00:00', '-' || (x * 26) || ' seconds')")
    false = "false" if pg else "0"
    series = (f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {rows}) " if not pg
              else f"WITH c(x) AS (SELECT generate_series(1, {rows})) ")
    channel = "CASE WHEN x % 5 = 0 THEN 'telegram' ELSE 'sms' END"
    language = "CASE WHEN x % 3 = 0 THEN 'es' ELSE 'en' END"
    campaign = "CASE WHEN x % 10 = 0 THEN 'dream-act' ELSE 'end-scomm' END"
    words = "'Hi, I have a question about the march on Saturday, can I bring my family? (' || x || ')'"
    with engine.begin() as conn:
        conn.execute(text(series + f"""
            INSERT INTO members (id, channel, address, language, simulated, created_at, last_seen_at)
            SELECT x, {channel}, '+1' || (3120000000 + x), {language}, {false}, {when}, {when} FROM c"""))
        conn.execute(text(series + f"""
            INSERT INTO signatures (id, member_id, campaign, channel, name, zip_code, city, state, timezone,
                                    language, simulated, signed_at)
            SELECT x, x, {campaign}, {channel}, 'Person ' || x, '60601', 'Chicago', 'IL', NULL, {language},
                   {false}, {when} FROM c"""))
        conn.execute(text(series + f"""
            INSERT INTO inbox_messages (id, member_id, at, sender, staff_email, channel, text, media)
            SELECT 2 * x - 1, x, {when}, 'member', NULL, {channel}, {words}, {false} FROM c"""))
        conn.execute(text(series + f"""
            INSERT INTO inbox_messages (id, member_id, at, sender, staff_email, channel, text, media)
            SELECT 2 * x, x, {when}, 'bot', NULL, {channel},
                   'Thanks! Someone from our team will read your message.', {false} FROM c"""))
        conn.execute(text(series + f"""
            INSERT INTO inbox_threads (member_id, channel, language, campaign, status, last_at, last_text, unread)
            SELECT x, {channel}, {language}, {campaign}, 'open', {when}, {words}, 1 FROM c"""))
        if pg:  # ids were given: the sequences carry on after them
            for table in ("members", "signatures", "inbox_messages"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {2 * rows + 1})"))
    if pg:  # what autovacuum does soon after a bulk load: statistics, and the visibility map for index-only scans
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


def median_ms(fn, repeat: int = 5) -> float:
    fn()  # warm: the first request compiles templates and statements
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def signed_in_client(rt):
    from argon2 import PasswordHasher, profiles

    from bots import staff_accounts as svc
    from webhooks import create_app

    cheap = PasswordHasher.from_parameters(profiles.CHEAPEST)
    svc._hasher = lambda: cheap  # the bench measures pages, not password hashing
    svc.add_staff(rt.db, "bench@example.org", "bench password 123", rt.now())
    client = create_app({"TESTING": True}, rt).test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/staff/login").get_data(as_text=True)).group(1)
    r = client.post("/staff/login", data={"email": "bench@example.org", "password": "bench password 123",
                                          "csrf_token": token})
    assert r.status_code == 303, r.status_code
    return client


def timed_page(client, path: str, expect: str | None = None) -> float:
    def get():
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        if expect is not None:
            assert expect in r.get_data(as_text=True), (path, expect)
    return median_ms(get)


def run(url: str, rows: int) -> None:
    from datetime import datetime, timezone

    from bots.runtime import Runtime
    from config.settings import Settings
    from storage import db as dbmod

    dbmod.upgrade(url)
    now = datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)
    settings = Settings(database_url=url, secret_key="bench", secret_key_generated=False)
    rt = Runtime.build(settings)
    rt.clock = lambda: now
    client = signed_in_client(rt)
    baseline = timed_page(client, "/staff/inbox", "Nothing waiting")
    print(f"baseline: GET /staff/inbox, empty inbox: {baseline:.1f} ms")

    start = time.perf_counter()
    fill(url, rows)
    print(f"fill: {rows:,} open conversations ({rows:,} open member messages, {2 * rows:,} inbox rows) in "
          f"{time.perf_counter() - start:.1f} s")
    for label, path, expect in (
            ("GET /staff/inbox (with the unread count)", "/staff/inbox", f'aria-label="{rows} unread"'),
            ("GET /staff/inbox?language=es", "/staff/inbox?language=es", None),
            ("GET /staff/inbox?channel=telegram", "/staff/inbox?channel=telegram", None),
            ("GET /staff/inbox?campaign=end-scomm&language=es&channel=telegram",
             "/staff/inbox?campaign=end-scomm&language=es&channel=telegram", None),
            ("GET /staff/inbox/<id> (one conversation)", f"/staff/inbox/{rows}", "Person"),
    ):
        ms = timed_page(client, path, expect)
        verdict = "within" if ms <= TARGET_MS else "OVER"
        print(f"{label}: {ms:.1f} ms ({ms / baseline:.2f}x the baseline; {verdict} the {TARGET_MS:.0f} ms target)")
    page = client.get("/staff/inbox").get_data(as_text=True)
    older = re.search(r'href="([^"]+before=[^"]+)"', page)
    if older:
        path = older.group(1).replace("&amp;", "&")
        ms = timed_page(client, path)
        print(f"GET /staff/inbox, second page: {ms:.1f} ms ({ms / baseline:.2f}x the baseline)")
    rt.db.dispose()


def main() -> None:
    page_bench_main(__doc__, run, 100_000, "open conversations")


if __name__ == "__main__":
    main()
