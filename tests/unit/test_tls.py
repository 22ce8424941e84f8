"""TLS: the CA in the inventory folder, what the model derives, what the templates render, the rules, the
stand-in's reading of pgjdbc's TLS parameters."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from nxprovision import pki, secrets
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.model.roledefaults import role_defaults
from nxprovision.plan import _environment, make_plan, parse_properties
from nxprovision_lab.standins.nuxeo.runtime.node import pg_jdbc_ssl
from tests.unit.conftest import LTS2023

ROOT = Path(__file__).resolve().parents[2]


def _cluster(inv: Path):
    return build_cluster(load_inventory(inv))


# ---------------------------------------------------------------- the CA


def test_init_creates_a_vaulted_ca_and_never_replaces_it(tmp_path: Path) -> None:
    from nxprovision.init import write_inventory

    inv = tmp_path / "inv"
    result = write_inventory(inv, "compact")
    assert result.ca_created
    cert, key = inv / ".pki" / "ca.crt", inv / ".pki" / "ca.key"
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    raw = key.read_bytes()
    assert secrets.is_vaulted(raw) and b"PRIVATE KEY" not in raw
    assert key.stat().st_mode & 0o777 == 0o600
    # the vault password of the inventory decrypts it
    plain = secrets._vault(secrets.read_vault_password(inv / ".vault-pass")).decrypt(raw)
    assert b"BEGIN PRIVATE KEY" in plain
    before = cert.read_bytes()
    again = write_inventory(inv, "compact")
    assert not again.ca_created and cert.read_bytes() == before
    info = pki.read_pem(before, "inventory", "ca", str(cert))
    assert "CN=nuxeo cluster CA" in info.subject and info.days_left > 3000


def test_a_ca_key_from_another_vault_is_refused_before_any_host_is_touched(tmp_path: Path) -> None:
    # a disaster-recovery copy that took the vault password and secrets of one inventory but kept the CA of another
    import argparse
    import shutil

    from nxprovision.commands import _validated
    from nxprovision.errors import NxError
    from nxprovision.init import write_inventory

    a, b = tmp_path / "a", tmp_path / "b"
    write_inventory(a, "compact")
    write_inventory(b, "compact")
    args = argparse.Namespace(inventory=str(b), vault_password_file=None)
    _validated(args)  # its own CA opens
    for rel in (".vault-pass", "group_vars/all/secrets.yml"):
        shutil.copy2(a / rel, b / rel)
    with pytest.raises(NxError) as exc:
        _validated(args)
    assert str(b / ".pki" / "ca.key") in str(exc.value) and "does not decrypt" in str(exc.value)
    assert ".pki/" in exc.value.fix
    shutil.rmtree(b / ".pki")
    shutil.copytree(a / ".pki", b / ".pki")
    _validated(args)


def test_certs_init_prints_no_key(tmp_path: Path, run_cli) -> None:
    from nxprovision.init import write_inventory

    inv = tmp_path / "inv"
    write_inventory(inv, "single", group_vars={"nx_tls_enabled": False})
    assert not (inv / ".pki").exists()
    code, out, err = run_cli("certs", "init", "-i", str(inv))
    assert code == 0, err
    assert "created the cluster CA" in out and "PRIVATE" not in out + err
    code, out, _ = run_cli("certs", "init", "-i", str(inv))
    assert code == 0 and "kept the existing CA" in out


def test_certs_check_local_reads_the_inventory_ca(run_cli) -> None:
    code, out, err = run_cli("certs", "check", "--local", "-i", str(ROOT / "inventories" / "compact"))
    assert code == 0, out + err
    assert "CN=nuxeo cluster CA" in out and "1 certificate(s); 0 expire" in out
    code, out, _ = run_cli("certs", "check", "--local", "--days", "100000", "-i",
                           str(ROOT / "inventories" / "compact"))
    assert code == 1 and "EXPIRES SOON" in out


def test_read_pem_reports_names_and_days() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lb1")])
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=10, hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("lb1"),
                                                        x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    info = pki.read_pem(cert.public_bytes(serialization.Encoding.PEM), "lb1", "haproxy", "/x")
    assert info.sans == ["DNS:lb1", "IP:10.0.0.1"] and info.days_left == 10 and info.subject == "CN=lb1"
    assert pki.read_pem(b"junk", "h", "host", "/y").error


# ---------------------------------------------------------------- the model


def test_model_certificates_names_and_paths() -> None:
    c = _cluster(ROOT / "inventories" / "compact")
    tls = c.derived["tls"]
    assert tls["enabled"] and tls["lb"] and tls["postgresql"]
    # servers and Kafka's clients (the Nuxeo nodes) only; every host gets the CA
    assert set(tls["certs"]) == {"lb1", "db1", "db2", "search1", "search2", "search3", "kafka1", "s3-1",
                                 "front1", "front2", "worker1"}
    assert tls["search"] and tls["kafka"] and tls["s3"]
    lb = tls["certs"]["lb1"]
    assert lb["services"] == ["haproxy"] and lb["dns"] == ["lb1", "nuxeo.example.com"]
    assert lb["paths"]["haproxy"] == {"cert": "/etc/haproxy/tls/nuxeo.pem", "key": "/etc/haproxy/tls/nuxeo.pem.key"}
    assert tls["certs"]["db2"]["services"] == ["postgresql"]
    assert "nuxeo.example.com" not in tls["certs"]["db1"]["dns"]
    assert c.derived["lb"]["frontend_port"] == 443 and c.derived["lb"]["redirect_port"] == 80
    assert c.derived["db"]["ssl"] is True
    assert c.to_facts()["tls"] == tls


def test_model_ip_sans_from_ansible_host(make_inv) -> None:
    inv = make_inv("compact", set={"nx_public_url": "https://10.9.9.9/nuxeo"},
                   hostvars={"lb1": {"ansible_host": "10.0.0.5"}, "db1": {"ansible_host": "10.0.0.6"},
                             "s3-1": {"ansible_host": "10.0.0.7"}})
    tls = _cluster(inv).derived["tls"]
    # the S3 host's address is a DNS name too: pgBackRest 2.45 checks DNS names only
    assert tls["certs"]["s3-1"]["ips"] == ["10.0.0.7"] and tls["certs"]["s3-1"]["dns"] == ["s3-1", "10.0.0.7"]
    assert tls["certs"]["lb1"]["ips"] == ["10.0.0.5", "10.9.9.9"]
    assert tls["certs"]["db1"]["ips"] == ["10.0.0.6"] and tls["certs"]["db1"]["dns"] == ["db1"]


def test_nuxeo_jdbc_url_verifies_the_database() -> None:
    plan = make_plan(_cluster(ROOT / "inventories" / "compact"))
    conf = parse_properties(plan.files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert conf["nuxeo.url"] == "https://nuxeo.example.com/nuxeo"
    assert conf["nuxeo.db.jdbc.url"] == (
        "jdbc:postgresql://db1:5432/nuxeo?ssl=true&sslmode=verify-full&sslrootcert=/etc/nxprovision/tls/ca.crt")


def test_tls_off_keeps_the_old_rendering(make_inv) -> None:
    inv = make_inv("compact", set={"nx_tls_enabled": False, "nx_public_url": "http://nuxeo.example.com/nuxeo"})
    c = _cluster(inv)
    assert not c.derived["tls"]["enabled"] and c.derived["tls"]["certs"] == {}
    plan = make_plan(c)
    conf = parse_properties(plan.files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert "nuxeo.db.jdbc.url" not in conf
    cfg = plan.files["lb1"]["/etc/haproxy/haproxy.cfg"]
    assert "ssl crt" not in cfg and "bind lb1:80\n" in cfg and "X-Forwarded-Proto http\n" in cfg


def test_inventory_without_the_setting_keeps_tls_off(make_inv) -> None:
    inv = make_inv("compact", unset=["nx_tls_enabled"], set={"nx_public_url": "http://x.example.com/nuxeo"})
    assert _cluster(inv).derived["tls"]["enabled"] is False


# ---------------------------------------------------------------- rendering


def test_haproxy_https_frontend_redirect_hsts() -> None:
    cfg = make_plan(_cluster(ROOT / "inventories" / "compact")).files["lb1"]["/etc/haproxy/haproxy.cfg"]
    # the LB's cluster address (the sample names hosts without ansible_host), never every interface
    assert "bind lb1:80\n" in cfg and "bind *" not in cfg
    assert "bind lb1:443 ssl crt /etc/haproxy/tls/nuxeo.pem ssl-min-ver TLSv1.2" in cfg
    assert "http-request redirect scheme https code 301 unless { ssl_fc }" in cfg
    assert 'Strict-Transport-Security "max-age=31536000"' in cfg
    assert "X-Forwarded-Proto https" in cfg
    # backend health checks and the runtime API are unchanged
    assert "http-check send meth GET uri /nuxeo/runningstatus?info=reload" in cfg
    assert "stats socket /run/haproxy/admin.sock" in cfg


def _render_pg(cluster, template: str, host: str) -> str:
    env = _environment()
    env.tests["match"] = lambda value, pattern: re.match(pattern, str(value)) is not None
    values = {**role_defaults(), "nx": cluster.to_facts(), "inventory_hostname": host, "ansible_memtotal_mb": 2048,
              "__postgresql_tuning": cluster.derived["db"]["tuning_tiers"][0]}
    return env.get_template(f"postgresql/templates/{template}").render(values)


def test_pg_hba_requires_tls_for_nuxeo_and_server_has_ssl_on() -> None:
    c = _cluster(ROOT / "inventories" / "compact")
    hba = _render_pg(c, "etc/postgresql/pg_hba.conf.j2", "db1")
    nuxeo_lines = [ln for ln in hba.splitlines() if " nuxeo " in f" {ln} " and not ln.startswith("#")]
    assert nuxeo_lines and all(ln.startswith("hostssl") for ln in nuxeo_lines), nuxeo_lines
    conf = _render_pg(c, "etc/postgresql/conf.d/90-nxprovision.conf.j2", "db2")
    assert "ssl = on" in conf
    assert "ssl_cert_file = '/etc/postgresql/17/main/tls/server.crt'" in conf
    assert "ssl_key_file = '/etc/postgresql/17/main/tls/server.key'" in conf


def test_replication_uses_verified_tls() -> None:
    c = _cluster(ROOT / "inventories" / "compact")
    hba = _render_pg(c, "etc/postgresql/pg_hba.conf.j2", "db1")
    repl = [ln for ln in hba.splitlines() if " replication " in ln and not ln.startswith("#")]
    assert repl and all(ln.startswith("hostssl") for ln in repl), repl
    values = {"postgresql_replication_user": "replicator", "nx_secret_db_replication_password": "pw"}
    env = _environment()
    env.globals["lookup"] = lambda _plugin, name: values[name]
    env.filters["regex_replace"] = lambda v, pat, rep: re.sub(pat, rep, v)
    standby = env.get_template("postgresql/templates/etc/postgresql/conf.d/91-nxprovision-standby.conf.j2").render(
        {**role_defaults(), "nx": c.to_facts(), "inventory_hostname": "db2"})
    assert "sslmode=verify-full sslrootcert=/etc/nxprovision/tls/ca.crt'" in standby


def test_plan_shows_tls(run_cli) -> None:
    code, out, err = run_cli("plan", "-i", str(ROOT / "inventories" / "compact"))
    assert code == 0, err
    assert "HTTPS on the load balancers yes, http:80 redirects, HSTS" in out
    assert "verify-full TLS" in out and "lb1, nuxeo.example.com" in out


# ---------------------------------------------------------------- rules


def test_https_url_without_tls_is_an_error(make_inv, run_cli) -> None:
    inv = make_inv("compact", set={"nx_tls_enabled": False})
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 2 and "tls.disabled_https_url" in out


def test_missing_ca_is_an_error_with_the_fix(make_inv, run_cli) -> None:
    inv = make_inv("compact")
    (inv / ".pki" / "ca.crt").unlink()
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 2 and "tls.ca_missing" in out and "nxprovision certs init" in out


def test_http_url_with_tls_warns(make_inv, run_cli) -> None:
    inv = make_inv("compact", set={"nx_public_url": "http://nuxeo.example.com/nuxeo"})
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 0 and "tls.http_public_url" in out


def test_operator_certificate_needs_both_files(make_inv, run_cli, tmp_path: Path) -> None:
    crt = tmp_path / "lb1.crt"
    crt.write_text("x")
    inv = make_inv("compact", hostvars={"lb1": {"nx_tls_cert_file": str(crt)}})
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 2 and "tls.operator_cert" in out
    key = tmp_path / "lb1.key"
    key.write_text("x")
    inv = make_inv("compact", hostvars={"lb1": {"nx_tls_cert_file": str(crt), "nx_tls_key_file": str(key)}})
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 0, out
    cert = _cluster(inv).derived["tls"]["certs"]["lb1"]
    assert cert["source_cert"] == str(crt) and cert["source_key"] == str(key)


def test_redirect_port_clash_is_reported(make_inv, run_cli) -> None:
    inv = make_inv("compact")
    hv = inv / "host_vars"
    hv.mkdir(exist_ok=True)
    (hv / "lb1.yml").write_text(yaml.safe_dump({"haproxy_stats_port": 80}))
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 2 and "ports.clash" in out and "redirect" in out


# ---------------------------------------------------------------- the Nuxeo stand-in reads pgjdbc's parameters


@pytest.mark.parametrize(("url", "expected"), [
    ("jdbc:postgresql://h:5432/nuxeo", {"sslmode": "prefer"}),
    ("jdbc:postgresql://h:5432/nuxeo?ssl=false", {"sslmode": "disable"}),
    ("jdbc:postgresql://h/nuxeo?ssl=true&sslrootcert=/ca.crt", {"sslmode": "verify-full", "sslrootcert": "/ca.crt"}),
    ("jdbc:postgresql://h/nuxeo?ssl=true&sslmode=require", {"sslmode": "require"}),
    ("jdbc:postgresql://h/nuxeo?sslmode=verify-ca&sslrootcert=/ca.crt", {"sslmode": "verify-ca",
                                                                          "sslrootcert": "/ca.crt"}),
    ("jdbc:postgresql://h/nuxeo?ssl=true&sslfactory=org.postgresql.ssl.NonValidatingFactory", {"sslmode": "require"}),
])
def test_standin_honours_pgjdbc_ssl_parameters(url: str, expected: dict[str, str]) -> None:
    got = pg_jdbc_ssl(url)
    if "sslrootcert" not in expected and got.get("sslmode", "").startswith("verify"):
        got.pop("sslrootcert")
    assert got == expected


def test_standin_refuses_an_unknown_sslmode() -> None:
    with pytest.raises(ValueError, match="Invalid sslmode"):
        pg_jdbc_ssl("jdbc:postgresql://h/nuxeo?sslmode=sometimes")


# ---------------------------------------------------------------- search, Kafka and S3 over TLS


def test_backend_links_certificates_and_paths() -> None:
    c = _cluster(ROOT / "inventories" / "compact")
    tls = c.derived["tls"]
    search = tls["certs"]["search1"]
    assert search["services"] == ["opensearch"] and search["dns"] == ["search1"]
    assert search["paths"]["opensearch"] == {"cert": "/opt/opensearch/config/tls/node.crt",
                                             "key": "/opt/opensearch/config/tls/node.key",
                                             "ca": "/opt/opensearch/config/tls/ca.crt"}
    assert tls["certs"]["kafka1"]["paths"]["kafka"] == {
        "cert": "/etc/kafka/tls/keystore.d/2-cert.pem", "key": "/etc/kafka/tls/keystore.d/1-key.pem",
        "keystore": "/etc/kafka/tls/keystore.pem", "ca": "/etc/kafka/tls/ca.crt"}
    assert tls["certs"]["s3-1"]["paths"]["seaweedfs"] == {"cert": "/etc/seaweedfs/tls/s3.crt",
                                                         "key": "/etc/seaweedfs/tls/s3.key"}
    # the Nuxeo nodes (and only they) get the Java trust store
    assert tls["truststore"]["path"] == "/etc/nxprovision/tls/truststore.jks"
    assert tls["truststore"]["type"] == "JKS" and tls["truststore"]["password"] == "changeit"
    assert sorted(tls["truststore"]["hosts"]) == ["front1", "front2", "worker1"]
    # derived once: every consumer reads the same scheme and CA
    d = c.derived
    assert all(u.startswith("https://") for u in d["search"]["urls"]) and d["search"]["tls"] is True
    assert d["kafka"]["protocol"] == "SSL" and d["kafka"]["ca_file"] == tls["ca_path"]
    assert d["s3"]["endpoint"] == "https://s3-1:8333" and d["s3"]["ca_file"] == tls["ca_path"]
    assert tls["certs"]["s3-1"]["dns"] == ["s3-1"]  # no IP address here (sample inventory)
    assert d["backup"]["search_url"].startswith("https://")


def test_each_backend_link_has_its_switch(make_inv) -> None:
    switches = {"nx_tls_search": False, "nx_tls_kafka": False, "nx_tls_s3": False}
    c = _cluster(make_inv("compact", set={**LTS2023, **switches}))
    tls = c.derived["tls"]
    assert tls["enabled"] and tls["postgresql"] and not (tls["search"] or tls["kafka"] or tls["s3"])
    assert set(tls["certs"]) == {"lb1", "db1", "db2"} and tls["truststore"]["hosts"] == []
    conf = parse_properties(make_plan(c).files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert conf["elasticsearch.addressList"].startswith("http://") and "kafka.ssl" not in conf
    assert conf["nuxeo.s3storage.endpoint"] == "http://s3-1:8333"
    assert not any(k.startswith(("nuxeo.aws.trustStore", "elasticsearch.restClient.truststore", "kafka.truststore"))
                   for k in conf)
    # only Kafka over TLS
    c = _cluster(make_inv("compact", set={"nx_tls_search": False, "nx_tls_s3": False}))
    conf = parse_properties(make_plan(c).files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert conf["kafka.ssl"] == "true" and "nuxeo.aws.trustStorePath" not in conf
    assert c.derived["tls"]["truststore"]["hosts"]


def test_backend_tls_off_without_the_cluster_tls(make_inv) -> None:
    inv = make_inv("compact", set={"nx_tls_enabled": False, "nx_public_url": "http://nuxeo.example.com/nuxeo"})
    tls = _cluster(inv).derived["tls"]
    assert not (tls["search"] or tls["kafka"] or tls["s3"])


def test_external_s3_keeps_its_own_trust(make_inv) -> None:
    c = _cluster(make_inv("compact", set={"s3_mode": "external", "s3_endpoint": "https://s3.example.com"}))
    assert c.derived["tls"]["s3"] is False and c.derived["s3"]["ca_file"] == ""
    conf = parse_properties(make_plan(c).files["front1"]["/etc/nuxeo/nuxeo.conf"])
    assert "nuxeo.aws.trustStorePath" not in conf  # the JVM's own CAs verify an external endpoint



def test_rules_for_backend_links(make_inv) -> None:
    from nxprovision.rules import run_rules

    def rules(**settings):
        return {f.rule for f in run_rules(_cluster(make_inv("compact", set=settings)))}

    assert "tls.plain_backends" in rules(nx_tls_kafka=False)
    assert "tls.plain_backends" not in rules()
    assert "tls.search_elasticsearch" in rules(search_distribution="elasticsearch", search_version="7.17.9")
    assert "tls.s3_external_http" in rules(s3_mode="external", s3_endpoint="http://s3.example.com")
    assert "tls.truststore_password" in rules(nx_tls_truststore_password="abc")


def test_haproxy_frontend_binds_every_address_only_for_a_moving_vip_unless_told(make_inv) -> None:
    dist = make_plan(_cluster(ROOT / "inventories" / "distributed")).files["lb1"]["/etc/haproxy/haproxy.cfg"]
    assert "bind *:443 ssl crt" in dist  # the VIP moves between the load balancers
    inv = make_inv("distributed", set={"haproxy_bind_addresses": ["10.0.0.5", "10.0.0.100"]})
    cfg = make_plan(_cluster(inv)).files["lb1"]["/etc/haproxy/haproxy.cfg"]
    assert "bind 10.0.0.5:443 ssl crt" in cfg and "bind 10.0.0.100:80\n" in cfg and "bind *" not in cfg
