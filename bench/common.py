"""Shared pieces of the benchmarks: databases, gunicorn on a pre-bound socket, signed Twilio
conversations, and a Python load generator (asyncio, raw HTTP/1.1 keep-alive) for when wrk is absent.

Everything runs on 127.0.0.1 on ephemeral ports; every database a bench makes is dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import twilio_client  # noqa: E402  (signing exactly as Twilio does)

PG_SERVER = os.environ.get("FIRMA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CAMPAIGN = "end-scomm"
KEYWORD = "SCOMM"
# Real names and real ZIPs, so every conversation ends in a signature.
NAMES = ["Ana María López", "José Núñez", "Guadalupe Ramírez", "John Smith", "Nguyen Thi Lan",
         "Carmen Ortiz", "Luis Hernández", "Rosa Parks", "Miguel Ángel Torres", "Fatima Diallo"]
ZIPS = ["60601", "78520", "90001", "10001", "33101", "85001", "98101", "02108", "30301", "94103"]


# ---------------------------------------------------------------------------- machine and output

def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) / 1024 / 1024
    return f"{os.cpu_count()} CPUs ({model}), {mem_gb:.0f} GB RAM, Python {platform.python_version()}"


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- databases

@contextlib.contextmanager
def fresh_database(kind: str, workdir: Path, migrated: bool = True):
    """A new database, migrated (``firma db upgrade`` run as a subprocess) unless ``migrated`` is
    False; dropped afterwards."""
    if kind == "sqlite":
        path = workdir / f"bench-{uuid.uuid4().hex[:8]}.db"
        url = f"sqlite:///{path}"
        if migrated:
            migrate(url)
        yield url
        return
    with scratch_postgres(PG_SERVER) as url:
        if migrated:
            migrate(url)
        yield url


@contextlib.contextmanager
def scratch_postgres(server_url: str):
    """A new, empty database on the PostgreSQL server at ``server_url``, dropped afterwards (also when
    the bench fails)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"firma_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def page_bench_main(doc: str, run, default_rows: int, unit: str) -> None:
    """The command line of a page bench: ``run(url, rows)`` on a scratch SQLite file, or on a scratch
    database of ``--database-url``'s PostgreSQL server; ``--smoke`` is 2,000 rows."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", type=int, default=default_rows)
    parser.add_argument("--smoke", action="store_true", help="2,000 rows: seconds (CI)")
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a scratch database is made there)")
    args = parser.parse_args()
    rows = 2_000 if args.smoke else args.rows
    if args.database_url:
        with scratch_postgres(args.database_url) as url:
            print(f"PostgreSQL, {rows:,} {unit}")
            run(url, rows)
    else:
        with tempfile.TemporaryDirectory() as folder:
            print(f"SQLite, {rows:,} {unit}")
            run(f"sqlite:///{folder}/bench.db", rows)


def app_env(url: str, **extra) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(ROOT), FIRMA_DATABASE_URL=url, TWILIO_AUTH_TOKEN=twilio_client.TOKEN,
               FIRMA_PUBLIC_URL=twilio_client.PUBLIC_URL, FIRMA_SECRET_KEY="bench-secret")
    env.update(extra)
    return env


def migrate(url: str, env: dict | None = None) -> None:
    """``firma db upgrade`` on ``url`` (in ``env``, else the bench's own), as a subprocess."""
    done = subprocess.run([sys.executable, "-m", "webhooks.cli", "db", "upgrade"], env=env or app_env(url),
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"firma db upgrade failed: {done.stderr[-3000:]}")


# ---------------------------------------------------------------------------- gunicorn

@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]


