"""Data-scale benchmark, on PostgreSQL.

    python3 bench/datascale.py            # 100,000 then 1,000,000 signatures
    python3 bench/datascale.py --smoke    # 10,000 rows, seconds

Loads signatures set-wise (INSERT ... SELECT generate_series: members, then one signature each),
sets the campaign counter, then measures, at each size:
- GET /api/campaigns/<slug> under gunicorn (2 sync workers): median and p99 latency over sequential
  requests; baseline: a bare Flask endpoint answering constant JSON, served the same way (target:
  median < 5 ms; the counter table campaign_counts means no COUNT(*) per request).
- `firma export` of every row to a file (a subprocess, as an operator runs it): wall time and peak RSS;
  baseline: PostgreSQL's own COPY of the same join to a file. Target: 20 s at 1,000,000 rows, and
  flat memory (peak RSS at 1,000,000 about the same as at 100,000).
- the staff dashboard's campaign page /staff/campaigns/<slug> (target 300 ms): median of 20 requests,
  signed in as a staff login made with `firma staff add` (`measure_dashboard`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.common import log  # noqa: E402

TARGET_API_MS = 5.0
TARGET_EXPORT_S = 20.0
TARGET_DASHBOARD_MS = 300.0

MEMBERS_SQL = """
INSERT INTO members (channel, address, language, simulated, created_at, last_seen_at, disclosed_at, opted_out_at)
SELECT 'sms', '+1' || (2000000000 + g)::text, CASE WHEN g % 3 = 0 THEN 'es' ELSE 'en' END, false,
       now(), now(), now(), CASE WHEN g % 50 = 0 THEN now() END
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS g
"""
SIGNATURES_SQL = """
INSERT INTO signatures (member_id, campaign, channel, name, zip_code, city, state, timezone, language,
                        simulated, signed_at)
SELECT m.id, :campaign, 'sms', 'Signer ' || m.id, '60601', 'Chicago', 'IL', 'America/Chicago', m.language,
       false, timestamptz '2026-01-01' + (m.id || ' seconds')::interval
FROM members m WHERE m.id BETWEEN CAST(:lo AS bigint) AND CAST(:hi AS bigint)
"""
COUNTER_SQL = """
INSERT INTO campaign_counts (campaign, signatures) VALUES (:campaign, :n)
ON CONFLICT (campaign) DO UPDATE SET signatures = excluded.signatures
"""
COPY_BASELINE_SQL = """
COPY (SELECT s.signed_at, s.campaign, s.channel, s.name, s.zip_code, s.city, s.state, s.language,
             m.opted_out_at IS NOT NULL
      FROM signatures s JOIN members m ON m.id = s.member_id
      WHERE s.campaign = '{campaign}' AND NOT s.simulated ORDER BY s.signed_at, s.id) TO STDOUT WITH CSV HEADER
"""


def load_rows(url: str, start: int, stop: int, campaign: str) -> float:
    """Members and signatures with ids start+1..stop (fresh database: ids follow generate_series)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(MEMBERS_SQL), {"lo": start + 1, "hi": stop})
        conn.execute(text(SIGNATURES_SQL), {"lo": start + 1, "hi": stop, "campaign": campaign})
        conn.execute(text(COUNTER_SQL), {"campaign": campaign, "n": stop})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE members"))
        conn.execute(text("VACUUM ANALYZE signatures"))
    engine.dispose()
    return time.perf_counter() - t0


def get_latencies(base: str, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(base + path, timeout=10) as r:
            r.read()
            assert r.status == 200
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(lat: list[float]) -> tuple[float, float]:
    return statistics.median(lat), statistics.quantiles(lat, n=100, method="inclusive")[98]


def run_export(url: str, out: Path) -> tuple[float, float]:
    """`firma export` as a subprocess: (seconds, peak RSS in MB, from wait4's rusage)."""
    cmd = [sys.executable, "-m", "webhooks.cli", "export", "--campaign", common.CAMPAIGN, "--output", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=common.app_env(url), cwd=common.ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"firma export failed: {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def copy_baseline(url: str, out: Path) -> float:
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    t0 = time.perf_counter()
    with psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname=u.database,
                         password=u.password) as conn, open(out, "wb") as fh:
        with conn.cursor().copy(COPY_BASELINE_SQL.format(campaign=common.CAMPAIGN)) as copy:
            for data in copy:
                fh.write(data)
    return time.perf_counter() - t0


def count_lines(path: Path) -> int:
    n = 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            n += chunk.count(b"\n")
    return n


DASHBOARD_EMAIL, DASHBOARD_PASSWORD = "bench@example.org", "bench password 123"


def measure_dashboard(server: common.Server, url: str, requests: int = 20) -> float:
    """The staff campaign page /staff/campaigns/<slug> (counts by day, channel, language and state, the
    total), signed in as a staff login made with `firma staff add`: median render time in ms over
    ``requests`` sequential requests, through the same gunicorn as the API. The session cookie is
    Secure (production settings), so it is sent by hand over this plain-http loopback connection."""
    import http.client
    import re
    from urllib.parse import urlencode

    added = subprocess.run([sys.executable, "-m", "webhooks.cli", "staff", "add", DASHBOARD_EMAIL],
                           env=common.app_env(url), cwd=common.ROOT, input=DASHBOARD_PASSWORD + "\n", text=True,
                           capture_output=True)
    if added.returncode != 0 and "already" not in added.stderr:  # made at the previous size: fine
        raise RuntimeError(f"firma staff add failed: {added.stderr[-2000:]}")
    host, port = server.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    cookie = ""

    def request(method: str, path: str, body: str | None = None) -> tuple[int, str]:
        nonlocal cookie
        headers = {"Cookie": cookie} if cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie" and value.startswith("firma_session="):
                cookie = value.split(";", 1)[0]
        return response.status, text

    status, page = request("GET", "/staff/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    status, _ = request("POST", "/staff/login", urlencode({"email": DASHBOARD_EMAIL, "password": DASHBOARD_PASSWORD,
                                                          "csrf_token": token}))
    assert status == 303, f"staff sign-in failed: {status}"
    path = f"/staff/campaigns/{common.CAMPAIGN}"
    times = []
    for i in range(requests + 2):
        t0 = time.perf_counter()
        status, page = request("GET", path)
        if i >= 2:  # the first two warm the worker and the database's cache
            times.append((time.perf_counter() - t0) * 1000)
        assert status == 200, f"{path}: {status}"
    conn.close()
    return statistics.median(times)


