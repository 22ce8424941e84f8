"""TLS from Nuxeo to PostgreSQL under Patroni (distributed architecture): what the model derives, the multi-host
JDBC URL, the Patroni configuration (ssl parameters, pg_hba), the renewal playbook, and status's TLS probe."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import struct
import threading
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.plan import make_plan, parse_properties
from nxprovision.status import Row, _pg_tls_handshake, apply_probes
from nxprovision_lab.standins.nuxeo.runtime.node import pg_jdbc_multi_host, pg_jdbc_ssl

ROOT = Path(__file__).resolve().parents[2]
CA = "/etc/nxprovision/tls/ca.crt"
TLS_QUERY = f"ssl=true&sslmode=verify-full&sslrootcert={CA}"


def _cluster(inv: Path):
    return build_cluster(load_inventory(inv))


def _plain(make_inv):
    return _cluster(make_inv("distributed", set={"nx_tls_enabled": False,
                                                 "nx_public_url": "http://nuxeo.example.com/nuxeo"}))


def render_patroni(c, host: str) -> dict:
    """Patroni's configuration as the role renders it for `host`, parsed (it must stay valid YAML)."""
    import jinja2
    from ansible.plugins.filter.core import FilterModule
    from ansible.plugins.test.core import TestModule

    from nxprovision.plan import _environment, _lookup_factory

    values = dict(c.settings, nx=c.to_facts(), inventory_hostname=host, ansible_memtotal_mb=4096)
    values["lookup"] = _lookup_factory(values, True)
    for name in yaml.safe_load((ROOT / "roles" / "patroni" / "vars" / "main.yml").read_text()):
        values.setdefault(name, f"/{name}")
    values["__patroni_tuning"] = c.derived["db"]["tuning_tiers"][1]
    member = next(m for m in c.derived["db"]["patroni"]["members"] if m["host"] == host)
    values["__patroni_member"] = member
    env: jinja2.Environment = _environment()
    env.filters.update(FilterModule().filters())
    env.tests.update(TestModule().tests())
    text = env.get_template("patroni/templates/etc/patroni/config.yml.j2").render(values)
    return yaml.safe_load(text)


def _hba(conf: dict) -> list[list[str]]:
    return [line.split() for line in conf["postgresql"]["pg_hba"]]


# ---------------------------------------------------------------- the model


def test_patroni_members_get_a_postgresql_certificate_beside_patronis_configuration(make_inv) -> None:
    c = _cluster(make_inv("distributed"))
    tls = c.derived["tls"]
    assert c.derived["db"]["manager"] == "patroni"
    assert tls["postgresql"] and c.derived["db"]["ssl"] is True
    for h in c.db_hosts:
        cert = tls["certs"][h]
        # the database hosts also run etcd here: one certificate for both, usable as a TLS client too (etcd's
        # peers and Patroni authenticate with it)
        assert cert["services"] == ["postgresql", "etcd"]
        assert cert["usages"] == ["serverAuth", "clientAuth"]
        assert cert["paths"]["etcd"] == {"cert": "/etc/etcd/tls/server.crt", "key": "/etc/etcd/tls/server.key"}
        # Debian's cluster `main` is dropped under Patroni: the files live beside /etc/patroni/config.yml
        assert cert["paths"]["postgresql"] == {"cert": "/etc/patroni/tls/server.crt",
                                               "key": "/etc/patroni/tls/server.key"}
        assert h in cert["dns"]


def test_certificate_directory_follows_patroni_config_path(make_inv) -> None:
    c = _cluster(make_inv("distributed", set={"patroni_config_path": "/srv/patroni/patroni.yml"}))
    assert c.derived["tls"]["certs"]["db1"]["paths"]["postgresql"]["cert"] == "/srv/patroni/tls/server.crt"


def test_compact_certificate_paths_unchanged(make_inv) -> None:
    c = _cluster(make_inv("compact"))
    assert c.derived["tls"]["certs"]["db1"]["paths"]["postgresql"]["cert"] == "/etc/postgresql/17/main/tls/server.crt"


def test_tls_off_gives_patroni_members_no_certificate(make_inv) -> None:
    c = _plain(make_inv)
    assert c.derived["db"]["ssl"] is False and c.derived["tls"]["certs"] == {}


# ---------------------------------------------------------------- the multi-host JDBC URL


