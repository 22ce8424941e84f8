"""Patroni's REST API (cluster address, basic auth, TLS) and etcd (https, client and peer certificates): what the
model derives, what the roles render, the vault secret, and the refusal to switch a running etcd's scheme."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.rotation import REFUSED
from nxprovision.rules import run_rules
from nxprovision.secrets import spec

from .test_patroni_tls import render_patroni

ROOT = Path(__file__).resolve().parents[2]
CA = "/etc/nxprovision/tls/ca.crt"
PLAIN = {"nx_tls_enabled": False, "nx_public_url": "http://nuxeo.example.com/nuxeo"}


def _cluster(inv: Path):
    return build_cluster(load_inventory(inv))


def render_etcd(c, host: str) -> dict[str, str]:
    """/etc/default/etcd as the role renders it for `host`, as a name -> value mapping."""
    import jinja2

    from nxprovision.plan import _environment

    nx = c.to_facts()
    values: dict[str, Any] = dict(c.settings, nx=nx, inventory_hostname=host)
    values["__etcd_member"] = next(m for m in nx["etcd"]["members"] if m["host"] == host)
    values["__etcd_tls"] = nx["tls"]["certs"].get(host, {}).get("paths", {}).get("etcd", {})
    for name, default in yaml.safe_load((ROOT / "roles" / "etcd" / "defaults" / "main.yml").read_text()).items():
        values.setdefault(name, default)
    env: jinja2.Environment = _environment()
    text = env.get_template("etcd/templates/etc/default/etcd.j2").render(values)
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v.strip('"')
    return out


# ---------------------------------------------------------------- the model


def test_database_hosts_get_client_capable_certificates_only_in_the_distributed_architecture(make_inv) -> None:
    c = _cluster(make_inv("distributed"))
    for h in c.db_hosts:
        assert c.derived["tls"]["certs"][h]["usages"] == ["serverAuth", "clientAuth"]
    compact = _cluster(make_inv("compact"))
    # the compact architecture's certificates stay serverAuth only (no re-issue there)
    assert all(cert["usages"] == ["serverAuth"] for h, cert in compact.derived["tls"]["certs"].items()
               if h in compact.db_hosts)


def test_tls_roles_certificate_request_adds_client_auth_from_the_model() -> None:
    task = (ROOT / "roles" / "tls" / "tasks" / "configure.yml").read_text()
    assert "__tls_cert.usages" in task


# ---------------------------------------------------------------- Patroni's configuration


def test_rest_api_bound_to_the_member_address_with_password_and_tls(make_inv) -> None:
    c = _cluster(make_inv("distributed"))
    conf = render_patroni(c, "db2")
    member = next(m for m in c.derived["db"]["patroni"]["members"] if m["host"] == "db2")
    rest = conf["restapi"]
    assert rest["listen"] == f"{member['address']}:8008" == rest["connect_address"]
    assert not rest["listen"].startswith("0.0.0.0")
    assert rest["authentication"] == {"username": "patroni",
                                      "password": c.settings["nx_secret_patroni_rest_password"]}
    assert rest["certfile"] == "/etc/patroni/tls/server.crt" and rest["keyfile"] == "/etc/patroni/tls/server.key"
    assert rest["cafile"] == CA
    # patronictl verifies the members with the CA (and sends restapi.authentication)
    assert conf["ctl"] == {"insecure": False, "cacert": CA}
    assert member["rest_url"] == f"https://{member['address']}:8008"


def test_patroni_talks_https_to_etcd_with_its_host_certificate(make_inv) -> None:
    c = _cluster(make_inv("distributed"))
    etcd3 = render_patroni(c, "db1")["etcd3"]
    assert etcd3 == {"protocol": "https", "hosts": c.derived["db"]["patroni"]["etcd_hosts"], "cacert": CA,
                     "cert": "/etc/patroni/tls/server.crt", "key": "/etc/patroni/tls/server.key"}


def test_without_tls_the_rest_api_keeps_its_address_and_password(make_inv) -> None:
    c = _cluster(make_inv("distributed", set=PLAIN))
    conf = render_patroni(c, "db1")
    assert not conf["restapi"]["listen"].startswith("0.0.0.0")
    assert conf["restapi"]["authentication"]["password"] == c.settings["nx_secret_patroni_rest_password"]
    assert "certfile" not in conf["restapi"] and "ctl" not in conf
    assert conf["etcd3"] == {"protocol": "http", "hosts": c.derived["db"]["patroni"]["etcd_hosts"]}


def test_role_calls_the_rest_api_on_the_member_address_with_the_ca_and_password_on_patch() -> None:
    tasks = yaml.safe_load((ROOT / "roles" / "patroni" / "tasks" / "service.yml").read_text())
    calls = [t for t in tasks if "ansible.builtin.uri" in t]
    assert calls
    for t in calls:
        assert t["ansible.builtin.uri"]["url"].startswith("{{ __patroni_rest }}")
        assert "ca_path" in t["ansible.builtin.uri"]
    patch = next(t for t in calls if t["ansible.builtin.uri"].get("method") == "PATCH")
    assert "nx_secret_patroni_rest_password" in patch["ansible.builtin.uri"]["url_password"]
    assert patch["ansible.builtin.uri"]["force_basic_auth"] is True and patch["no_log"] is True
    assert "127.0.0.1" not in (ROOT / "roles" / "patroni" / "vars" / "main.yml").read_text()


# ---------------------------------------------------------------- etcd's configuration


def test_etcd_https_only_with_client_and_peer_certificate_auth(make_inv) -> None:
    c = _cluster(make_inv("distributed"))
    member = c.derived["etcd"]["members"][0]
    env = render_etcd(c, member["host"])
    assert env["ETCD_LISTEN_CLIENT_URLS"] == f"https://{member['address']}:2379"
    assert env["ETCD_LISTEN_PEER_URLS"] == f"https://{member['address']}:2380"
    assert env["ETCD_ADVERTISE_CLIENT_URLS"].startswith("https://")
    assert all(u.split("=", 1)[1].startswith("https://") for u in env["ETCD_INITIAL_CLUSTER"].split(","))
    assert env["ETCD_CLIENT_CERT_AUTH"] == env["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
    assert env["ETCD_TRUSTED_CA_FILE"] == env["ETCD_PEER_TRUSTED_CA_FILE"] == CA
    assert env["ETCD_CERT_FILE"] == env["ETCD_PEER_CERT_FILE"] == "/etc/etcd/tls/server.crt"
    assert env["ETCD_KEY_FILE"] == env["ETCD_PEER_KEY_FILE"] == "/etc/etcd/tls/server.key"
    assert "127.0.0.1" not in env["ETCD_LISTEN_CLIENT_URLS"]


def test_etcd_without_tls_stays_plain(make_inv) -> None:
    c = _cluster(make_inv("distributed", set=PLAIN))
    env = render_etcd(c, c.derived["etcd"]["members"][0]["host"])
    assert env["ETCD_LISTEN_PEER_URLS"].startswith("http://") and "ETCD_CLIENT_CERT_AUTH" not in env


def test_etcdctl_is_given_the_certificates() -> None:
    etcd_vars = yaml.safe_load((ROOT / "roles" / "etcd" / "vars" / "main.yml").read_text())
    assert all(f"--{o}=" in etcd_vars["__etcd_ctl_tls"] for o in ("cacert", "cert", "key"))
    service = (ROOT / "roles" / "etcd" / "tasks" / "service.yml").read_text()
    assert "__etcd_ctl_tls" in service
    renew = (ROOT / "playbooks" / "certs_renew.yml").read_text()
    assert "etcdctl" in renew and "--cacert=" in renew and "--cert=" in renew


def test_etcd_refuses_to_switch_a_running_cluster_between_http_and_https() -> None:
    preflight = yaml.safe_load((ROOT / "roles" / "etcd" / "tasks" / "preflight.yml").read_text())
    refusal = next(t for t in preflight if t["name"].startswith("Refuse to switch"))
    assert "ansible_local.etcd.client_url" in refusal["ansible.builtin.assert"]["that"][0]
    assert "roles/etcd/README.md" in refusal["ansible.builtin.assert"]["fail_msg"]


# ---------------------------------------------------------------- the secret


def test_rest_password_is_a_distributed_secret(make_inv) -> None:
    s = spec("nx_secret_patroni_rest_password")
    assert s.needed_for == "distributed" and len(s.generate()) >= 24
    assert "nx_secret_patroni_rest_password" in REFUSED  # `secrets rotate` says how to change it
    missing = run_rules(_cluster(make_inv("distributed", drop_secrets=["nx_secret_patroni_rest_password"])))
    assert any(f.rule == "secrets.missing" and "nx_secret_patroni_rest_password" in f.message for f in missing)
    compact = run_rules(_cluster(make_inv("compact", drop_secrets=["nx_secret_patroni_rest_password"])))
    assert not any(f.rule == "secrets.missing" for f in compact)
