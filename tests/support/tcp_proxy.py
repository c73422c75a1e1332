"""A TCP proxy on 127.0.0.1 between the app and the database, that a test can break on purpose.

``stop()`` closes the listening socket and every open connection (the database "goes away": new
connections are refused, pooled ones are dead); ``start()`` listens again on the same port (it is
back). ``blackhole()`` accepts connections and never answers (a server that hangs), so only the
client's own timeouts end the wait. ``round_trips`` counts the times a client spoke after the server
had answered it (or first): the waits on the database that a request's statements cost, however many
statements each carries (PostgreSQL's pipeline mode sends several in one).
"""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._mode = "forward"
        self.round_trips = 0

    def start(self) -> "TcpProxy":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._mode = "forward"
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def blackhole(self) -> None:
        self._close_connections()
        self._mode = "blackhole"

    def stop(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        self._close_connections()

    def _close_connections(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(client)
            if self._mode == "blackhole":
                continue  # hold it open, say nothing
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.add(server)
            turn = {"client": False}  # who spoke last on this connection: the client (True) or the server
            for a, b, from_client in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(a, b, from_client, turn), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, from_client: bool, turn: dict) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    if from_client and not turn["client"]:
                        self.round_trips += 1
                    turn["client"] = from_client
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ProxyProcess:
    """A ``TcpProxy`` in a process of its own, which a test can freeze (SIGSTOP) and thaw (SIGCONT):
    the connections stay open and the kernel keeps accepting and acknowledging, but nothing is
    forwarded, as with a hung server or pooler (only the client's own limits end a wait)."""

    def __init__(self, upstream_host: str, upstream_port: int):
        import subprocess
        import sys
        from pathlib import Path

        root = Path(__file__).resolve().parents[2]
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.tcp_proxy", upstream_host, str(upstream_port)],
                                     cwd=root, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def freeze(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGCONT)

    def __enter__(self) -> "ProxyProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.thaw()
        self.proc.kill()
        self.proc.wait()


if __name__ == "__main__":  # the process of a ProxyProcess: print the port, forward until killed
    import sys
    import time

    proxy = TcpProxy(sys.argv[1], int(sys.argv[2])).start()
    print(proxy.port, flush=True)
    while True:
        time.sleep(3600)
