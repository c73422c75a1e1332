"""Delivery-package benchmark, on PostgreSQL.

    python3 bench/delivery.py            # 100,000 then 1,000,000 signatures
    python3 bench/delivery.py --smoke    # 10,000 rows, seconds

Loads signatures set-wise (as bench/datascale.py does, with names, cities and states that vary so
the document has state groups, wrapped names and accents), then at each size runs, as an operator
would (subprocesses; wall time and peak RSS from wait4):
- `firma deliver --names full` of every signer: the target is 1,000,000 signers in 2 minutes with a
  peak RSS of at most 200 MB, flat (about the same at 1,000,000 as at 100,000);
- the console's path above bots.delivery_files.DIRECT_LIMIT: a worker makes the same PDF into the
  database (wall time, peak RSS), and the file is read back as a download reads it;
- baseline: `firma export` of the same rows to a file, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.common import log  # noqa: E402
from bench.datascale import COUNTER_SQL, MEMBERS_SQL  # noqa: E402  (the same members, set-wise)

TARGET_S = 120.0
TARGET_RSS_MB = 200.0

# Thirty places in twelve states; names of two to six words (some wrap in their column), with accents.
PLACES = [("IL", "Chicago"), ("IL", "Evanston"), ("IL", "Cicero"), ("CA", "Los Angeles"), ("CA", "San Diego"),
          ("CA", "San Buenaventura (Ventura)"), ("CA", "Fresno"), ("TX", "Houston"), ("TX", "El Paso"),
          ("TX", "Brownsville"), ("TX", "San Antonio"), ("NY", "New York"), ("NY", "Yonkers"), ("FL", "Miami"),
          ("FL", "Orlando"), ("AZ", "Phoenix"), ("AZ", "Tucson"), ("NM", "Albuquerque"), ("NM", "Truth or Consequences"),
          ("PR", "San Juan"), ("PR", "Mayagüez"), ("GA", "Atlanta"), ("NC", "Charlotte"), ("WA", "Seattle"),
          ("WA", "Yakima"), ("CO", "Denver"), ("NJ", "Newark"), ("NJ", "Paterson"), ("IL", "Aurora"), ("CA", "Oakland")]
FIRST = ["Ana María", "José", "Guadalupe", "Nguyễn Thị", "Li", "Mohammed", "Jean-Baptiste", "Xochitl",
         "María de los Ángeles", "Juan Carlos", "Fatima", "Wolfgang Amadeus"]
LAST = ["Núñez", "García-López", "Hernández", "Smith", "Wei", "Al-Rashid", "de la Cruz y Montenegro Villalobos",
        "Ortiz", "Ødegård", "Ramírez", "Diallo"]


def _array(values) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


SIGNATURES_SQL = f"""
INSERT INTO signatures (member_id, campaign, channel, name, zip_code, city, state, timezone, language,
                        simulated, signed_at)
SELECT m.id, :campaign, 'sms',
       ({_array(FIRST)})[1 + m.id % {len(FIRST)}] || ' ' || ({_array(LAST)})[1 + (m.id / {len(FIRST)}) % {len(LAST)}],
       '60601', ({_array(c for _, c in PLACES)})[1 + (m.id * 7) % {len(PLACES)}],
       ({_array(s for s, _ in PLACES)})[1 + (m.id * 7) % {len(PLACES)}], 'America/Chicago', m.language,
       false, timestamptz '2026-01-01' + (m.id * 5 || ' seconds')::interval
