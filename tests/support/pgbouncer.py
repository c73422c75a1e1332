"""A PgBouncer of the test's own, in transaction pooling mode, between firma and PostgreSQL.

Debian's ``pgbouncer`` runs in the foreground as a subprocess on a free port of 127.0.0.1, its
configuration in a temporary folder; every database name is passed through to the server in
FIRMA_TEST_POSTGRES_URL (``* =``), so ``pooled(url)`` turns a test database's URL into the same
database through the pooler. PgBouncer refuses to run as root: then it is started with ``-u`` as the
owner of the PostgreSQL server's files (``postgres``), and its folder is made readable to that user.

``running()`` raises ``PgBouncerMissing`` when ``pgbouncer`` is not installed; the tests' fixture
(tests/conftest.py) skips with the reason, unless FIRMA_TEST_POOLER=1 (CI's pooled leg) or
FIRMA_REQUIRE_POSTGRES=1, which make it fail. The benchmarks use it too.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy.engine import make_url

from tests.support.postgres import PG_SERVER

REQUIRE_POOLER = os.environ.get("FIRMA_TEST_POOLER") == "1" or os.environ.get("FIRMA_REQUIRE_POSTGRES") == "1"
BINARIES = ("pgbouncer", "/usr/sbin/pgbouncer")


class PgBouncerMissing(RuntimeError):
    pass


def _binary() -> str | None:
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    """A running PgBouncer; ``url(database_url)`` is that database through it."""

    def __init__(self, proc: subprocess.Popen, port: int, folder: Path):
        self.proc, self.port, self.folder = proc, port, folder

    def url(self, database_url: str) -> str:
        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    @property
    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def freeze(self) -> None:
        """SIGSTOP: the pooler stops answering, its sockets stay open (a hung pooler or server)."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


def _config(port: int, folder: Path, server, pool_size: int) -> str:
    return f"""[databases]
* = host={server.host or '127.0.0.1'} port={server.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / 'users.txt'}
admin_users = {server.username or 'postgres'}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {folder / 'pgbouncer.log'}
pidfile =
log_connections = 0
log_disconnections = 0
"""


@contextmanager
def running(pool_size: int = 8) -> Iterator[PgBouncer]:
    """A PgBouncer in ``pool_mode = transaction`` with ``pool_size`` server connections per
    database and user (fewer than firma's clients, as in production: so consecutive transactions of
    one client connection land on different server connections)."""
    binary = _binary()
    if binary is None:
        raise PgBouncerMissing("pgbouncer is not installed (apt-get install pgbouncer)")
    server = make_url(PG_SERVER)
    folder = Path(tempfile.mkdtemp(prefix="firma-pgbouncer-"))
    port = _free_port()
    (folder / "users.txt").write_text(f'"{server.username or "postgres"}" ""\n')
    (folder / "pgbouncer.ini").write_text(_config(port, folder, server, pool_size))
    cmd = [binary]
    if os.geteuid() == 0:  # PgBouncer will not run as root: as the database server's user instead
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        for f in folder.iterdir():
            os.chown(f, user.pw_uid, user.pw_gid)
        cmd += ["-u", "postgres"]
    folder.chmod(0o755)
    cmd.append(str(folder / "pgbouncer.ini"))
    with open(folder / "stderr.log", "wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
    bouncer = PgBouncer(proc, port, folder)
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {(folder / 'stderr.log').read_text()} {bouncer.log}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not listen on {port}: {bouncer.log}") from None
                time.sleep(0.05)
        yield bouncer
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
