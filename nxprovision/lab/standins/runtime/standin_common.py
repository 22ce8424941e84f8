"""Process plumbing shared by the stand-in programs shipped inside the lab's vendor-layout archives.

This file is copied verbatim into each archive and runs under the lab host's system python3 with only
the standard library: no nxprovision import is possible there.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
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