@contextlib.contextmanager
def gunicorn(app: str, env: dict, workers: int = 2, worker_class: str = "sync", threads: int = 1,
             log_dir: Path | None = None, preload: bool = False):
    """gunicorn on a socket bound here to 127.0.0.1:0 and handed over as fd:// (no port race);
    ``preload``: the app is made once in the master, before the workers are forked."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it, a keep-alive worker (gthread) that writes headers and
    # body separately waits on Nagle + delayed ACK (40 ms a response).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    log_path = (log_dir or Path(tempfile.gettempdir())) / f"gunicorn-{port}.log"
    cmd = [sys.executable, "-m", "gunicorn", app, "--bind", f"fd://{sock.fileno()}", "--workers", str(workers),
           "--worker-class", worker_class, "--threads", str(threads), "--backlog", "2048",
           "--error-logfile", str(log_path), "--log-level", "warning", "--timeout", "60"] + (["--preload"] if preload else [])
    with open(log_path, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, pass_fds=[sock.fileno()], stdout=fh, stderr=fh)
    sock.close()
    server = Server(proc, port, log_path)
    try:
        wait_ready(server, workers)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(server: Server, workers: int, timeout: float = 90.0) -> None:
    """Until every worker answers /healthz. A worker's start takes about 1.5 s of CPU (the ZIP table,
    the compiled statements, the catalog); on a machine loaded ten deep that is 10 s or more each."""
    deadline = time.monotonic() + timeout
    ok = 0
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(server.base + "/healthz", timeout=2) as r:
                ok = ok + 1 if r.status == 200 else 0
        except OSError:
            ok = 0
        # every worker has imported the app once a few health checks in a row pass
        if ok >= 2 * workers and len(server.worker_pids()) >= workers:
            return
        time.sleep(0.05)
    raise RuntimeError(f"gunicorn did not become ready: {server.log_path.read_text()[-2000:]}")


def get_json(url: str):
    import json

    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


# ---------------------------------------------------------------------------- signed conversations

@dataclass
class Prepared:
    path: str
    body: bytes
    signature: str


def conversation_requests(n: int, phone_base: int = 13125000000) -> list[list[Prepared]]:
    """Whole conversations (keyword, name, ZIP) from n distinct phones: one list of three requests
    per phone, each message with its own MessageSid and a real X-Twilio-Signature."""
    out: list[list[Prepared]] = []
    for i in range(n):
        phone = f"+{phone_base + i}"
        conv = []
        for body in (KEYWORD, NAMES[i % len(NAMES)], ZIPS[i % len(ZIPS)]):
            params = twilio_client.sms_params(phone, body)
            conv.append(Prepared(twilio_client.SMS_PATH, urlencode(params).encode(), twilio_client.sign(params)))
        out.append(conv)
    return out


def per_connection(conversations: list[list[Prepared]], connections: int) -> list[list[Prepared]]:
    """Deal whole conversations to connections. Each connection sends its requests one after another,
    so a phone's next message leaves only once its previous one was answered, as from a real phone
    (a shared queue would let a later message of a slow conversation overtake an earlier one)."""
    lanes: list[list[Prepared]] = [[] for _ in range(connections)]
    for i, conv in enumerate(conversations):
        lanes[i % connections].extend(conv)
    return lanes


def raw_request(p: Prepared) -> bytes:
    head = (f"POST {p.path} HTTP/1.1\r\nHost: firma.example.org\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(p.body)}\r\n"
            f"X-Twilio-Signature: {p.signature}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + p.body


# ---------------------------------------------------------------------------- load generators

@dataclass
class LoadResult:
    tool: str
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    non_2xx: int = 0
    errors: int = 0
    client_cpu: float = 0.0  # CPU seconds of the load generator / wall seconds (1.0 = one core busy)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def finish(self) -> "LoadResult":
        if self.latencies_ms:
            q = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
            self.p50_ms, self.p99_ms = statistics.median(self.latencies_ms), q[98]
        return self


async def _exchange(reader, writer, data: bytes) -> tuple[bool, bool]:
    """Send one raw request, read its response: (answered 2xx, the server closes the connection)."""
    writer.write(data)
    status_line = await reader.readline()
    length, close = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        low = line.lower()
        if low.startswith(b"content-length:"):
            length = int(line[15:])
        elif low.startswith(b"connection:") and b"close" in low:
            close = True
    if length:
        await reader.readexactly(length)
    parts = status_line.split()
    return len(parts) >= 2 and parts[1].startswith(b"2"), close


async def _play(port: int, reqs: list[bytes], result: LoadResult, due: float | None = None) -> None:
    """Send ``reqs`` one after another on a keep-alive connection (a new one whenever the server closed
    the last, as gunicorn's sync workers do). Each latency counts from when its request was due: the
    first at ``due`` (open loop; None: when it is sent), each next one when the previous was answered."""
    if due is not None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
    reader = writer = None
    try:
        for data in reqs:
            start = time.perf_counter() if due is None else due
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ok, close = await _exchange(reader, writer, data)
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
            result.non_2xx += not ok
            if close:
                writer.close()
                reader = writer = None
            due = None
    except (OSError, asyncio.IncompleteReadError):
        result.errors += 1
    finally:
        if writer is not None:
            writer.close()


def _drive(tool: str, plays) -> LoadResult:
    """Run ``plays(result)`` (coroutines filling ``result``) and time them: wall, the generator's CPU."""
    result = LoadResult(tool, 0, 0.0)

    async def run():
        await asyncio.gather(*plays(result))

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    asyncio.run(run())
    result.seconds = time.perf_counter() - t0
    result.requests = len(result.latencies_ms)
    result.client_cpu = (time.process_time() - cpu0) / result.seconds
    return result.finish()


def python_load(port: int, lanes: list[list[bytes]]) -> LoadResult:
    """Closed loop: one keep-alive connection per lane, each sending its lane's requests in order."""
    return _drive("python-asyncio", lambda result: [_play(port, lane, result) for lane in lanes])


def python_load_open(port: int, conversations: list[list[bytes]], rate: float) -> LoadResult:
    """Open loop: requests arrive at ``rate`` a second whatever the server's speed, as texts from many
    phones do. Conversation i starts at i * 3 / rate seconds and sends its messages one after another
    (each once the previous one was answered). A latency counts from when the request was due, so a
    server that falls behind shows it in its p99 (no coordinated omission); ``rps`` is the rate it
    kept up with."""
    t0 = time.perf_counter()
    per = len(conversations[0]) / rate if conversations else 0.0
    return _drive("python-asyncio, open loop",
                  lambda result: [_play(port, conv, result, t0 + i * per) for i, conv in enumerate(conversations)])


WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = io.open(os.getenv("FIRMA_WRK_BODY"), "rb"):read()
function done(summary, latency, requests)
  io.write(string.format("WRK_JSON {\"requests\": %d, \"us\": %d, \"p50\": %f, \"p99\": %f}\n",
    summary.requests, summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def wrk_constant(port: int, body: bytes, connections: int, seconds: int, workdir: Path) -> LoadResult:
    """wrk posting one constant form for a fixed time. Only for the baseline (it ignores signatures and
    state): wrk cannot replay conversations in order (its Lua cannot tell connections apart, and a
    run lasts its full -d), so it serves to check that the Python generator is not the bottleneck."""
    import json

    script, body_file = workdir / "constant.lua", workdir / "body.txt"
    script.write_text(WRK_SCRIPT)
    body_file.write_bytes(body)
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "-s", str(script),
           f"http://127.0.0.1:{port}/webhooks/twilio/sms"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, "FIRMA_WRK_BODY": str(body_file)}).stdout
    m = re.search(r"WRK_JSON (\{.*\})", out)
    if not m:
        raise RuntimeError(f"wrk printed no figures:\n{out}")
    d = json.loads(m.group(1))
    return LoadResult("wrk", d["requests"], d["us"] / 1e6, p50_ms=d["p50"], p99_ms=d["p99"])


@dataclass
class CpuSnapshot:
    """CPU seconds so far of some groups of processes (gunicorn's, the PostgreSQL server's), each
    process apart, and of the whole machine."""

    processes: dict[str, dict[int, float]]
    busy: float
    total: float

    def per_request(self, later: "CpuSnapshot", requests: int) -> dict[str, float]:
        """Milliseconds of CPU per request of each group between the two snapshots (the processes alive
        at both), and the share of the machine's CPU time that was busy."""
        out = {}
        for name, before in self.processes.items():
            after = later.processes[name]
            spent = sum(max(0.0, after[pid] - t) for pid, t in before.items() if pid in after)
            out[name] = 1000 * spent / max(requests, 1)
        out["machine_busy"] = (later.busy - self.busy) / max(later.total - self.total, 1e-9)
        return out


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pids: list[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seconds[pid] = (int(fields[11]) + int(fields[12])) / _HZ  # utime + stime
    return seconds


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (the postmaster, its backends and helpers)."""
    out = subprocess.run(["pgrep", "-u", "postgres"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_snapshot(groups: dict[str, list[int]]) -> CpuSnapshot:
    busy = total = 0.0
    with contextlib.suppress(OSError):
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        total = sum(values) / _HZ
        busy = total - (values[3] + values[4]) / _HZ  # less idle and iowait
    return CpuSnapshot({name: _cpu_seconds(pids) for name, pids in groups.items()}, busy, total)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def peak_rss_mb_children() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
