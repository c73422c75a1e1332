"""Broadcast benchmark (not a test): prints figures, their baselines and the ratios.

    python3 bench/broadcast.py            # full: 1,000,000 recipients (a few minutes)
    python3 bench/broadcast.py --smoke    # the same steps, small, in seconds

Needs the PostgreSQL server of the tests (FIRMA_BENCH_POSTGRES_URL, default
postgresql+psycopg://postgres@127.0.0.1:5432/postgres); a fresh database is made and dropped.

1. messages per second for one and for two `firma worker --drain` processes, against a Twilio
   stand-in (its own process) that takes 50 ms per request, with no rate cap;
2. time to materialise the deliveries of a 1,000,000-recipient broadcast on PostgreSQL (INSERT ... SELECT);
   with what each message costs: the workers' own CPU (user and system) and the database's commits;
3. peak memory (VmHWM) of the process that plans that broadcast (`firma broadcast --enqueue`) and of a
   worker sending it, against the same processes for a 1,000-recipient broadcast.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

SERVER = os.environ.get("FIRMA_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARGET_RATE = 1000.0  # msg/s one worker should keep in flight against a 50 ms provider
MATERIALISE_BUDGET = 30.0  # seconds for a million deliveries


def seed(url: str, n: int, state: str, start: int) -> None:
    """``n`` SMS signers in ``state``, written by PostgreSQL itself (generate_series)."""
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("""
            INSERT INTO members (channel, address, language, simulated, created_at)
            SELECT 'sms', '+1' || (2000000000 + g)::text, CASE WHEN g % 3 = 0 THEN 'es' ELSE 'en' END, false, now()
            FROM generate_series(CAST(:a AS bigint), CAST(:b AS bigint)) g"""), {"a": start, "b": start + n - 1})
        c.execute(text("""
            INSERT INTO signatures (member_id, campaign, channel, name, zip_code, city, state, timezone, language,
                                    simulated, signed_at)
            SELECT m.id, 'end-scomm', 'sms', 'Signer ' || m.id, '60601', 'Chicago', :st, 'America/Chicago',
                   m.language, false, now()
            FROM members m WHERE m.id NOT IN (SELECT member_id FROM signatures)"""), {"st": state})
    eng.dispose()


def env_for(url: str, standin_url: str, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), FIRMA_DATABASE_URL=url, FIRMA_QUIET_HOURS="off",
               FIRMA_SMS_RATE="1000000", FIRMA_PUBLIC_URL="https://firma.example.org",
               TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="bench-token",
               TWILIO_MESSAGING_SERVICE_SID="MG" + "1" * 32, TWILIO_API_URL=standin_url, TELEGRAM_BOT_TOKEN="")
    env.update(extra)
    return env


def firma(env, *args, wait=True, log=None):
    cmd = [sys.executable, "-W", "ignore", "-m", "webhooks.cli", *args]
    out = open(log, "w") if log else subprocess.DEVNULL
    p = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
    if wait:
        p.wait()
        if p.returncode:
            raise SystemExit(f"{' '.join(args)} failed ({p.returncode}); see {log}")
    return p


def hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def watch_peak(p: subprocess.Popen, seconds: float | None = None) -> float:
    """Peak resident memory of ``p`` (MB): polled until it exits, or SIGTERM after ``seconds``."""
    peak, started = 0.0, time.monotonic()
    while p.poll() is None:
        try:
            peak = max(peak, hwm_mb(p.pid))
        except OSError:
            break
        if seconds is not None and time.monotonic() - started > seconds:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
            break
        time.sleep(0.05)
    return peak


def reset(url: str) -> None:
    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("TRUNCATE deliveries, broadcasts, send_throttles RESTART IDENTITY CASCADE"))
    eng.dispose()


def create(url: str, state: str) -> tuple[int, float, int]:
    """create_broadcast in this process: (id, seconds, recipients)."""
    from bots import broadcasts
    from bots.runtime import Runtime
    from config.settings import Settings

    rt = Runtime.build(Settings(database_url=url, quiet_hours=None))
    t = time.perf_counter()
    c = broadcasts.create_broadcast(rt, broadcasts.BroadcastRequest("end-scomm", "Bench {first_name}", state=state))
    took = time.perf_counter() - t
    rt.db.dispose()
    return c.id, took, c.recipients


def throughput(url: str, env: dict, workers: int, n: int, logdir: Path, concurrency: int = 1000,
               steady: bool = False) -> float | tuple[float, float]:
    """Messages per second for ``workers`` processes draining one broadcast of ``n``, each keeping at
    most ``concurrency`` provider calls in flight, from the first claim to the last message; checks
    every message was sent exactly once. With ``steady``, also the rate of the middle 80% of the
    messages (from the 10th to the 90th percentile of the times they were recorded sent), leaving out
    the start (processes starting, first claims) and the end (the last blocks draining), which weigh
    more in a short run than in a long broadcast."""
    reset(url)
    bid, _, got = create(url, "TX")
    assert got == n, (got, n)
    procs = [firma(env, "worker", "--drain", "--concurrency", str(concurrency), "--batch", str(min(concurrency, 1000)),
                   wait=False, log=logdir / f"w{workers}-c{concurrency}-{i}.log") for i in range(workers)]
    cpu = 0.0
    commits = _commits(url)
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)  # the worker's own CPU, user and system
        p.returncode = os.waitstatus_to_exitcode(status)
        cpu += usage.ru_utime + usage.ru_stime
    time.sleep(0.7)  # the workers' backends report their statistics as they end
    COST[(workers, concurrency)] = (1000 * (cpu - workers * _idle_cpu(env, logdir)) / n,
                                    (_commits(url) - commits) / n)
    eng = create_engine(url)
    with eng.connect() as c:
        sent, first, last = c.execute(text(
            "SELECT count(*), min(updated_at), max(sent_at) FROM deliveries WHERE broadcast_id = :b AND status = 'sent'"),
            {"b": bid}).one()
        claimed_first = c.execute(text("SELECT started_at FROM broadcasts WHERE id = :b"), {"b": bid}).scalar()
        times = c.execute(text("SELECT sent_at FROM deliveries WHERE broadcast_id = :b AND status = 'sent' "
                               "ORDER BY sent_at"), {"b": bid}).scalars().all() if steady else []
    eng.dispose()
    assert sent == n, f"only {sent} of {n} sent; see {logdir}"
    whole = n / (last - claimed_first).total_seconds()
    if not steady:
        return whole
    lo, hi = n // 10, n - 1 - n // 10
    return whole, (hi - lo) / max((times[hi] - times[lo]).total_seconds(), 1e-6)


# (workers, concurrency) -> (the workers' CPU ms per message, database commits per message), per throughput run
COST: dict[tuple[int, int], tuple[float, float]] = {}


_IDLE: list[float] = []


def _idle_cpu(env: dict, logdir: Path) -> float:
    """The CPU a `firma worker --drain` takes with nothing to send (starting, importing, exiting): left
    out of the cost per message. Measured once, after the throughput run that asks first."""
    if not _IDLE:
        p = firma(env, "worker", "--drain", wait=False, log=logdir / "idle.log")
        _, _, usage = os.wait4(p.pid, 0)
        _IDLE.append(usage.ru_utime + usage.ru_stime)
    return _IDLE[0]


def _commits(url: str) -> int:
    """Transactions committed in the bench's database so far (every connection's, ours included)."""
    eng = create_engine(url)
    with eng.connect() as c:
        n = c.execute(text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")).scalar()
    eng.dispose()
    return int(n or 0)


def client_only(standin_url: str, n: int, concurrency: int = 1000) -> float:
    """Baseline: the twilio library's asyncio client alone (no database, no worker) against the same
    stand-in: the most one Python process can do on this machine."""
    import asyncio

    from bots.channels.sms import SMS
    from config.settings import Settings

    settings = Settings(twilio_account_sid="AC" + "0" * 32, twilio_auth_token="bench-token",
                        twilio_messaging_service_sid="MG" + "1" * 32, twilio_api_url=standin_url)

    async def go() -> float:
        async with SMS.sender(settings, concurrency) as sender:
            sem = asyncio.Semaphore(concurrency)

            async def one(i: int):
                async with sem:
                    return await sender.send(f"+1{3000000000 + i}", "Bench")

            t = time.perf_counter()
            results = await asyncio.gather(*(one(i) for i in range(n)))
            assert all(r.kind == "sent" for r in results)
            return n / (time.perf_counter() - t)

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="small sizes, runs in seconds")
    ap.add_argument("--scale-concurrency", type=int, default=25,
                    help="in-flight provider calls per worker for the scale-out figure (default 25)")
    ap.add_argument("--throughput-only", action="store_true", help="only the messages-per-second figures")
    args = ap.parse_args()
    n_tp, n_big, mem_run = (600, 5_000, 3.0) if args.smoke else (10_000, 1_000_000, 15.0)
    n_small = 1_000

    name = f"firma_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    q = mp.get_context("spawn").Queue()
    from bench.fast_standin import serve

    standin = mp.get_context("spawn").Process(target=serve, args=(0.05, q), daemon=True)
    standin.start()
    logdir = Path(tempfile.mkdtemp(prefix="firma-bench-"))
    rows = []
    try:
        from storage import db

        db.upgrade(url)
        env = env_for(url, q.get(timeout=30))
        seed(url, n_tp, "TX", 1)
        print(f"[bench] {'smoke' if args.smoke else 'full'} run; logs in {logdir}", flush=True)

        raw = client_only(env["TWILIO_API_URL"], n_tp)
        one = throughput(url, env, 1, n_tp, logdir)
        two = throughput(url, env, 2, n_tp, logdir)
        rows += [("msg/s, 1 worker, 50 ms provider, no cap", f"{one:,.0f}", f"target {TARGET_RATE:,.0f}",
                  f"{one / TARGET_RATE:.2f}x"),
                 ("", "", f"twilio client alone {raw:,.0f}", f"{one / raw:.2f}x"),
                 ("msg/s, 2 workers (same 2-CPU host)", f"{two:,.0f}", f"1 worker {one:,.0f}", f"{two / one:.2f}x")]
        # Scale-out as on separate hosts: each worker bound by the provider's latency (at most
        # --scale-concurrency calls in flight), not by a CPU the two would share here. Two workers then
        # show whether they serialise on the database (claims, the shared rate row) or add up.
        c = args.scale_concurrency
        one_c, one_steady = throughput(url, env, 1, n_tp, logdir, concurrency=c, steady=True)
        two_c, two_steady = throughput(url, env, 2, n_tp, logdir, concurrency=c, steady=True)
        rows += [(f"msg/s, 1 worker, {c} in flight", f"{one_c:,.0f}", f"ceiling {c / 0.05:,.0f} ({c} / 50 ms)",
                  f"{one_c / (c / 0.05):.2f}x"),
                 (f"msg/s, 2 workers, {c} in flight each", f"{two_c:,.0f}", f"1 worker {one_c:,.0f}",
                  f"{two_c / one_c:.2f}x"),
                 ("  the same, middle 80% of the messages", f"{two_steady:,.0f}", f"1 worker {one_steady:,.0f}",
                  f"{two_steady / one_steady:.2f}x")]
        for (w, conc), (ms, commits) in sorted(COST.items()):
            rows.append((f"worker CPU per message, {w} worker{'s' if w > 1 else ''}, {conc} in flight",
                         f"{ms:.3f} ms", f"{commits:.3f} commits/msg", ""))
        if args.throughput_only:
            return report(rows)

        reset(url)
        seed(url, n_small, "CA", 1_000_000_000)
        small_cli = firma(env, "broadcast", "--campaign", "end-scomm", "--message", "Hi", "--state", "CA",
                          "--yes", "--enqueue", wait=False, log=logdir / "plan-small.log")
        small_plan_mb = watch_peak(small_cli)
        small_worker_mb = watch_peak(firma(env, "worker", "--drain", "--concurrency", "1000", wait=False,
                                           log=logdir / "worker-small.log"))

        reset(url)
        t = time.perf_counter()
        seed(url, n_big, "IL", 2_000_000)
        seeded = time.perf_counter() - t
        eng = create_engine(url)
        with eng.begin() as c:  # baseline: reading the same recipients into a bare table
            t = time.perf_counter()
            c.execute(text("""CREATE TEMP TABLE bare AS SELECT m.id, m.channel, m.address, m.language, s.name,
                                s.timezone FROM signatures s JOIN members m ON m.id = s.member_id
                              WHERE s.campaign = 'end-scomm' AND s.state = 'IL' AND m.opted_out_at IS NULL"""))
            bare = time.perf_counter() - t
        eng.dispose()
        bid, took, got = create(url, "IL")
        rows += [(f"materialise {got:,} deliveries (INSERT ... SELECT, PostgreSQL)", f"{took:.1f} s",
                  f"target {MATERIALISE_BUDGET:.0f} s; bare copy {bare:.1f} s", f"{took / bare:.1f}x bare"),
                 ("  (seeding the signers for it)", f"{seeded:.1f} s", "", "")]

        reset(url)
        big_cli = firma(env, "broadcast", "--campaign", "end-scomm", "--message", "Hi", "--state", "IL",
                        "--yes", "--enqueue", wait=False, log=logdir / "plan-big.log")
        big_plan_mb = watch_peak(big_cli)
        big_worker = firma(env, "worker", "--concurrency", "1000", wait=False, log=logdir / "worker-big.log")
        big_worker_mb = watch_peak(big_worker, seconds=mem_run)
        rows += [(f"peak memory, planning {n_big:,} recipients", f"{big_plan_mb:.0f} MB",
                  f"{n_small:,}: {small_plan_mb:.0f} MB", f"{big_plan_mb / small_plan_mb:.2f}x"),
                 (f"peak memory, worker sending to {n_big:,} ({mem_run:.0f} s)", f"{big_worker_mb:.0f} MB",
                  f"{n_small:,}: {small_worker_mb:.0f} MB", f"{big_worker_mb / small_worker_mb:.2f}x")]
    finally:
        standin.terminate()
        standin.join(5)
        admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    report(rows)


def report(rows) -> None:
    width = max(len(r[0]) for r in rows)
    load = os.getloadavg()[0]
    print(f"\n{os.cpu_count()} CPUs, load average {load:.1f} at the end (other work on the machine skews these)")
    print(f"{'figure'.ljust(width)}  {'measured':>12}  {'baseline':<36}  ratio")
    for r in rows:
        print(f"{r[0].ljust(width)}  {r[1]:>12}  {r[2]:<36}  {r[3]}")
    print("BROADCAST_RESULTS " + json.dumps([list(r) for r in rows]))


if __name__ == "__main__":
    main()
