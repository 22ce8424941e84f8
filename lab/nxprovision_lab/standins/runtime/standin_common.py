"""Process plumbing shared by the stand-in programs shipped inside the lab's vendor-layout archives.

This file is copied verbatim into each archive and runs under the lab host's system python3 with only
the standard library: no nxprovision import is possible there.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

STANDIN_NOTE = "STAND-IN"


def banner(product: str, version: str, backend: str) -> str:
    """The line every stand-in prints first, so no log reader mistakes it for the vendor's product."""
    return (
        f"[{STANDIN_NOTE}] this is NOT {product} {version}: the nxprovision lab stand-in runs {backend} "
        f"behind {product}'s file layout and configuration files"
    )


def log(prog: str, message: str, stream=None) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    print(f"[{stamp}] {prog}: {message}", file=stream or sys.stderr, flush=True)


def die(prog: str, message: str, code: int = 1) -> None:
    log(prog, f"ERROR: {message}")
    sys.exit(code)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "_local_"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_addresses() -> list[str]:
    """IPv4 addresses of this host other than loopback (for the vendors' `_site_`-style names)."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            addr = str(info[4][0])
            if not is_loopback(addr) and addr not in found:
                found.append(addr)
    return found


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    target = "127.0.0.1" if host in ("", "0.0.0.0") else host
    try:
        with socket.create_connection((target, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float, alive: Callable[[], bool] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        if alive is not None and not alive():
            return False
        time.sleep(0.1)
    return False


def write_pidfile(path: str | os.PathLike[str]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(f"{os.getpid()}\n")


class Daemon:
    """Detach like the vendors' `-daemon`/`-d`/`fork` options: the caller returns once the server is up.

    The parent blocks on a pipe until the detached child reports readiness or failure, so a service
    manager (or a role's `command:` task) sees the real outcome of the start, not just a fork.
    """

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._wfd: int | None = None

    def detach(self, ready_message: Callable[[int], str] | None = None) -> None:
        rfd, wfd = os.pipe()
        if os.fork() > 0:
            os.close(wfd)
            with os.fdopen(rfd, "rb") as r:
                data = r.read().decode(errors="replace")
            status, _, text = data.partition(" ")
            if text:
                print(text, file=sys.stdout if status == "ok" else sys.stderr, flush=True)
            os._exit(0 if status == "ok" else 1)
        os.close(rfd)
        os.setsid()
        if os.fork() > 0:
            os._exit(0)
        self._wfd = wfd
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        nul = os.open(os.devnull, os.O_RDONLY)
        os.dup2(nul, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.close(nul)

    def report(self, ok: bool, text: str) -> None:
        if self._wfd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self._wfd, (("ok " if ok else "failed ") + text).encode())
            os.close(self._wfd)
        self._wfd = None


class Relay:
    """A TCP forwarder so a stand-in whose backend binds one address can listen on several.

    Vendors accept lists (`bindIp: 127.0.0.1,10.0.0.5`, `network.host: [a, b]`); the backends do not.
    """

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        self.sock = socket.socket(socket.AF_INET6 if ":" in listen[0] else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(listen)
        self.sock.listen(128)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                src.close()


def _tls_read(tls: ssl.SSLSocket) -> bytes | None:
    """Application data the TLS socket has now; None when the readable record was not data (a TLS 1.3 session
    ticket, a key update): a blocking recv() would wait for data the peer only sends after our next request."""
    tls.setblocking(False)
    try:
        return tls.recv(65536)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    finally:
        tls.setblocking(True)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now (for a backend that only listens behind a relay)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """TLS >= 1.2 with the product's certificate (chain) and key, as the product configures its listener."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key or None)
    return ctx


class TlsRelay:
    """The product's TLS listener in front of a backend that speaks only plain TCP on loopback.

    Every connection must complete a TLS handshake with the configured certificate before one byte reaches the
    backend: a plain client is refused. One line per client address and outcome goes to the log (at most once a
    minute), so the log shows who connected with TLS and who was refused.
    """

    def __init__(self, prog: str, listen: tuple[str, int], target: tuple[str, int], ctx: ssl.SSLContext,
                 reload: Callable[[], ssl.SSLContext] | None = None, watch: list[str] | None = None) -> None:
        self.prog, self.target, self.ctx = prog, target, ctx
        # files whose change makes the next connection use a context built again by reload()
        self.reload, self.watch = reload, list(watch or [])
        self._mtimes = self._stat()
        self._logged: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET6 if ":" in listen[0] else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(listen)
        self.sock.listen(128)
        self.listen = listen
        threading.Thread(target=self._accept, daemon=True).start()

    def _note(self, peer: str, kind: str, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._logged.get((peer, kind), -120.0) < 60:
                return
            self._logged[(peer, kind)] = now
        log(self.prog, f"{self.listen[0]}:{self.listen[1]} {text} (client {peer})")

    def _stat(self) -> list[float]:
        out = []
        for f in self.watch:
            try:
                out.append(os.stat(f).st_mtime)
            except OSError:
                out.append(0.0)
        return out

    def _maybe_reload(self) -> None:
        if not self.reload or not self.watch:
            return
        now = self._stat()
        if now == self._mtimes:
            return
        self._mtimes = now
        try:
            self.ctx = self.reload()
            log(self.prog, f"{self.listen[0]}:{self.listen[1]} certificate files changed: new connections use them")
        except Exception as e:  # keep serving with the previous certificate
            log(self.prog, f"{self.listen[0]}:{self.listen[1]} certificate files changed but cannot be loaded: {e}")

    def _accept(self) -> None:
        while True:
            try:
                client, addr = self.sock.accept()
            except OSError:
                return
            self._maybe_reload()
            threading.Thread(target=self._serve, args=(client, str(addr[0])), daemon=True).start()

    def _serve(self, client: socket.socket, peer: str) -> None:
        client.settimeout(15)
        try:
            tls = self.ctx.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self._note(peer, "refused", f"refused a connection without a TLS handshake: {e}")
            with contextlib.suppress(OSError):
                client.close()
            return
        self._note(peer, "tls", f"TLS connection, {tls.version()} {(tls.cipher() or ('?',))[0]}")
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            with contextlib.suppress(OSError):
                tls.close()
            return
        upstream.settimeout(None)
        _pump(tls, upstream)



def _pump(tls: ssl.SSLSocket, plain: socket.socket) -> None:
    """Copy bytes both ways between a TLS socket and a plain one until either side closes; closes both.

    One thread per connection touches the TLS object: reads and writes never run concurrently on it."""
    tls.settimeout(None)
    sel = selectors.DefaultSelector()
    sel.register(tls, selectors.EVENT_READ, "tls")
    sel.register(plain, selectors.EVENT_READ, "plain")
    try:
        while True:
            for key, _ in sel.select():
                if key.data == "tls":
                    data = _tls_read(tls)
                    if data is None:
                        continue
                    if not data:
                        return
                    plain.sendall(data)
                    while tls.pending():
                        plain.sendall(tls.recv(65536))
                else:
                    data = plain.recv(65536)
                    if not data:
                        return
                    tls.sendall(data)
    except OSError:
        return
    finally:
        sel.close()
        for s in (tls, plain):
            with contextlib.suppress(OSError):
                s.close()

class TlsClientRelay:
    """Plain TCP on a loopback port, TLS to a server verified with ctx (its name checked): for a backend that
    cannot be given the CA to trust."""

    def __init__(self, prog: str, target: tuple[str, int], ctx: ssl.SSLContext) -> None:
        self.prog, self.target, self.ctx = prog, target, ctx
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        log(prog, f"127.0.0.1:{self.port} relays to {target[0]}:{target[1]} over verified TLS")
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            raw = socket.create_connection(self.target, timeout=10)
            tls = self.ctx.wrap_socket(raw, server_hostname=self.target[0])
        except (ssl.SSLError, OSError) as e:
            log(self.prog, f"TLS to {self.target[0]}:{self.target[1]} failed: {e}")
            with contextlib.suppress(OSError):
                client.close()
            return
        _pump(tls, client)


def supervise(
    prog: str,
    argv: list[str],
    *,
    ready: Callable[[], bool],
    on_ready: Callable[[], None],
    on_fail: Callable[[str], None],
    startup_timeout: float = 60.0,
    env: dict[str, str] | None = None,
) -> int:
    """Run the backend as a child, forward stop signals to it, and exit with its status.

    Staying the parent (instead of exec) keeps one PID for pidfiles and service managers while the
    stand-in adds relays and readiness reporting around the backend.
    """
    child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM if signum != signal.SIGINT else signal.SIGINT)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    deadline = time.monotonic() + startup_timeout
    while not ready():
        if child.poll() is not None:
            on_fail(f"the backend exited with status {child.returncode} during startup")
            return child.returncode or 1
        if time.monotonic() > deadline:
            on_fail(f"the backend did not answer within {startup_timeout:.0f}s")
            child.kill()
            child.wait()
            return 1
        time.sleep(0.1)
    on_ready()
    while True:
        try:
            code = child.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            continue
    if stopping:
        log(prog, "stopped")
        return 0
    log(prog, f"the backend exited unexpectedly with status {code}")
    return code or 1


def find_processes(marker_args: list[str]) -> list[int]:
    """PIDs whose command line holds every one of marker_args (used by the `*-stop` scripts)."""
    found: list[int] = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            args = [a.decode(errors="replace") for a in (entry / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if all(m in args for m in marker_args):
            found.append(int(entry.name))
    return found