def test_multi_host_jdbc_url_carries_the_compact_tls_parameters(make_inv) -> None:
    c = _cluster(make_inv("distributed"))
    hosts = ",".join(f"{c.hosts[h].address}:5432" for h in c.db_hosts)
    expected = f"jdbc:postgresql://{hosts}/nuxeo?targetServerType=primary&{TLS_QUERY}"
    assert c.derived["db"]["jdbc_url"] == expected
    conf = parse_properties(make_plan(c).files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert conf["nuxeo.db.jdbc.url"] == expected
    # the same parameters as the compact architecture's single-host URL
    compact = _cluster(make_inv("compact")).derived["db"]["jdbc_url"]
    assert compact.endswith(f"/nuxeo?{TLS_QUERY}")


def test_standin_reads_hosts_and_tls_from_the_multi_host_url(make_inv) -> None:
    url = _cluster(make_inv("distributed")).derived["db"]["jdbc_url"]
    multi = pg_jdbc_multi_host(url)
    assert multi is not None
    hosts, ports, extra = multi
    assert len(hosts.split(",")) == 3 and ports == "5432,5432,5432"
    assert extra == {"target_session_attrs": "read-write"}
    assert pg_jdbc_ssl(url) == {"sslmode": "verify-full", "sslrootcert": CA}


def test_plan_shows_database_tls_for_patroni(run_cli) -> None:
    code, out, err = run_cli("plan", "-i", str(ROOT / "inventories" / "distributed"), "--json")
    assert code == 0, err
    tls = json.loads(out)["endpoints"]["tls"]
    assert tls["database"] is True
    assert {c["host"] for c in tls["certificates"] if c["services"] == ["postgresql", "etcd"]} == {"db1", "db2", "db3"}
    code, out, err = run_cli("plan", "-i", str(ROOT / "inventories" / "distributed"))
    assert code == 0 and "Nuxeo -> database verify-full TLS" in out, err


def test_validate_accepts_tls_with_patroni(run_cli) -> None:
    code, out, err = run_cli("validate", "-i", str(ROOT / "inventories" / "distributed"), "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["valid"] and not [f for f in report["warnings"] if f["rule"].startswith("tls.")], report


# ---------------------------------------------------------------- Patroni's configuration


@pytest.mark.parametrize("host", ["db1", "db3"])
def test_patroni_turns_ssl_on_with_the_members_certificate(make_inv, host: str) -> None:
    c = _cluster(make_inv("distributed"))
    params = render_patroni(c, host)["postgresql"]["parameters"]
    assert params["ssl"] == "on"
    assert params["ssl_cert_file"] == "/etc/patroni/tls/server.crt"
    assert params["ssl_key_file"] == "/etc/patroni/tls/server.key"
    assert params["ssl_min_protocol_version"] == "TLSv1.2"
    # local parameters: a reload applies them (bootstrap.dcs only seeds a new cluster)
    assert "ssl" not in render_patroni(c, host)["bootstrap"]["dcs"]["postgresql"]["parameters"]


def test_patroni_pg_hba_requires_tls_for_nuxeo_only(make_inv) -> None:
    c = _cluster(make_inv("distributed"))
    hba = _hba(render_patroni(c, "db2"))
    nuxeo = [line for line in hba if line[1:3] == ["nuxeo", "nuxeo"]]
    assert {line[3].split("/")[0] for line in nuxeo} == set(c.derived["db"]["hba_clients"])
    assert nuxeo and all(line[0] == "hostssl" for line in nuxeo), nuxeo
    # replication and rewind between members stay as they were (host: TLS when the client asks)
    members = [line for line in hba if line[1] in ("replication", "postgres") and line[0] != "local"]
    assert members and all(line[0] == "host" for line in members), members
    assert ["local", "all", "all", "peer"] in hba


def test_patroni_without_tls_renders_as_before(make_inv) -> None:
    c = _plain(make_inv)
    conf = render_patroni(c, "db1")
    assert not any(k.startswith("ssl") for k in conf["postgresql"]["parameters"])
    nuxeo = [line for line in _hba(conf) if line[1:3] == ["nuxeo", "nuxeo"]]
    assert nuxeo and all(line[0] == "host" for line in nuxeo)


def test_patroni_min_protocol_version_is_a_role_setting(make_inv) -> None:
    c = _cluster(make_inv("distributed", set={"patroni_ssl_min_protocol_version": "TLSv1.3"}))
    assert render_patroni(c, "db1")["postgresql"]["parameters"]["ssl_min_protocol_version"] == "TLSv1.3"


# ---------------------------------------------------------------- certs renew


def test_renewal_reloads_patroni_members_through_patroni() -> None:
    plays = yaml.safe_load((ROOT / "playbooks" / "certs_renew.yml").read_text())
    pg = next(p for p in plays if p.get("name") == "Apply to PostgreSQL (reload)")
    # the postgresql role's handler reloads Debian's cluster unit, which Patroni members do not run
    assert "nx.db.manager | default('streaming') != 'patroni'" in pg["tasks"][0]["when"]
    patroni = next(p for p in plays if "patroni" in p.get("name", "").lower())
    assert patroni["hosts"] == "postgresql" and patroni["serial"] == 1
    block = patroni["tasks"][0]
    assert "nx.db.manager | default('streaming') == 'patroni'" in block["when"]
    steps = block["block"]
    assert steps[0]["ansible.builtin.include_role"] == {"name": "patroni", "tasks_from": "tls.yml"}
    assert any(s.get("ansible.builtin.meta") == "flush_handlers" for s in steps)
    assert "until" in steps[-1]  # waits until PostgreSQL serves the certificate on disk
    assert "restarted" not in json.dumps(patroni)
    # the role's copies notify the reload handler, never a restart
    tasks = yaml.safe_load((ROOT / "roles" / "patroni" / "tasks" / "tls.yml").read_text())
    assert {t.get("notify") for t in tasks if "notify" in t} == {"Reload patroni"}
    handlers = yaml.safe_load((ROOT / "roles" / "patroni" / "handlers" / "main.yml").read_text())
    assert [h["ansible.builtin.systemd_service"]["state"] for h in handlers] == ["reloaded"]


def test_certs_check_fetches_the_patroni_copy(make_inv) -> None:
    """certs check fetches every service path of nx.tls.certs: the Patroni members' copy is one of them."""
    c = _cluster(make_inv("distributed"))
    wanted = {(h, svc, p["cert"]) for h, cert in c.derived["tls"]["certs"].items() for svc, p in cert["paths"].items()
              if "cert" in p}
    assert ("db2", "postgresql", "/etc/patroni/tls/server.crt") in wanted


# ---------------------------------------------------------------- status: the TLS handshake PostgreSQL speaks


def _ca_and_server(tmp: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "db1")]))
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