def measure(url: str, rows: int, workdir: Path, requests: int) -> dict:
    env = common.app_env(url)
    path = f"/api/campaigns/{common.CAMPAIGN}"
    with common.gunicorn("webhooks:create_app()", env, workers=2, log_dir=workdir) as server:
        got = common.get_json(server.base + path)["signatures"]
        get_latencies(server.base, path, 20)
        api_p50, api_p99 = summary(get_latencies(server.base, path, requests))
        dashboard = round(measure_dashboard(server, url), 1)
    with common.gunicorn("bench.baseline_app:create_app()", env, workers=2, log_dir=workdir) as server:
        get_latencies(server.base, path, 20)
        base_p50, base_p99 = summary(get_latencies(server.base, path, requests))
    out = workdir / "export.csv"
    export_s, export_rss = run_export(url, out)
    exported = count_lines(out) - 1
    copy_s = copy_baseline(url, workdir / "copy.csv")
    return {"rows": rows, "counter": got, "api_p50_ms": round(api_p50, 2), "api_p99_ms": round(api_p99, 2),
            "api_baseline_p50_ms": round(base_p50, 2), "api_ratio": round(api_p50 / base_p50, 2),
            "export_s": round(export_s, 2), "export_peak_rss_mb": round(export_rss, 1), "exported": exported,
            "copy_baseline_s": round(copy_s, 2), "export_ratio": round(export_s / copy_s, 2) if copy_s else None,
            "dashboard_ms": dashboard}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="10,000 rows, seconds (CI)")
    ap.add_argument("--sizes", default="100000,1000000", help="comma list of signature counts, increasing")
    ap.add_argument("--requests", type=int, default=500, help="API requests timed at each size")
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes, args.requests = "10000", 50
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {common.machine()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="firma-bench-") as tmp, \
            common.fresh_database("postgresql", Path(tmp)) as url:
        loaded = 0
        for size in sizes:
            log(f"loading {size - loaded} signatures ...")
            load_s = load_rows(url, loaded, size, common.CAMPAIGN)
            loaded = size
            print(f"loaded {size:,} signatures in {load_s:.1f} s (INSERT ... SELECT generate_series)", flush=True)
            r = measure(url, size, Path(tmp), args.requests)
            r["load_s"] = round(load_s, 1)
            rows.append(r)
            print(format_row(r), flush=True)
    if len(rows) > 1:
        growth = rows[-1]["export_peak_rss_mb"] / rows[0]["export_peak_rss_mb"]
        print(f"export peak RSS: {rows[0]['export_peak_rss_mb']} MB at {rows[0]['rows']:,} rows, "
              f"{rows[-1]['export_peak_rss_mb']} MB at {rows[-1]['rows']:,} rows (x{growth:.2f}; flat if about 1)")
    print("DATASCALE_RESULTS " + json.dumps(rows))
    return 0


def format_row(r: dict) -> str:
    dash = f"staff dashboard median {r['dashboard_ms']:.1f} ms (target < {TARGET_DASHBOARD_MS:.0f} ms)"
    return (f"{r['rows']:>9,} rows | GET /api/campaigns/{common.CAMPAIGN}: median {r['api_p50_ms']} ms, "
            f"p99 {r['api_p99_ms']} ms (baseline median {r['api_baseline_p50_ms']} ms, ratio {r['api_ratio']}x; "
            f"target median < {TARGET_API_MS:.0f} ms), counter {r['counter']:,} | firma export: "
            f"{r['exported']:,} rows in {r['export_s']} s, peak RSS {r['export_peak_rss_mb']} MB "
            f"(COPY baseline {r['copy_baseline_s']} s, ratio {r['export_ratio']}x; target {TARGET_EXPORT_S:.0f} s "
            f"at 1,000,000) | {dash}")


if __name__ == "__main__":
    sys.exit(main())