FROM members m WHERE m.id BETWEEN CAST(:lo AS bigint) AND CAST(:hi AS bigint)
"""
def load_rows(url: str, start: int, stop: int) -> float:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(MEMBERS_SQL), {"lo": start + 1, "hi": stop})
        conn.execute(text(SIGNATURES_SQL), {"lo": start + 1, "hi": stop, "campaign": common.CAMPAIGN})
        conn.execute(text(COUNTER_SQL), {"campaign": common.CAMPAIGN, "n": stop})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE members"))
        conn.execute(text("VACUUM ANALYZE signatures"))
    engine.dispose()
    return time.perf_counter() - t0


def run_firma(url: str, *args: str) -> tuple[float, float]:
    """A `firma` command as a subprocess: (seconds, peak RSS in MB, from wait4's rusage)."""
    cmd = [sys.executable, "-m", "webhooks.cli", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=common.app_env(url), cwd=common.ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"firma {args[0]} failed: {proc.stderr.read().decode()[-2000:]}")
    proc.stderr.close()
    return seconds, usage.ru_maxrss / 1024


WORKER_FILE = """
import json, resource, sys, time
from bots import delivery, delivery_files
from bots.runtime import Runtime
from config.settings import Settings
rt = Runtime.build(Settings.from_env())
file_id = delivery_files.request(rt, delivery.check(rt, sys.argv[1], names="full"), "bench@example.org")
t0 = time.perf_counter()
assert delivery_files.make_next(rt) == file_id
made = time.perf_counter() - t0
t0 = time.perf_counter()
size = sum(len(piece) for piece in delivery_files.content(rt, file_id))
print(json.dumps({"made_s": round(made, 1), "read_s": round(time.perf_counter() - t0, 2), "mb": round(size / 1e6, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
"""


def worker_file(url: str) -> dict:
    """What `firma worker` does for a console delivery, in a process of its own."""
    out = subprocess.run([sys.executable, "-c", WORKER_FILE, common.CAMPAIGN], env=common.app_env(url),
                         cwd=common.ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def pdf_pages(path: Path) -> int | None:
    try:
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def listed_rows(path: Path) -> int | None:
    """Signer rows in the PDF's text (pdftotext), for the smoke run's check."""
    try:
        text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum(1 for line in text.splitlines() if re.search(r"\s[A-Z]{2}\s+\d{4}-\d\d-\d\d\s*$", line))


def measure(url: str, rows: int, workdir: Path, check_text: bool) -> dict:
    pdf, csv = workdir / "delivery.pdf", workdir / "export.csv"
    deliver_s, deliver_rss = run_firma(url, "deliver", "--campaign", common.CAMPAIGN, "--names", "full",
                                       "--output", str(pdf))
    export_s, export_rss = run_firma(url, "export", "--campaign", common.CAMPAIGN, "--output", str(csv))
    made = worker_file(url)
    return {"worker_file": made, "rows": rows, "deliver_s": round(deliver_s, 1), "deliver_peak_rss_mb": round(deliver_rss, 1),
            "pages": pdf_pages(pdf), "pdf_mb": round(pdf.stat().st_size / 1e6, 1),
            "listed": listed_rows(pdf) if check_text else None,
            "export_s": round(export_s, 1), "export_peak_rss_mb": round(export_rss, 1),
            "ratio": round(deliver_s / export_s, 2) if export_s else None}


def format_row(r: dict) -> str:
    return (f"{r['rows']:>9,} rows | firma deliver: {r['deliver_s']} s, peak RSS {r['deliver_peak_rss_mb']} MB, "
            f"{r['pages']:,} pages, {r['pdf_mb']} MB (target {TARGET_S:.0f} s and {TARGET_RSS_MB:.0f} MB at "
            f"1,000,000) | baseline firma export: {r['export_s']} s, peak RSS {r['export_peak_rss_mb']} MB "
            f"| deliver/export {r['ratio']}x\n"
            f"{'':>15}console, made by a worker: {r['worker_file']['made_s']} s, peak RSS "
            f"{r['worker_file']['peak_rss_mb']} MB, {r['worker_file']['mb']} MB stored, read back in "
            f"{r['worker_file']['read_s']} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="10,000 rows, seconds (CI)")
    ap.add_argument("--sizes", default="100000,1000000", help="comma list of signature counts, increasing")
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes = "10000"
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"machine: {common.machine()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="firma-bench-") as tmp, \
            common.fresh_database("postgresql", Path(tmp)) as url:
        loaded = 0
        for size in sizes:
            log(f"loading {size - loaded} signatures ...")
            load_s = load_rows(url, loaded, size)
            loaded = size
            print(f"loaded {size:,} signatures in {load_s:.1f} s", flush=True)
            r = measure(url, size, Path(tmp), check_text=args.smoke)
            results.append(r)
            print(format_row(r), flush=True)
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(f"deliver peak RSS: {first['deliver_peak_rss_mb']} MB at {first['rows']:,} rows, "
              f"{last['deliver_peak_rss_mb']} MB at {last['rows']:,} rows "
              f"(x{last['deliver_peak_rss_mb'] / first['deliver_peak_rss_mb']:.2f}; flat if about 1)")
    print("DELIVERY_RESULTS " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
