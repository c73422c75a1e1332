"""Inbound benchmark: the SMS webhook under gunicorn against a bare Flask baseline.

    python3 bench/inbound.py            # SQLite and PostgreSQL, sync and gthread workers
    python3 bench/inbound.py --smoke    # a few seconds (CI): a small run
    python3 bench/inbound.py --profile DIR   # also records py-spy profiles of the firma workers

Each run starts a fresh database (``firma db upgrade``), then gunicorn with the real app
(``webhooks:create_app()``) and, in the same run and the same way, gunicorn with
``bench/baseline_app.py`` (parses the same form, answers constant TwiML). Both get the same replay
of Twilio-signed requests: whole conversations (keyword, name, ZIP), each from its own phone number,
each message with its own MessageSid, in ``--rounds`` rounds of firma then the baseline (both servers
stay up), so each ratio compares runs made seconds apart; the medians are reported, with the worst
round's p99. The bench checks afterwards that the campaign counter grew by exactly the number of
conversations, so a fast run that lost signatures cannot pass.

Then, with ``--open-loop`` (default ``100,target``), firma alone gets requests at fixed rates whatever
its speed (open loop: a short code's 100 messages a second, and 40% of the baseline's req/s), and the
bench prints the latency at each: the rounds above measure the p99 at saturation, where it only says
how long the 8 connections' queue is.

With ``--ceiling``, each round also drives ``bench/ceiling_app.py``: firma's webhook with the database
taken out (the engine on state in memory), served the same way. Its ratio is the most any database
could leave firma, and the CPU per request between it and firma is what the database costs.

Each round also drives the durable floor (``bench/durable_app.py``: the signature check, one INSERT of
the MessageSid and COMMIT on the same database, constant TwiML; ``--no-floor`` leaves it out), the
least any correct webhook must do: firma's ratio to it is what the conversation costs beyond that.

On PostgreSQL, each round also drives firma through PgBouncer in transaction pooling mode (a
PgBouncer the bench starts, ``FIRMA_DATABASE_POOLER=transaction``: no server-side prepared
statements), on the same database beside the direct one, so the two figures share the round's
baseline (``--no-pooler`` leaves it out; skipped with a note when pgbouncer is not installed).

Targets: firma >= 40% of the baseline's requests/s, p99 < 30 ms at that load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common  # noqa: E402
from bench.common import log  # noqa: E402

FIRMA_APP = "webhooks:create_app()"
BASELINE_APP = "bench.baseline_app:create_app()"
FLOOR_APP = "bench.durable_app:create_app()"
CEILING_APP = "bench.ceiling_app:create_app()"
TARGET_RATIO = 0.40
TARGET_P99_MS = 30.0

_phone_base = [13120000000]


def next_phones(n: int) -> int:
    base = _phone_base[0]
    _phone_base[0] += n + 1000
    return base


def drive(server: common.Server, conversations: int, connections: int, cpu: dict | None = None,
          postgres: bool = False):
    """Replay ``conversations`` fresh signed conversations against ``server``. With ``cpu`` (a dict),
    also record the CPU each request cost: gunicorn's processes, the PostgreSQL server's (``postgres``:
    the app uses the server on this machine) and the load generator, in ms, and the share of the machine
    that was busy."""
    lanes = common.per_connection(common.conversation_requests(conversations, next_phones(conversations)),
                                  connections)
    requests = [[common.raw_request(p) for p in lane] for lane in lanes]
    groups = {"gunicorn": [server.proc.pid, *server.worker_pids()],
              "postgres": common.postgres_pids() if postgres else []}
    before = common.cpu_snapshot(groups)
    result = common.python_load(server.port, requests)
    if cpu is not None:
        cpu.update(before.per_request(common.cpu_snapshot(groups), result.requests),
                   loadgen=1000 * result.client_cpu * result.seconds / max(result.requests, 1))
    return result, conversations


def count(server: common.Server) -> int:
    return common.get_json(f"{server.base}/api/campaigns/{common.CAMPAIGN}")["signatures"]


def start_profile(server: common.Server, out_dir: Path, label: str) -> list[subprocess.Popen]:
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for pid in server.worker_pids():
        out = out_dir / f"{label}-{pid}.txt"
        procs.append(subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
                                       "--nonblocking", "--output", str(out)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)  # py-spy attaches
    return procs


def stop_profile(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def run_one(kind: str, url: str, worker_class: str, threads: int, args, workdir: Path,
            pooled_url: str | None = None) -> dict:
    """firma and the baseline, both served the same way and both up at once, driven in turn for
    ``args.rounds`` rounds: on a machine whose speed drifts (a shared host), each ratio compares two runs
    made seconds apart, and the median of the rounds is the figure. With ``pooled_url`` (the same
    database through PgBouncer in transaction mode), a second firma on it is driven in each round too."""
    env = common.app_env(url, FIRMA_DATABASE_POOLER="none")
    row = {"database": kind,
           "workers": f"{args.workers} {worker_class}" + (f" x{threads} threads" if threads > 1 else "")}
    serve = dict(workers=args.workers, worker_class=worker_class, threads=threads, log_dir=workdir)
    rounds = []
    ceiling_rounds = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(common.gunicorn(FIRMA_APP, env, **serve))
        base_server = stack.enter_context(common.gunicorn(BASELINE_APP, env, **serve))
        floor = stack.enter_context(common.gunicorn(FLOOR_APP, env, **serve)) if args.floor else None
        ceiling = stack.enter_context(common.gunicorn(CEILING_APP, env, **serve)) if args.ceiling else None
        pooled = None
        if pooled_url:
            pooled = stack.enter_context(common.gunicorn(
                FIRMA_APP, common.app_env(pooled_url, FIRMA_DATABASE_POOLER="transaction"), **serve))
            drive(pooled, args.warmup, args.connections)
        drive(server, args.warmup, args.connections)  # warm every worker of both
        drive(base_server, args.warmup, args.connections)
        if floor:
            drive(floor, args.warmup, args.connections)
        if ceiling:
            drive(ceiling, args.warmup, args.connections)
        before = count(server)
        pooled_rounds = []
        floor_rounds = []
        profilers = start_profile(server, Path(args.profile), f"{kind}-{worker_class}") if args.profile else []
        for _ in range(args.rounds):
            cpu: dict = {}
            base_cpu: dict = {}
            result, conversations = drive(server, args.conversations, args.connections, cpu, kind == "postgresql")
            base, _ = drive(base_server, args.conversations, args.connections, base_cpu)
            rounds.append((result, base, cpu, base_cpu))
            if floor:
                floor_rounds.append(drive(floor, args.conversations, args.connections)[0])
            if pooled:
                pooled_before = count(pooled)
                pooled_cpu: dict = {}
                through, _ = drive(pooled, args.conversations, args.connections, pooled_cpu, True)
                pooled_rounds.append((through, base, pooled_cpu, count(pooled) - pooled_before))
            if ceiling:
                ceiling_cpu: dict = {}
                top, _ = drive(ceiling, args.conversations, args.connections, ceiling_cpu)
                ceiling_rounds.append((top, base, ceiling_cpu))
        stop_profile(profilers)
        base_rps = statistics.median(b.rps for _, b, *_ in rounds)
        open_loop = []
        for rate in open_loop_rates(args.open_loop, base_rps):
            n = max(2, round(rate * args.open_seconds / 3))
            conversations_open = common.conversation_requests(n, next_phones(n))
            res = common.python_load_open(server.port, [[common.raw_request(p) for p in c] for c in conversations_open],
                                          rate)
            open_loop.append({"rate": round(rate), "kept_up_rps": round(res.rps), "requests": res.requests,
                              "p50_ms": round(res.p50_ms, 2), "p99_ms": round(res.p99_ms, 2),
                              "non_2xx": res.non_2xx + res.errors, "conversations": n})
        signed = count(server) - before - sum(o["conversations"] for o in open_loop) \
            - sum(added for *_, added in pooled_rounds)  # one database: the pooled rounds' signatures too
        if args.wrk_check and common.have_wrk():
            # the same baseline, loaded by wrk (C) instead: if wrk gets much more, the Python generator
            # was the bottleneck
            body = common.conversation_requests(1, 19990000000)[0][1].body
            row["wrk_baseline_rps"] = round(common.wrk_constant(base_server.port, body, args.connections,
                                                                max(2, round(rounds[-1][1].seconds)), workdir).rps)
    med = statistics.median
    ratios = [r.rps / b.rps if b.rps else 0.0 for r, b, _, _ in rounds]
    row.update(
        loadgen=f"{rounds[0][0].tool}, {args.connections} connections", rounds=len(rounds),
        requests=sum(r.requests for r, *_ in rounds) // len(rounds),
        rps=round(med(r.rps for r, *_ in rounds)), p50_ms=round(med(r.p50_ms for r, *_ in rounds), 2),
        p99_ms=round(max(r.p99_ms for r, *_ in rounds), 2),  # the worst round's
        non_2xx=sum(r.non_2xx + r.errors for r, *_ in rounds),
        baseline_rps=round(med(b.rps for _, b, *_ in rounds)), baseline_p99_ms=round(max(b.p99_ms for _, b, *_ in rounds), 2),
        ratio=round(med(ratios), 3), ratios=[round(x, 3) for x in ratios],
        conversations=conversations * len(rounds), signatures_added=signed, exact=signed == conversations * len(rounds),
    )
    row["loadgen_cpu"] = round(max(max(r.client_cpu, b.client_cpu) for r, b, *_ in rounds), 2)
    # Where the ratio comes from: CPU per request, in ms (PostgreSQL's own only counts when it is local)
    row["cpu_ms_per_request"] = {k: round(med(c[k] for *_, c, _ in rounds), 3) for k in rounds[0][2]}
    row["baseline_cpu_ms_per_request"] = {k: round(med(c[k] for *_, c in rounds), 3)
                                          for k in rounds[0][3] if k != "postgres"}
    row["open_loop"] = open_loop
    if ceiling_rounds:
        row["ceiling"] = {"rps": round(med(t.rps for t, *_ in ceiling_rounds)),
                          "non_2xx": sum(t.non_2xx + t.errors for t, *_ in ceiling_rounds),
                          "ratio": round(med(t.rps / b.rps if b.rps else 0.0 for t, b, _ in ceiling_rounds), 3),
                          "cpu_ms_per_request": {k: round(med(c[k] for *_, c in ceiling_rounds), 3)
                                                 for k in ceiling_rounds[0][2] if k != "postgres"}}
    if floor_rounds:
        row["floor"] = {"rps": round(med(f.rps for f in floor_rounds)),
                        "p99_ms": round(max(f.p99_ms for f in floor_rounds), 2),
                        "non_2xx": sum(f.non_2xx + f.errors for f in floor_rounds),
                        "ratio": round(med(r.rps / f.rps if f.rps else 0.0 for (r, *_), f in zip(rounds, floor_rounds)), 3)}
    if pooled_rounds:
        row["pooled"] = {
            "via": "PgBouncer, pool_mode = transaction, FIRMA_DATABASE_POOLER=transaction",
            "rps": round(med(t.rps for t, *_ in pooled_rounds)),
            "p50_ms": round(med(t.p50_ms for t, *_ in pooled_rounds), 2),
            "p99_ms": round(max(t.p99_ms for t, *_ in pooled_rounds), 2),
            "non_2xx": sum(t.non_2xx + t.errors for t, *_ in pooled_rounds),
            "ratio": round(med(t.rps / b.rps if b.rps else 0.0 for t, b, *_ in pooled_rounds), 3),
            "signatures_added": sum(added for *_, added in pooled_rounds),
            "conversations": args.conversations * len(pooled_rounds),
            "cpu_ms_per_request": {k: round(med(c[k] for _, _, c, _ in pooled_rounds), 3)
                                   for k in pooled_rounds[0][2]},
        }
        row["pooled"]["exact"] = row["pooled"]["signatures_added"] == row["pooled"]["conversations"]
        if floor_rounds:
            row["pooled"]["floor_ratio"] = round(med(t.rps / f.rps if f.rps else 0.0
                                                     for (t, *_), f in zip(pooled_rounds, floor_rounds)), 3)
    row["meets_target"] = bool(row["ratio"] >= TARGET_RATIO and row["p99_ms"] < TARGET_P99_MS and row["exact"]
                               and row["non_2xx"] == 0)
    return row


def rates_spec(spec: str) -> list[str]:
    """``--open-loop``: a comma list of request rates, each a positive number or ``target``."""
    parts = [x.strip() for x in spec.split(",") if x.strip()]
    for part in parts:
        try:
            ok = part == "target" or float(part) > 0
        except ValueError:
            ok = False
        if not ok:
            raise argparse.ArgumentTypeError(f"{part!r} is neither a positive number of requests a second nor 'target'")
    return parts


def open_loop_rates(parts: list[str], baseline_rps: float) -> list[float]:
    """The open-loop rates of this run: ``target`` is 40% of its baseline's req/s."""
    return [TARGET_RATIO * baseline_rps if part == "target" else float(part) for part in parts]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="seconds-long run (CI): few conversations, Python load")
    ap.add_argument("--databases", default="sqlite,postgresql")
    ap.add_argument("--worker-classes", default=None,
                    help="comma list; gthread runs with --threads (default sync,gthread; --smoke: sync)")
    ap.add_argument("--conversations", type=int, default=3000, help="conversations per round (3 requests each)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="firma and the baseline driven in turn this many times; the medians are reported")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (firma and baseline alike)")
    ap.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    ap.add_argument("--warmup", type=int, default=300, help="conversations before measuring")
    ap.add_argument("--no-wrk-check", dest="wrk_check", action="store_false",
                    help="skip loading the baseline with wrk too (done when wrk is installed)")
    ap.add_argument("--open-loop", type=rates_spec, default="100,target", metavar="RATES",
                    help="after the rounds, firma's latency at these request rates, offered whatever its speed "
                         "(open loop): numbers, or 'target' for 40%% of the baseline's req/s; '' for none")
    ap.add_argument("--open-seconds", type=float, default=10.0, help="seconds of each open-loop run")
    ap.add_argument("--profile", metavar="DIR", help="record py-spy profiles (raw stacks) of the firma workers")
    ap.add_argument("--ceiling", action="store_true",
                    help="also drive firma with the database taken out (bench/ceiling_app.py) in each round")
    ap.add_argument("--no-floor", dest="floor", action="store_false",
                    help="do not drive the durable floor (bench/durable_app.py) in each round")
    ap.add_argument("--no-pooler", dest="pooler", action="store_false",
                    help="on PostgreSQL, do not also drive firma through PgBouncer in transaction mode")
    ap.add_argument("--pool-size", type=int, default=8,
                    help="PgBouncer's server connections (default_pool_size) for the pooled figure")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    if args.smoke:
        args.conversations, args.warmup, args.connections, args.wrk_check, args.rounds = 60, 10, 4, False, 1
        args.open_loop, args.open_seconds = ["30"], 1.0
    if args.worker_classes is None:
        args.worker_classes = "sync" if args.smoke else "sync,gthread"

    print(f"machine: {common.machine()}")
    print(f"load generator: Python asyncio, {args.connections} connections, {args.conversations} conversations "
          f"({3 * args.conversations} requests) per round, {args.rounds} rounds of firma then the baseline")
    rows = []
    with tempfile.TemporaryDirectory(prefix="firma-bench-") as tmp:
        workdir = Path(tmp)
        for kind in [d.strip() for d in args.databases.split(",") if d.strip()]:
            with common.fresh_database(kind, workdir) as url, pooler(kind, args) as bouncer:
                for wc in [w.strip() for w in args.worker_classes.split(",") if w.strip()]:
                    threads = args.threads if wc == "gthread" else 1
                    log(f"running {kind} / {wc} ...")
                    row = run_one(kind, url, wc, threads, args, workdir, bouncer.url(url) if bouncer else None)
                    rows.append(row)
                    print(format_row(row), flush=True)
    print()
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    print("INBOUND_RESULTS " + json.dumps(rows))
    return 0


