"""Each benchmark's --smoke mode, so the benches keep working. No timing assertions: the
smoke runs check that the bench completed, printed its figures, and that the figures are sane
(every conversation signed exactly once, every exported row present)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATABASES

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.bench  # not in the default run; .ci/run runs them


def run_bench(script: str, *args: str) -> str:
    return run_bench_env(script, *args)


def run_bench_env(script: str, *args: str, **extra_env: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra_env)
    proc = subprocess.run([sys.executable, f"bench/{script}", "--smoke", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def pgbouncer_installed() -> bool:
    from tests.support import pgbouncer

    return pgbouncer._binary() is not None


def results(out: str, tag: str) -> list[dict]:
    line = next(line for line in out.splitlines() if line.startswith(tag + " "))
    return json.loads(line[len(tag) + 1:])


@pytest.mark.slow
@pytest.mark.postgresql  # each CI leg runs it on its own database (FIRMA_TEST_DATABASES)
def test_inbound_smoke(request):
    if "postgresql" in DATABASES:
        request.getfixturevalue("postgres_database")  # the server is there (or the usual skip / CI failure)
    out = run_bench("inbound.py", "--databases", ",".join(DATABASES), "--ceiling")
    assert "machine: " in out and "ratio" in out
    rows = results(out, "INBOUND_RESULTS")
    assert [r["database"] for r in rows] == DATABASES
    for r in rows:
        assert r["exact"] and r["signatures_added"] == r["conversations"] == 60, r
        assert r["non_2xx"] == 0, r
        assert r["requests"] == 3 * r["conversations"], r
        assert r["rps"] > 0 and r["baseline_rps"] > 0 and r["p99_ms"] > 0 and r["ratio"] > 0, r
        cpu, base_cpu = r["cpu_ms_per_request"], r["baseline_cpu_ms_per_request"]  # where the ratio comes from
        assert cpu["gunicorn"] > 0 and base_cpu["gunicorn"] > 0 and cpu["loadgen"] > 0, r
        if r["database"] == "postgresql":
            assert cpu["postgres"] > 0, r  # the server on this machine
        (o,) = r["open_loop"]  # firma's latency at a rate offered whatever its speed; its signatures are in "exact"
        assert o["rate"] == 30 and o["requests"] == 3 * o["conversations"] and o["non_2xx"] == 0, r
        assert 0 < o["p50_ms"] <= o["p99_ms"], r
        # firma without its database, driven in the same rounds; it stored nothing ("exact" above holds)
        assert r["ceiling"]["rps"] > 0 and r["ceiling"]["non_2xx"] == 0, r
        assert r["ceiling"]["cpu_ms_per_request"]["gunicorn"] > 0, r
        # the durable floor (signature, one INSERT, COMMIT) in the same rounds
        assert r["floor"]["rps"] > 0 and r["floor"]["non_2xx"] == 0 and r["floor"]["ratio"] > 0, r
        if r["database"] == "postgresql" and pgbouncer_installed():  # beside it, through PgBouncer
            p = r["pooled"]
            assert p["exact"] and p["signatures_added"] == p["conversations"] == 60 and p["non_2xx"] == 0, r
            assert p["rps"] > 0 and p["ratio"] > 0 and p["floor_ratio"] > 0, r
    assert "| database | gunicorn workers | firma req/s |" in out and "CPU per request: firma gunicorn" in out
    assert "ceiling, firma without a database" in out


@pytest.mark.slow
@pytest.mark.postgresql
def test_datascale_smoke(postgres_database):
    out = run_bench("datascale.py")
    (row,) = results(out, "DATASCALE_RESULTS")
    assert row["rows"] == row["counter"] == row["exported"] == 10_000, row
    assert row["api_p50_ms"] > 0 and row["api_baseline_p50_ms"] > 0, row
    assert row["export_s"] > 0 and row["export_peak_rss_mb"] > 0 and row["copy_baseline_s"] > 0, row
    assert row["dashboard_ms"] > 0 and "staff dashboard median" in out, row  # signed in, page rendered


@pytest.mark.slow
@pytest.mark.postgresql  # a PostgreSQL-only bench: the PostgreSQL leg of CI runs it and may not skip it
def test_delivery_smoke(postgres_database):
    out = run_bench("delivery.py")
    (row,) = results(out, "DELIVERY_RESULTS")
    assert row["rows"] == row["listed"] == 10_000, row  # every signer is a row of the PDF's text
    assert row["deliver_s"] > 0 and row["deliver_peak_rss_mb"] > 0 and row["pages"] > 100, row
    assert row["export_s"] > 0 and "baseline firma export" in out, row
    assert row["worker_file"]["mb"] == row["pdf_mb"] and "made by a worker" in out, row  # the same PDF, stored


@pytest.mark.slow
@pytest.mark.postgresql  # a PostgreSQL-only bench: the PostgreSQL leg of CI runs it and may not skip it
def test_broadcast_smoke(postgres_database):
    from tests.support.postgres import PG_SERVER

    out = run_bench_env("broadcast.py", FIRMA_BENCH_POSTGRES_URL=PG_SERVER)
    rows = {figure: (measured, ratio) for figure, measured, _baseline, ratio in results(out, "BROADCAST_RESULTS")
            if figure.strip()}
    labels = ("msg/s, 1 worker, 50 ms provider", "msg/s, 2 workers (same", "msg/s, 1 worker, 25 in flight",
              "msg/s, 2 workers, 25 in flight each", "  the same, middle 80%", "materialise", "peak memory, planning",
              "peak memory, worker sending")
    for label in labels:  # every figure printed (the bench itself checks each message went out once)
        (measured, ratio), = [v for k, v in rows.items() if k.startswith(label)]
        assert float(measured.split()[0].replace(",", "")) > 0 and ratio, (label, measured, ratio)


@pytest.mark.slow
@pytest.mark.postgresql
def test_staff_dashboard_smoke(request):
    out = run_bench("staff_dashboard.py")
    assert "SQLite, 2,000 rows" in out and "GET /staff/campaigns/end-scomm:" in out, out
    if "postgresql" in DATABASES:
        from tests.support.postgres import PG_SERVER

        request.getfixturevalue("postgres_database")
        out = run_bench("staff_dashboard.py", "--database-url", PG_SERVER)
        assert "PostgreSQL, 2,000 rows" in out and "GET /staff/campaigns/end-scomm:" in out, out


@pytest.mark.slow
@pytest.mark.postgresql
def test_inbox_smoke(request):
    out = run_bench("inbox.py")
    assert "SQLite, 2,000 open conversations" in out and "GET /staff/inbox (with the unread count):" in out, out
    if "postgresql" in DATABASES:
        from tests.support.postgres import PG_SERVER

        request.getfixturevalue("postgres_database")
        out = run_bench("inbox.py", "--database-url", PG_SERVER)
        assert "PostgreSQL, 2,000 open conversations" in out and "second page" in out, out
def test_pooler_bench_all_answers_and_signatures_direct_and_through_pgbouncer(pgbouncer):
    """bench/pooler.py (the 600-conversation check, smaller): direct and through PgBouncer in
    transaction mode, every answer 200, every conversation signed, no error in the log."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "bench/pooler.py", "--conversations", "40", "--threads", "8"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if "conversations from 8 threads" in line]
    assert len(lines) == 2 and all("120 answers 200; 40 signatures of 40; 0 error lines" in x for x in lines), proc.stdout


@pytest.mark.slow
def test_pdf_libraries_smoke():
    out = run_bench_env("pdf_libraries.py", PDF_LIBS="")
    assert re.search(r"firma: [\d.]+ s, peak RSS \d+ MB, [\d.]+ MB file \(1\.00x", out), out
    for library in ("reportlab", "fpdf2"):  # not firma's dependencies: measured when installed, else said so
        assert re.search(rf"{library}: (not run|[\d.]+ s, peak RSS)", out), out