def _fake_postgresql(cert: Path, key: Path, answer: bytes) -> tuple[int, threading.Thread, list[bytes]]:
    """One connection of PostgreSQL's TLS negotiation: the 8-byte SSLRequest, one byte of answer, then TLS."""
    srv = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            seen.append(conn.recv(8))
            conn.sendall(answer)
            if answer == b"S":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(cert, key)
                try:
                    with ctx.wrap_socket(conn, server_side=True):
                        pass
                except (OSError, ssl.SSLError):
                    pass
        srv.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv.getsockname()[1], t, seen


def test_status_probe_negotiates_tls_as_postgresql_clients_do(tmp_path: Path) -> None:
    crt, key, ca = _ca_and_server(tmp_path)
    port, t, seen = _fake_postgresql(crt, key, b"S")
    assert _pg_tls_handshake("127.0.0.1", port, ssl.create_default_context(cafile=str(ca))).startswith("TLSv1")
    t.join(5)
    assert seen == [struct.pack("!ii", 8, 80877103)]


def test_status_probe_reports_a_server_without_tls(tmp_path: Path) -> None:
    crt, key, ca = _ca_and_server(tmp_path)
    port, t, _ = _fake_postgresql(crt, key, b"N")
    with pytest.raises(ValueError, match="refused TLS"):
        _pg_tls_handshake("127.0.0.1", port, ssl.create_default_context(cafile=str(ca)))
    t.join(5)


def test_status_probe_refuses_a_certificate_of_another_ca(tmp_path: Path) -> None:
    crt, key, _ca = _ca_and_server(tmp_path)
    (tmp_path / "other").mkdir()
    other = _ca_and_server(tmp_path / "other")[2]
    port, t, _ = _fake_postgresql(crt, key, b"S")
    with pytest.raises(ssl.SSLCertVerificationError):
        _pg_tls_handshake("127.0.0.1", port, ssl.create_default_context(cafile=str(other)))
    t.join(5)


def test_status_keeps_the_tls_result_beside_the_replication_state(make_inv) -> None:
    c = _cluster(make_inv("distributed"))
    row = Row("db1", "postgresql", "10.0.0.1", "ok", detail="primary port 5432 open, TLSv1.3 verified with the CA",
              extra={"tls": "TLSv1.3"})
    info = {"role": "primary", "replay_lag_s": 0, "receiving": "", "streaming_replicas": 2, "max_lag_bytes": 0,
            "pending_restart": []}
    apply_probes(c, [row], {("db1", "postgresql"): {"rc": 0, "stdout": json.dumps(info)}})
    assert row.health == "ok"
    assert row.detail == "primary, 2 streaming replica(s), max replay lag 0 B, TLSv1.3 verified with the CA"
