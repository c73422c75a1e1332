"""Correctness under a transaction pooler, at the size of the report that found it failing.

    python3 bench/pooler.py                      # 600 conversations from 16 threads, direct and pooled
    python3 bench/pooler.py --conversations 60   # a quick one

Two gunicorn workers serve whole SMS conversations (keyword, name, ZIP; signed as Twilio signs),
sent from ``--threads`` threads at once, first straight to PostgreSQL, then through a PgBouncer the
bench starts in ``pool_mode = transaction`` with ``FIRMA_DATABASE_POOLER=transaction`` (and, with
``--unset``, through it without the setting, as before it existed). Each database is fresh and
migrated with ``firma db upgrade`` through the same path. Prints, for each: the answers by status, the
signatures recorded, and the server errors in gunicorn's log. Exits 1 unless every message got a 200,
every conversation a signature, and the log no error.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402


def post(port: int, p: common.Prepared) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", p.path, body=p.body, headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": p.signature})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def server_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line or "Error:" in line]


def run(label: str, url: str, pooler: str | None, args, workdir: Path) -> bool:
    env = common.app_env(url, **({"FIRMA_DATABASE_POOLER": pooler} if pooler else {}))
    if not pooler:
        env.pop("FIRMA_DATABASE_POOLER", None)
    try:
        common.migrate(url, env)
    except RuntimeError as exc:
        print(f"{label}: {exc}")
        return False
    conversations = common.conversation_requests(args.conversations, 13124000000)
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(common.gunicorn("webhooks:create_app()", env, workers=2, log_dir=workdir))
        except RuntimeError as exc:
            lines = str(exc).splitlines()
            cause = next((line for line in lines if "FATAL" in line), lines[-1])
            print(f"{label}: FAILED, firma did not start: {cause.strip()[:300]}")
            return False
        before = common.get_json(f"{server.base}/api/campaigns/{common.CAMPAIGN}")["signatures"]
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            statuses = [s for conv in pool.map(lambda c: [post(server.port, m) for m in c], conversations) for s in conv]
        seconds = time.perf_counter() - t0
        signed = common.get_json(f"{server.base}/api/campaigns/{common.CAMPAIGN}")["signatures"] - before
    errors = server_errors(server.log_path.read_text(errors="replace"))
    by_status = ", ".join(f"{n:,} answers {s}" for s, n in sorted(Counter(statuses).items()))
    ok = statuses.count(200) == 3 * args.conversations and signed == args.conversations and not errors
    print(f"{label}: {args.conversations} conversations from {args.threads} threads in {seconds:.1f} s: {by_status}; "
          f"{signed:,} signatures of {args.conversations:,}; {len(errors)} error lines in the log"
          f" -> {'OK' if ok else 'FAILED'}")
    for line in errors[:5]:
        print(f"    {line.strip()[:200]}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conversations", type=int, default=600)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--pool-size", type=int, default=8, help="PgBouncer's default_pool_size")
    ap.add_argument("--unset", action="store_true", help="also run through PgBouncer without the setting")
    args = ap.parse_args(argv)
    from tests.support import pgbouncer

    print(f"machine: {common.machine()}")
    results = []
    with tempfile.TemporaryDirectory(prefix="firma-pooler-") as tmp, pgbouncer.running(args.pool_size) as bouncer:
        workdir = Path(tmp)
        legs = [("direct to PostgreSQL", False, "none"),
                ("through PgBouncer (transaction), FIRMA_DATABASE_POOLER=transaction", True, "transaction")]
        if args.unset:
            legs.append(("through PgBouncer (transaction), setting unset", True, None))
        for label, pooled, setting in legs:
            with common.fresh_database("postgresql", workdir, migrated=False) as url:
                ok = run(label, bouncer.url(url) if pooled else url, setting, args, workdir)
                results.append(ok if setting else True)  # the unset leg shows the failure; it is expected
    return 0 if all(results) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
