"""The network primitives of `nxprovision status`, and the script that runs them on a cluster host (--via-hosts).

Standard library only, and no import of nxprovision: with --via-hosts this very file is the program a host runs
(`python3 -c`, source on the command line, request on stdin, answers on stdout), so the probes are the same code
from the controller and from the hosts. It writes nothing: no file, no state; it only connects.

Request: {"probes": [{"id", "kind": http|tcp|tls|pg_tls, "url", "auth": [user, secret name], "ca", "headers",
"address", "port"}], "secrets": {secret name: value}, "ca_path": the cluster CA on the host}. Answer per id:
{"code", "body"} (http), {"open"} (tcp), {"version"} (tls, pg_tls), or {"error", "type"} when the probe raised.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import struct
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

TIMEOUT = 5.0
# a body is parsed on the controller; the pages probed are small (a stats CSV, a health document)
MAX_BODY = 256 * 1024


def http(url: str, auth: tuple[str, str] | None = None, timeout: float = TIMEOUT,
         context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context if url.startswith("https:") else None) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers or {})


def tcp(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=TIMEOUT):
            return True
    except OSError:
        return False


def tls_handshake(addr: str, port: int, ctx: ssl.SSLContext) -> str:
    """The TLS version a server negotiates with a client that verifies it against the cluster CA."""
    with socket.create_connection((addr, port), timeout=TIMEOUT) as raw, \
            ctx.wrap_socket(raw, server_hostname=addr) as tls:
        return str(tls.version())


# PostgreSQL's SSLRequest: the client asks for TLS before the startup packet; the server answers one byte, S or N.
PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def pg_tls_handshake(addr: str, port: int, ctx: ssl.SSLContext) -> str:
    """The TLS version PostgreSQL negotiates with a client that verifies it against the cluster CA (the server
    logs nothing for a client that leaves before its startup packet)."""
    with socket.create_connection((addr, port), timeout=TIMEOUT) as raw:
        raw.sendall(PG_SSL_REQUEST)
        answer = raw.recv(1)
        if answer != b"S":
            raise ValueError(f"the server refused TLS (answered {answer!r})")
        with ctx.wrap_socket(raw, server_hostname=addr) as tls:
            return str(tls.version())


def answer(probe: dict[str, Any], secrets: dict[str, Any], ca_path: str) -> dict[str, Any]:
    """One probe run here. An exception becomes its text, as the controller's probes would word it."""
    try:
        ctx = None
        if probe.get("ca"):
            try:
                ctx = ssl.create_default_context(cafile=ca_path)
            except (OSError, ssl.SSLError) as exc:
                raise OSError(f"cannot read the cluster CA {ca_path or '(none named)'}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        kind = probe["kind"]
        if kind == "http":
            auth = probe.get("auth")
            login = (str(auth[0]), str(secrets.get(auth[1]) or "")) if auth else None
            code, body, _headers = http(str(probe["url"]), login, context=ctx, headers=probe.get("headers"))
            # text, not base64: whatever a page says stays readable to the controller's masking of secrets
            return {"code": code, "body": body[:MAX_BODY].decode("utf-8", "replace")}
        if kind == "tcp":
            return {"open": tcp(str(probe["address"]), int(probe["port"]))}
        if kind in ("tls", "pg_tls"):
            if ctx is None:
                raise ValueError("no CA to verify the server with")
            shake = tls_handshake if kind == "tls" else pg_tls_handshake
            return {"version": shake(str(probe["address"]), int(probe["port"]), ctx)}
        return {"error": f"unknown probe {kind!r}", "type": "ValueError"}
    except (OSError, ValueError) as exc:
        # URLError carries its cause in .reason, as the controller-side message shows it
        return {"error": str(getattr(exc, "reason", exc)), "type": "ValueError" if isinstance(exc, ValueError)
                and not isinstance(exc, OSError) else "OSError"}


def main() -> int:
    request = json.load(sys.stdin)
    probes = list(request.get("probes") or [])
    secrets = dict(request.get("secrets") or {})
    ca_path = str(request.get("ca_path") or "")
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = dict(pool.map(lambda p: (str(p["id"]), answer(p, secrets, ca_path)), probes))
    json.dump(answers, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
