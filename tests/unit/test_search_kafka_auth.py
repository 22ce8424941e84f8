"""Authentication on the search cluster (the security plugin's users) and on Kafka (mutual TLS): the model, the
role templates, and the stand-ins refusing what the products refuse."""

from __future__ import annotations

import base64
import importlib.util
import json
import socket
import ssl
import threading
import warnings
from pathlib import Path

import jinja2
import pytest
import yaml

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.model.roledefaults import role_defaults
from nxprovision.plan import _environment, make_plan, parse_properties
from nxprovision_lab.standins.runtime import kafka_standin, opensearch_replication, opensearch_security
from tests.unit.test_standin_tls import _ca, _server_cert

ROOT = Path(__file__).resolve().parents[2]
SECURITY_TEMPLATES = ROOT / "roles" / "opensearch" / "templates" / "opt" / "opensearch" / "securityconfig"


def _cluster(inv: Path):
    return build_cluster(load_inventory(inv))


def _users_module():
    spec = importlib.util.spec_from_file_location("nx_opensearch_users",
                                                  ROOT / "plugins" / "modules" / "nx_opensearch_users.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- the model


def test_model_search_users_and_nuxeo_credentials() -> None:
    c = _cluster(ROOT / "inventories" / "compact")
    sec = c.derived["search"]["security"]
    assert sec["enabled"] and sec["admin_dn"] == "CN=nuxeo-search-admin"
    assert {u: v["secret"] for u, v in sec["users"].items()} == {
        "admin": "nx_secret_search_admin_password", "nuxeo": "nx_secret_search_nuxeo_password",
        "backup": "nx_secret_search_backup_password"}
    # the admin client certificate is issued on every search host, never with a node's DN
    search1 = c.derived["tls"]["certs"]["search1"]
    assert search1["client_auth"] and search1["clients"][0]["common_name"] == "nuxeo-search-admin"
    assert sec["admin_dn"] not in sec["nodes_dn"]
    conf = parse_properties(make_plan(c).files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert conf["nuxeo.opensearch1.client.username"] == "nuxeo"  # the sample runs LTS 2025
    # the password is a reference to the nuxeo user's vault secret, never a value in the model
    items = {i.key: i for i in c.node("front1").conf}
    assert items["nuxeo.opensearch1.client.password"].secret == "nx_secret_search_nuxeo_password"
    assert items["kafka.keystore.password"].secret == "nx_secret_kafka_keystore_password"


def test_model_kafka_client_certificates() -> None:
    c = _cluster(ROOT / "inventories" / "compact")
    tls = c.derived["tls"]
    front = tls["certs"]["front1"]
    assert front["services"] == ["kafka-client"] and front["client_auth"]
    assert front["paths"]["kafka-client"] == {"keystore": "/etc/nxprovision/tls/kafka-client.p12"}
    assert tls["certs"]["kafka1"]["client_auth"]  # brokers authenticate to each other with their own
    assert not tls["certs"]["lb1"]["client_auth"]  # nothing else changes
    conf = parse_properties(make_plan(c).files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert conf["kafka.ssl"] == "true" and conf["kafka.keystore.type"] == "PKCS12"
    assert conf["kafka.keystore.path"] == "/etc/nxprovision/tls/kafka-client.p12"


def test_without_search_tls_no_users(make_inv) -> None:
    inv = make_inv("compact", set={"nx_tls_enabled": False, "nx_public_url": "http://nuxeo.example.com/nuxeo"})
    c = _cluster(inv)
    assert not c.derived["search"]["security"]["enabled"]
    conf = parse_properties(make_plan(c).files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert "elasticsearch.restClient.username" not in conf and "kafka.keystore.path" not in conf


def _render_kafka(template: str) -> dict[str, str]:
    c = _cluster(ROOT / "inventories" / "compact")
    values = {**role_defaults(), "nx": c.to_facts(), "inventory_hostname": "kafka1",
              "_kafka_client_config": "/etc/kafka/client.properties"}
    env = _environment()
    values["__kafka_broker"] = c.to_facts()["kafka"]["brokers"][0]
    values["__kafka_tls"] = c.to_facts()["tls"]["certs"]["kafka1"]["paths"]["kafka"]
    return parse_properties(env.get_template(f"kafka/templates/etc/kafka/{template}").render(values))


def test_server_properties_require_client_certificates() -> None:
    props = _render_kafka("server.properties.j2")
    assert props["ssl.client.auth"] == "required"
    # bound to the broker's address, never a wildcard
    assert all("://:" not in lst for lst in props["listeners"].split(","))
    client = _render_kafka("client.properties.j2")
    assert client["ssl.keystore.type"] == "PEM" and client["ssl.keystore.location"].endswith("keystore.pem")


# ---------------------------------------------------------------- the security plugin stand-in


def _security_dir(tmp: Path, passwords: dict[str, str]) -> Path:
    c = _cluster(ROOT / "inventories" / "compact")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(SECURITY_TEMPLATES)), undefined=jinja2.StrictUndefined)
    env.filters["to_json"] = json.dumps
    d = tmp / "securityconfig"
    d.mkdir()
    facts = {"__opensearch_security": c.derived["search"]["security"]}
    for name in ("config.yml", "roles.yml", "roles_mapping.yml"):
        (d / name).write_text(env.get_template(name + ".j2").render(**facts))
    mod = _users_module()
    users = {u: {"password": p} for u, p in passwords.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        (d / "internal_users.yml").write_text(mod.render(users, {u: mod._hash(p, 4) for u, p in passwords.items()}))
    for kind, name in (("actiongroups", "action_groups.yml"), ("tenants", "tenants.yml")):
        (d / name).write_text(f'_meta:\n  type: "{kind}"\n  config_version: 2\n')
    return d


class _Headers(dict):
    def get(self, k, default=None):  # type: ignore[override]
        return super().get(k, default)


def _auth(user: str, password: str) -> _Headers:
    return _Headers(Authorization="Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())


@pytest.fixture
def security(tmp_path: Path) -> opensearch_security.Security:
    d = _security_dir(tmp_path, {"admin": "a-pass", "nuxeo": "n-pass", "backup": "b-pass"})
    settings = {"plugins.security.allow_default_init_securityindex": "true",
                "plugins.security.authcz.admin_dn": ["CN=nuxeo-search-admin"]}
    return opensearch_security.Security(settings, d, tmp_path / "data" / "standin-security.json", lambda m: None)


def test_roles_yml_is_the_plugins_format(tmp_path: Path) -> None:
    d = _security_dir(tmp_path, {"admin": "x", "nuxeo": "y", "backup": "z"})
    loaded = opensearch_security.load_dir(d)
    assert loaded["roles"]["nxprovision_nuxeo"]["index_permissions"][0]["index_patterns"] == ["nuxeo*"]
    assert loaded["rolesmapping"]["all_access"]["users"] == ["admin"]
    assert yaml.safe_load((d / "internal_users.yml").read_text())["nuxeo"]["hash"].startswith("$2")


def test_security_401_without_or_with_wrong_credentials(security) -> None:
    for headers in (_Headers(), _auth("nuxeo", "wrong"), _auth("nobody", "n-pass")):
        status, hdrs, _body = security.check("GET", "/_cluster/health", headers, b"")
        assert status == 401 and ("WWW-Authenticate", 'Basic realm="OpenSearch Security"') in hdrs


def test_security_nuxeo_reaches_its_indices_only(security) -> None:
    nuxeo = _auth("nuxeo", "n-pass")
    assert security.check("GET", "/_cluster/health", nuxeo, b"") is None
    assert security.check("PUT", "/nuxeo-audit", nuxeo, b"{}") is None
    bulk = b'{"index": {"_index": "nuxeo", "_id": "1"}}\n{"a": 1}\n'
    assert security.check("POST", "/_bulk", nuxeo, bulk) is None
    assert security.check("POST", "/nuxeo/_search", nuxeo, b"{}") is None
    for method, path in (("GET", "/_snapshot/audit"), ("PUT", "/_snapshot/audit/snap1"),
                         ("PUT", "/_cluster/settings"), ("GET", "/other/_search"), ("DELETE", "/other")):
        status, _h, body = security.check(method, path, nuxeo, b"{}")
        assert status == 403 and b"security_exception" in body, (method, path)
    other = b'{"index": {"_index": "other"}}\n{"a": 1}\n'
    assert security.check("POST", "/_bulk", nuxeo, other)[0] == 403


def test_security_backup_and_admin(security) -> None:
    backup = _auth("backup", "b-pass")
    assert security.check("PUT", "/_snapshot/audit", backup, b"{}") is None
    assert security.check("POST", "/_snapshot/audit/s1/_restore", backup, b"{}") is None
    assert security.check("POST", "/nuxeo-audit/_close", backup, b"") is None
    assert security.check("GET", "/nuxeo/_search", backup, b"{}")[0] == 403
    admin = _auth("admin", "a-pass")
    assert security.check("PUT", "/_cluster/settings", admin, b"{}") is None
    assert security.check("POST", "/_nodes/_local/reload_secure_settings", admin, b"") is None


def test_security_not_initialized_answers_503(tmp_path: Path) -> None:
    sec = opensearch_security.Security({}, tmp_path, tmp_path / "state.json", lambda m: None)
    assert sec.check("GET", "/", _auth("admin", "admin"), b"")[0] == 503


def test_securityadmin_needs_an_admin_certificate(tmp_path: Path, security, capsys) -> None:
    ca = _ca("cluster CA")
    node_cert, node_key, ca_pem = _server_cert(ca, tmp_path, name="search1")
    admin_cert, admin_key, _ = _server_cert(ca, tmp_path, name="nuxeo-search-admin")
    other_cert, other_key, _ = _server_cert(ca, tmp_path, name="front1")
    (tmp_path / "stranger").mkdir()
    stranger_cert, stranger_key, _ = _server_cert(_ca("another CA"), tmp_path / "stranger", name="x")
    security.nodes_dn = {"CN=search1"}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(node_cert, node_key)
    ctx.load_verify_locations(cafile=ca_pem)
    ctx.verify_mode = ssl.CERT_REQUIRED
    sock = opensearch_replication.serve_transport(("127.0.0.1", 0), ctx, security=security, replicator=None,
                                                  log=lambda m: None)
    port = sock.getsockname()[1]
    (tmp_path / "new").mkdir()
    new = _security_dir(tmp_path / "new", {"admin": "a2", "nuxeo": "n2", "backup": "b2"})

    def run(cert: Path, key: Path) -> int:
        return opensearch_security.admin_main(["-cd", str(new), "-icl", "-nhnv", "-cacert", str(ca_pem),
                                               "-cert", str(cert), "-key", str(key), "-h", "127.0.0.1",
                                               "-p", str(port)])
    try:
        assert run(node_cert, node_key) != 0 and "node certificate" in capsys.readouterr().out
        assert run(other_cert, other_key) != 0 and "not registered as admin_dn" in capsys.readouterr().out
        assert run(stranger_cert, stranger_key) != 0
        assert security.check("GET", "/", _auth("nuxeo", "n-pass"), b"") is None  # nothing changed
        assert run(admin_cert, admin_key) == 0 and "Done with success" in capsys.readouterr().out
        assert security.check("GET", "/", _auth("nuxeo", "n-pass"), b"")[0] == 401
        assert security.check("GET", "/", _auth("nuxeo", "n2"), b"") is None
    finally:
        sock.close()


def test_users_module_keeps_a_hash_that_still_verifies() -> None:
    mod = _users_module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        h = mod._hash("secret", 4)
        assert mod._verifies("secret", h) and not mod._verifies("other", h)
    text = mod.render({"nuxeo": {"password": "secret"}}, {"nuxeo": h})
    assert dict(mod._ENTRY.findall(text)) == {"nuxeo": h} and "secret\"" not in text


# ---------------------------------------------------------------- Kafka: mutual TLS on the stand-in


def _broker(tmp: Path, auth: str):
    ca = _ca("cluster CA")
    cert, key, ca_pem = _server_cert(ca, tmp, name="kafka1")
    keystore = tmp / "keystore.pem"
    keystore.write_text(key.read_text() + cert.read_text())
    props = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore), "ssl.truststore.type": "PEM",
             "ssl.truststore.location": str(ca_pem), "ssl.client.auth": auth}
    return ca, ca_pem, kafka_standin.ssl_server_context(props, "SSL")


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> bytes:
    """A TLS client that sends a byte and reads the echo: a refused client certificate shows at the first read
    with TLS 1.3 (the server checks it after the client's Finished), as with a real broker."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(1))
        except (ssl.SSLError, OSError):
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="kafka1") as tls:
            tls.sendall(b"x")
            return tls.recv(1)
    finally:
        t.join(5)
        srv.close()


def test_kafka_standin_refuses_a_client_without_certificate(tmp_path: Path) -> None:
    ca, ca_pem, server = _broker(tmp_path, "required")
    assert server.verify_mode == ssl.CERT_REQUIRED
    only_ca = ssl.create_default_context(cafile=str(ca_pem))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        if _handshake(server, only_ca) != b"x":
            raise ConnectionError("closed")
    client_cert, client_key, _ = _server_cert(ca, tmp_path, name="front1")
    with_cert = ssl.create_default_context(cafile=str(ca_pem))
    with_cert.load_cert_chain(client_cert, client_key)
    assert _handshake(server, with_cert) == b"x"
    # a certificate from another CA is refused too
    (tmp_path / "other").mkdir()
    other_cert, other_key, _ = _server_cert(_ca("another CA"), tmp_path / "other", name="intruder")
    other = ssl.create_default_context(cafile=str(ca_pem))
    other.load_cert_chain(other_cert, other_key)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        if _handshake(server, other) != b"x":
            raise ConnectionError("closed")


def test_kafka_standin_client_auth_settings(tmp_path: Path) -> None:
    _unused, _pem, none = _broker(tmp_path, "none")
    assert none.verify_mode == ssl.CERT_NONE
    with pytest.raises(kafka_standin.StartError, match=r"ssl\.client\.auth"):
        _broker(tmp_path, "maybe")


def test_kafka_tools_present_the_brokers_certificate(tmp_path: Path) -> None:
    ca = _ca("cluster CA")
    cert, key, ca_pem = _server_cert(ca, tmp_path, name="kafka1")
    keystore = tmp_path / "keystore.pem"
    keystore.write_text(key.read_text() + cert.read_text())
    conf = tmp_path / "client.properties"
    conf.write_text(f"security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca_pem}\n"
                    f"ssl.keystore.type=PEM\nssl.keystore.location={keystore}\n")
    ctx = kafka_standin.client_security(str(conf))["ssl_context"]
    srv_props = {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(keystore), "ssl.truststore.type": "PEM",
                 "ssl.truststore.location": str(ca_pem), "ssl.client.auth": "required"}
    assert _handshake(kafka_standin.ssl_server_context(srv_props, "SSL"), ctx) == b"x"