@contextlib.contextmanager
def pooler(kind: str, args):
    """A PgBouncer in transaction mode for the PostgreSQL rows (None: not asked for, or not installed)."""
    if kind != "postgresql" or not args.pooler:
        yield None
        return
    from tests.support import pgbouncer

    try:
        with pgbouncer.running(pool_size=args.pool_size) as bouncer:
            yield bouncer
    except pgbouncer.PgBouncerMissing as exc:
        log(f"no pooled figure: {exc}")
        yield None


def format_row(r: dict) -> str:
    extra = f", load generator CPU {r['loadgen_cpu']:.0%} of a core"
    if r["rounds"] > 1:
        extra += f", ratio of each round {', '.join(f'{x:.0%}' for x in r['ratios'])}"
    c, b = r["cpu_ms_per_request"], r["baseline_cpu_ms_per_request"]
    server = f" + PostgreSQL server {c['postgres']:.2f} ms" if r["database"] == "postgresql" else ""
    extra += (f"\n    CPU per request: firma gunicorn {c['gunicorn']:.2f} ms{server}"
              f" + load generator {c['loadgen']:.2f} ms, machine {c['machine_busy']:.0%} busy | baseline gunicorn"
              f" {b['gunicorn']:.2f} ms + load generator {b['loadgen']:.2f} ms, machine {b['machine_busy']:.0%} busy")
    if "ceiling" in r:
        t = r["ceiling"]
        extra += (f"\n    ceiling, firma without a database: {t['rps']} req/s, {t['ratio']:.0%} of the baseline, gunicorn"
                  f" {t['cpu_ms_per_request']['gunicorn']:.2f} ms a request: the database costs firma"
                  f" {c['gunicorn'] - t['cpu_ms_per_request']['gunicorn']:.2f} ms in gunicorn{server}")
    if "floor" in r:
        f = r["floor"]
        extra += (f"\n    durable floor (signature check, one INSERT and COMMIT): {f['rps']} req/s, p99 {f['p99_ms']:.2f} ms,"
                  f" non-2xx {f['non_2xx']}: firma {r['ratio']:.0%} of bare Flask, {f['ratio']:.0%} of the durable floor")
    if "pooled" in r:
        p = r["pooled"]
        floor_ratio = f", {p['floor_ratio']:.0%} of the durable floor" if "floor_ratio" in p else ""
        extra += (f"\n    through PgBouncer (transaction mode): firma {p['rps']} req/s, p50 {p['p50_ms']:.2f} ms, p99 "
                  f"{p['p99_ms']:.2f} ms, ratio {p['ratio']:.0%} (direct {r['ratio']:.0%}){floor_ratio}, CPU per request gunicorn "
                  f"{p['cpu_ms_per_request']['gunicorn']:.2f} ms + PostgreSQL and PgBouncer "
                  f"{p['cpu_ms_per_request']['postgres']:.2f} ms | signatures {p['signatures_added']}/{p['conversations']}"
                  f" {'exact' if p['exact'] else 'WRONG'}, non-2xx {p['non_2xx']}")
    if "wrk_baseline_rps" in r:
        extra += f", baseline under wrk {r['wrk_baseline_rps']} req/s"
    for o in r.get("open_loop", []):
        kept = "kept up" if o["kept_up_rps"] >= 0.95 * o["rate"] else f"fell behind: {o['kept_up_rps']} req/s"
        extra += (f"\n    open loop, {o['rate']} req/s offered ({kept}): firma p50 {o['p50_ms']:.2f} ms, p99 "
                  f"{o['p99_ms']:.2f} ms, non-2xx {o['non_2xx']}")
    return (f"{r['database']:<10} {r['workers']:<22} firma {r['rps']:>6} req/s  p50 {r['p50_ms']:.2f} ms  "
            f"p99 {r['p99_ms']:.2f} ms | baseline {r['baseline_rps']:>6} req/s  p99 {r['baseline_p99_ms']:.2f} ms"
            f" | ratio {r['ratio']:.0%} (target >= {TARGET_RATIO:.0%}), p99 target < {TARGET_P99_MS:.0f} ms"
            f" | signatures {r['signatures_added']}/{r['conversations']} {'exact' if r['exact'] else 'WRONG'}"
            f", non-2xx {r['non_2xx']}{extra} -> {'OK' if r['meets_target'] else 'MISSES TARGET'}")


def table(rows: list[dict]) -> str:
    lines = ["| database | gunicorn workers | firma req/s | p50 ms | p99 ms | baseline req/s | ratio | durable floor req/s "
             "| ratio to the floor | signatures exact |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        f = r.get("floor", {})
        floor_rps, floor_ratio = f.get("rps", "-"), f"{f['ratio']:.0%}" if f else "-"
        lines.append(f"| {r['database']} | {r['workers']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['baseline_rps']} | {r['ratio']:.0%} | {floor_rps} | {floor_ratio} | {'yes' if r['exact'] else 'NO'} |")
        if "pooled" in r:
            p = r["pooled"]
            pooled_floor = f"{p['floor_ratio']:.0%}" if "floor_ratio" in p else "-"
            lines.append(f"| {r['database']} through PgBouncer (transaction) | {r['workers']} | {p['rps']} | "
                         f"{p['p50_ms']} | {p['p99_ms']} | {r['baseline_rps']} | {p['ratio']:.0%} | {floor_rps} | "
                         f"{pooled_floor} | {'yes' if p['exact'] else 'NO'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
