"""The stand-ins' TLS: servers serve TLS only with the configured certificate, the Nuxeo stand-in's clients
verify against the configured Java trust store (JKS written by the nx_truststore module) and refuse a bad one."""

from __future__ import annotations

import datetime as dt
import importlib.util
import ipaddress
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nxprovision_lab.standins.nuxeo.runtime import truststore
from nxprovision_lab.standins.nuxeo.runtime.search import SearchClient, SearchError
from nxprovision_lab.standins.runtime import kafka_standin, opensearch_standin, standin_common

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("nx_truststore", ROOT / "plugins" / "modules" / "nx_truststore.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader
    spec.loader.exec_module(mod)
    return mod


def _ca(name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _server_cert(ca, tmp: Path, name: str = "node", pkcs8: bool = True) -> tuple[Path, Path, Path]:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(ca_key, hashes.SHA256()))
    fmt = serialization.PrivateFormat.PKCS8 if pkcs8 else serialization.PrivateFormat.TraditionalOpenSSL
    paths = tmp / f"{name}.crt", tmp / f"{name}.key", tmp / "ca.crt"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    paths[2].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return paths


def _jks(tmp: Path, ca_pem: Path, password: str = "changeit", name: str = "truststore.jks") -> Path:
    mod = _module()
    path = tmp / name
    path.write_bytes(mod.build_jks(mod.pem_certs(ca_pem.read_bytes()), password, "nxprovision-ca", 0))
    return path


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "green", "number_of_nodes": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def tls_search(tmp_path):
    """A plain HTTP 'search node' on loopback behind the stand-ins' TLS listener, with a cluster CA."""
    ca = _ca("cluster CA")
    cert, key, ca_pem = _server_cert(ca, tmp_path)
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    port = standin_common.free_port()
    relay = standin_common.TlsRelay("test", ("127.0.0.1", port), backend.server_address[:2],
                                    standin_common.server_tls_context(str(cert), str(key)))
    yield {"port": port, "ca": ca_pem, "relay": relay, "tmp": tmp_path}
    backend.shutdown()
    relay.sock.close()


def test_module_jks_is_read_back_and_guards_its_password(tmp_path) -> None:
    ca_pem = _server_cert(_ca("cluster CA"), tmp_path)[2]
    jks = _jks(tmp_path, ca_pem)
    certs = truststore.load_certificates(str(jks), "changeit", "JKS")
    assert certs == _module().pem_certs(ca_pem.read_bytes())
    # JDK 9+ reads a JKS file given type PKCS12 too (keystore.type.compat)
    assert truststore.load_certificates(str(jks), "changeit", "PKCS12") == certs
    with pytest.raises(truststore.TrustStoreError, match="password was incorrect"):
        truststore.load_certificates(str(jks), "wrong", "JKS")
    assert truststore.load_certificates(str(ca_pem), "", "PEM") == certs
    with pytest.raises(truststore.TrustStoreError, match="not found"):
        truststore.load_certificates(str(jks), "changeit", "BKS")


def test_search_client_verifies_with_the_trust_store(tls_search) -> None:
    t = tls_search
    ctx = truststore.client_context(str(_jks(t["tmp"], t["ca"])), "changeit", "JKS")
    client = SearchClient([f"https://127.0.0.1:{t['port']}"], context=ctx, timeout=5)
    assert client.health() == "green"


def test_search_client_refuses_a_certificate_of_another_ca(tls_search) -> None:
    t = tls_search
    other = _server_cert(_ca("someone else"), t["tmp"] / "..", name="other")[2]
    ctx = truststore.client_context(str(_jks(t["tmp"], other, name="other.jks")), "changeit", "JKS")
    client = SearchClient([f"https://127.0.0.1:{t['port']}"], context=ctx, timeout=5)
    with pytest.raises(SearchError, match="CERTIFICATE_VERIFY_FAILED"):
        client.health()
    # no trust store: the JVM's default CAs do not know the cluster CA either
    with pytest.raises(SearchError, match="CERTIFICATE_VERIFY_FAILED"):
        SearchClient([f"https://127.0.0.1:{t['port']}"], context=truststore.client_context(), timeout=5).health()


def test_tls_listener_refuses_plain_clients(tls_search) -> None:
    t = tls_search
    with pytest.raises(SearchError):
        SearchClient([f"http://127.0.0.1:{t['port']}"], timeout=5).health()
    with socket.create_connection(("127.0.0.1", t["port"]), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            answer = s.recv(100)
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"HTTP")  # a TLS alert, a close or a reset: never HTTP
    # the listener's log line says who was refused (at most once a minute per client)
    time.sleep(0.2)
    assert ("127.0.0.1", "refused") in t["relay"]._logged


def test_opensearch_standin_reads_the_security_plugin_settings(tmp_path) -> None:
    cert, key, ca = _server_cert(_ca("cluster CA"), tmp_path / "", name="search1")
    s = {"plugins.security.disabled": "false", "plugins.security.ssl_only": "true",
         "plugins.security.ssl.http.enabled": "true"}
    for layer in ("transport", "http"):
        s[f"plugins.security.ssl.{layer}.pemcert_filepath"] = cert.name
        s[f"plugins.security.ssl.{layer}.pemkey_filepath"] = key.name
        s[f"plugins.security.ssl.{layer}.pemtrustedcas_filepath"] = ca.name
    assert opensearch_standin.http_tls(s, tmp_path) == (str(cert), str(key))
    assert opensearch_standin.http_tls({"plugins.security.disabled": "true"}, tmp_path) is None
    # without ssl_only the plugin has users (opensearch_security); the TLS settings are read the same way
    assert opensearch_standin.http_tls({**s, "plugins.security.ssl_only": "false"}, tmp_path) == (str(cert), str(key))
    assert opensearch_standin.security_enabled({**s, "plugins.security.ssl_only": "false"})
    assert not opensearch_standin.security_enabled(s)
    sec1 = _server_cert(_ca("cluster CA"), tmp_path, name="sec1", pkcs8=False)[1]
    with pytest.raises(ValueError, match="PKCS#8"):
        opensearch_standin.http_tls({**s, "plugins.security.ssl.http.pemkey_filepath": sec1.name,
                                     "plugins.security.ssl.transport.pemkey_filepath": sec1.name}, tmp_path)


def test_kafka_standin_ssl_listener_key_store(tmp_path) -> None:
    cert, key, _ca_pem = _server_cert(_ca("cluster CA"), tmp_path, name="kafka1")
    keystore = tmp_path / "keystore.pem"
    keystore.write_text(key.read_text() + cert.read_text())
    props = {"listeners": "SSL://:9092,CONTROLLER://:9093", "controller.listener.names": "CONTROLLER",
             "listener.security.protocol.map": "CONTROLLER:SSL,SSL:SSL", "inter.broker.listener.name": "SSL",
             "ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore)}
    main, _adv, _others, _controllers = kafka_standin.plan_listeners(props)
    assert main.name == "SSL" and kafka_standin.listener_protocol(props, "SSL") == "SSL"
    assert isinstance(kafka_standin.ssl_server_context(props, "SSL"), ssl.SSLContext)
    with pytest.raises(kafka_standin.StartError, match="PEM key stores only"):
        kafka_standin.ssl_server_context({**props, "ssl.keystore.type": "JKS"}, "SSL")
    sec1 = tmp_path / "sec1.pem"
    sec1.write_text(_server_cert(_ca("x"), tmp_path, name="k2", pkcs8=False)[1].read_text() + cert.read_text())
    with pytest.raises(kafka_standin.StartError, match="PKCS#8"):
        kafka_standin.ssl_server_context({**props, "ssl.keystore.location": str(sec1)}, "SSL")
    with pytest.raises(kafka_standin.StartError, match="PLAINTEXT and SSL only"):
        kafka_standin.plan_listeners({**props, "listener.security.protocol.map": "CONTROLLER:SSL,SSL:SASL_SSL"})


def test_kafka_tools_command_config(tmp_path) -> None:
    ca_pem = _server_cert(_ca("cluster CA"), tmp_path)[2]
    conf = tmp_path / "client.properties"
    conf.write_text(f"security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca_pem}\n")
    sec = kafka_standin.client_security(str(conf))
    assert sec["security_protocol"] == "SSL" and sec["ssl_check_hostname"] is True
    assert sec["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    conf.write_text("security.protocol=PLAINTEXT\n")
    assert kafka_standin.client_security(str(conf)) == {}


def test_tansu_reaches_an_https_store_through_a_verifying_relay(tls_search) -> None:
    # distributed lab: the brokers keep their log in the store's bucket; Tansu speaks plain http to a local relay
    # that does the TLS, verified with the cluster CA
    import urllib.request

    t = tls_search
    env = {"AWS_ENDPOINT": f"https://127.0.0.1:{t['port']}"}
    engine, env = kafka_standin.tansu_storage({"standin.tansu.storage.engine": "s3://kafka/",
                                               "standin.tansu.s3.endpoint": f"https://127.0.0.1:{t['port']}",
                                               "standin.tansu.s3.ca.file": str(t["ca"])})
    assert engine == "s3://kafka/" and env["STANDIN_S3_TLS_CA"] == str(t["ca"]) and env["AWS_ALLOW_HTTP"] == "true"
    kafka_standin.s3_tls_relay(env)
    assert env["AWS_ENDPOINT"].startswith("http://127.0.0.1:") and "STANDIN_S3_TLS_CA" not in env
    with urllib.request.urlopen(env["AWS_ENDPOINT"] + "/", timeout=5) as r:
        assert json.loads(r.read())["status"] == "green"
    # a relay trusting another CA gets nothing through
    other = _server_cert(_ca("someone else"), t["tmp"], name="other")[2]
    env = {"AWS_ENDPOINT": f"https://127.0.0.1:{t['port']}", "STANDIN_S3_TLS_CA": str(other)}
    kafka_standin.s3_tls_relay(env)
    with pytest.raises(OSError):
        urllib.request.urlopen(env["AWS_ENDPOINT"] + "/", timeout=5).read()


def test_kafka_configs_alters_only_ssl_stores(capsys, monkeypatch, tmp_path) -> None:
    class Admin:
        def describe_cluster(self):
            return {}

        def close(self):
            pass

    monkeypatch.setattr(kafka_standin, "admin", lambda *a: Admin())
    args = ["--bootstrap-server", "127.0.0.1:1", "--alter", "--entity-type", "brokers", "--entity-name", "1"]
    assert kafka_standin.configs_main([*args, "--add-config", "log.retention.ms=1"]) == 1
    assert "only alters" in capsys.readouterr().err
    keystore = tmp_path / "keystore.pem"
    keystore.write_text("x")
    assert kafka_standin.configs_main(
        [*args, "--add-config", f"listener.name.ssl.ssl.keystore.location={keystore}"]) == 0
    assert "Completed updating config for broker 1." in capsys.readouterr().out
