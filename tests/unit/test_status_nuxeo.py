"""`status` and Nuxeo: the node's own (plain http) port is asked only runningstatus, without credentials; the
version, which needs the Administrator login, is asked through the load balancer's https verified with the
cluster CA, routed to the node by its jvmRoute, or not at all."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nxprovision.status import _nuxeo

PASSWORD = "vault-admin-pw"


def _ca_and_server(tmp: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lb1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp / "server.crt", tmp / "server.key", tmp / "ca.crt"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return paths


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, str]]]

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append((self.path, dict(self.headers)))
        if self.path == "/nuxeo/runningstatus":
            body = json.dumps({"runtimeStatus": "ok", "repositoryStatus": "ok"}).encode()
        elif self.path == "/nuxeo/json/cmis" and self.headers.get("Authorization"):
            body = json.dumps({"default": {"productVersion": "2023.34"}}).encode()
        else:
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(cert: tuple[Path, Path] | None = None) -> tuple[int, list[tuple[str, dict[str, str]]], Any]:
    seen: list[tuple[str, dict[str, str]]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*cert)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1], seen, srv


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    crt, key, ca = _ca_and_server(tmp_path)
    node_port, node_seen, node_srv = _serve()
    lb_port, lb_seen, lb_srv = _serve((crt, key))
    yield {"node_port": node_port, "node_seen": node_seen, "lb_port": lb_port, "lb_seen": lb_seen, "ca": ca,
           "tmp": tmp_path}
    node_srv.shutdown()
    lb_srv.shutdown()


def _cluster(node_port: int, public_url: str, lb_tls: bool, role: str = "front") -> Any:
    node = SimpleNamespace(host="front1", address="127.0.0.1", port=node_port, role=role, jvm_route="front1")
    return SimpleNamespace(node=lambda h: node if h == "front1" else None,
                           settings={"nx_public_url": public_url, "nx_secret_nuxeo_admin_password": PASSWORD},
                           derived={"tls": {"lb": lb_tls}})


def _no_credentials(seen: list[tuple[str, dict[str, str]]]) -> bool:
    return not any("Authorization" in h or PASSWORD in json.dumps(h) for _p, h in seen)


def test_version_through_the_lb_https_routed_to_the_node(servers: dict[str, Any]) -> None:
    c = _cluster(servers["node_port"], f"https://127.0.0.1:{servers['lb_port']}/nuxeo", True)
    row = _nuxeo(c, "front1", ssl.create_default_context(cafile=str(servers["ca"])))
    assert (row.health, row.version) == ("ok", "2023.34"), row
    # the node's plain port was asked runningstatus only, with no credentials
    assert [p for p, _h in servers["node_seen"]] == ["/nuxeo/runningstatus"]
    assert _no_credentials(servers["node_seen"])
    # the login went over https, with the cookie whose route HAProxy sends to this very node
    [(path, headers)] = servers["lb_seen"]
    assert path == "/nuxeo/json/cmis" and headers["Authorization"].startswith("Basic ")
    assert headers["Cookie"] == "JSESSIONID=nxstatus.front1"


def test_no_lb_https_means_no_login_at_all(servers: dict[str, Any]) -> None:
    # TLS off (no CA context), or a public URL in plain http: health only, the version is left empty
    for url, ctx in ((f"https://127.0.0.1:{servers['lb_port']}/nuxeo", None),
                     (f"http://127.0.0.1:{servers['node_port']}/nuxeo",
                      ssl.create_default_context(cafile=str(servers["ca"])))):
        row = _nuxeo(_cluster(servers["node_port"], url, bool(ctx)), "front1", ctx)
        assert (row.health, row.version) == ("ok", ""), row
    assert servers["lb_seen"] == []
    assert {p for p, _h in servers["node_seen"]} == {"/nuxeo/runningstatus"}
    assert _no_credentials(servers["node_seen"])


def test_a_load_balancer_certificate_of_another_ca_gets_no_password(servers: dict[str, Any]) -> None:
    (servers["tmp"] / "other").mkdir()
    other_ca = _ca_and_server(servers["tmp"] / "other")[2]
    c = _cluster(servers["node_port"], f"https://127.0.0.1:{servers['lb_port']}/nuxeo", True)
    row = _nuxeo(c, "front1", ssl.create_default_context(cafile=str(other_ca)))
    assert row.health == "ok" and row.version == "" and "version not read through" in row.detail, row
    assert servers["lb_seen"] == []  # the handshake failed: no request, so no password, was sent


def test_worker_nodes_are_not_behind_the_lb(servers: dict[str, Any]) -> None:
    c = _cluster(servers["node_port"], f"https://127.0.0.1:{servers['lb_port']}/nuxeo", True, role="worker")
    row = _nuxeo(c, "front1", ssl.create_default_context(cafile=str(servers["ca"])))
    assert (row.health, row.version) == ("ok", "") and servers["lb_seen"] == []
