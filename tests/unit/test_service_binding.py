"""SeaweedFS and the HAProxy stats page: bound to the cluster address and authenticated (issue 14).

What the model derives (white list, gRPC mutual TLS, certificate usages), what security.toml, the systemd unit
and haproxy.cfg render from it, the new secrets, and how `status` reads the stats page.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from nxprovision import rotation, secrets, status
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import Cluster, build_cluster
from nxprovision.model.roledefaults import role_defaults
from nxprovision.plan import _environment, make_plan

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRETS = ("nx_secret_seaweedfs_jwt_write_key", "nx_secret_seaweedfs_jwt_read_key",
               "nx_secret_seaweedfs_filer_jwt_write_key", "nx_secret_seaweedfs_filer_jwt_read_key")


def _cluster(inv: Path) -> Cluster:
    return build_cluster(load_inventory(inv))


def _render_seaweedfs(c: Cluster, template: str, **extra: Any) -> str:
    """A seaweedfs template with Ansible's variables for the first S3 host (the filters it uses added)."""
    env = _environment()
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = lambda v: str(v).lower() in ("true", "yes", "1", "on")
    env.filters["lower"] = lambda v: str(v).lower()
    host = c.s3_hosts[0]
    values: dict[str, Any] = {**role_defaults(), **c.settings, "nx": c.to_facts(), "inventory_hostname": host}
    values.update(extra)
    values["__seaweedfs_address"] = c.hosts[host].address
    values["__seaweedfs_bind"] = values["seaweedfs_bind_address"] or values["__seaweedfs_address"]
    values["__seaweedfs_tls"] = c.derived["tls"]["certs"].get(host, {}).get("paths", {}).get("seaweedfs", {})
    values["_seaweedfs_weed"] = "/opt/seaweedfs/weed"
    values["lookup"] = lambda _plugin, name, **_kw: values[name]
    return env.get_template(f"seaweedfs/templates/{template}").render(values)


# ---------------------------------------------------------------- SeaweedFS


def test_model_limits_seaweedfs_to_its_hosts_and_issues_client_certificates(make_inv) -> None:
    names = sorted(_cluster(ROOT / "inventories" / "distributed").hosts)
    c = _cluster(make_inv("distributed", hostvars={h: {"ansible_host": f"10.0.0.{i}"}
                                                   for i, h in enumerate(names, start=10)}))
    s3 = c.derived["s3"]
    assert s3["white_list"] == sorted(c.hosts[h].address for h in c.s3_hosts)
    assert all(a.startswith("10.0.0.") for a in s3["white_list"])
    assert s3["grpc_tls"] is True and s3["grpc_common_names"] == list(c.s3_hosts)
    certs = c.derived["tls"]["certs"]
    # the store's servers call each other over gRPC with their certificate: clientAuth beside serverAuth
    assert all(certs[h]["usages"] == ["serverAuth", "clientAuth"] for h in c.s3_hosts)
    assert certs["lb1"]["usages"] == ["serverAuth"] and certs["search1"]["usages"] == ["serverAuth", "clientAuth"]


def test_white_list_extra_is_added(make_inv) -> None:
    c = _cluster(make_inv("compact", set={"seaweedfs_white_list_extra": ["192.0.2.0/24"]}))
    assert c.derived["s3"]["white_list"] == ["192.0.2.0/24", "s3-1"]


def test_security_toml_signs_every_read_and_write_and_requires_grpc_certificates() -> None:
    c = _cluster(ROOT / "inventories" / "compact")
    doc = tomllib.loads(_render_seaweedfs(c, "etc/seaweedfs/security.toml.j2"))
    jwt = doc["jwt"]
    keys = [jwt["signing"]["key"], jwt["signing"]["read"]["key"], jwt["filer_signing"]["key"],
            jwt["filer_signing"]["read"]["key"]]
    assert keys == [c.settings[n] for n in JWT_SECRETS] and len(set(keys)) == 4 and all(len(k) >= 32 for k in keys)
    assert jwt["signing"]["expires_after_seconds"] == 10
    assert doc["guard"]["white_list"] == "s3-1,127.0.0.1,@"
    assert doc["access"]["ui"] is False and doc["filer"]["expose_directory_metadata"]["enabled"] is False
    grpc = doc["grpc"]
    assert grpc["ca"] == "/etc/nxprovision/tls/ca.crt"
    for component in ("master", "volume", "filer", "s3"):
        assert grpc[component] == {"cert": "/etc/seaweedfs/tls/s3.crt", "key": "/etc/seaweedfs/tls/s3.key",
                                   "allowed_commonNames": "s3-1"}, component
    assert grpc["client"] == {"cert": "/etc/seaweedfs/tls/s3.crt", "key": "/etc/seaweedfs/tls/s3.key"}


def test_security_toml_without_tls_keeps_tokens_and_white_list(make_inv) -> None:
    c = _cluster(make_inv("compact", set={"nx_tls_enabled": False, "nx_public_url": "http://x.example.com/nuxeo"}))
    doc = tomllib.loads(_render_seaweedfs(c, "etc/seaweedfs/security.toml.j2"))
    assert "grpc" not in doc and doc["jwt"]["signing"]["read"]["key"] and doc["guard"]["white_list"]


@pytest.mark.parametrize(("bind", "expected"), [("", "s3-1"), ("0.0.0.0", "0.0.0.0")])
def test_unit_binds_every_listener_to_the_cluster_address(bind: str, expected: str) -> None:
    c = _cluster(ROOT / "inventories" / "compact")
    unit = _render_seaweedfs(c, "etc/systemd/system/seaweedfs.service.j2", seaweedfs_bind_address=bind)
    assert f"-ip.bind={expected} \\" in unit and f"-s3.ip.bind={expected} \\" in unit
    # the S3 gateway's Iceberg and Lance catalogs (on by default in weed 4.48) stay closed
    assert "-s3.port.iceberg=0 \\" in unit and "-s3.port.lance=0 \\" in unit
    assert "PrivateTmp=true" in unit
    if not bind:
        assert "0.0.0.0" not in unit


def test_new_secrets_are_generated_checked_and_not_rotated(make_inv, run_cli) -> None:
    for name in JWT_SECRETS:
        spec = secrets.spec(name)
        assert spec.needed_for == "seaweedfs" and len(spec.generate()) >= 40
        assert name in rotation.REFUSED
        with pytest.raises(Exception, match="not rotated"):
            rotation.resolve(name)
    code, out, _ = run_cli("validate", "-i", str(make_inv("compact", drop_secrets=[JWT_SECRETS[1]])))
    assert code == 2 and "secrets.missing" in out and JWT_SECRETS[1] in out
    # an external S3 store has no SeaweedFS: its keys are not asked for
    inv = make_inv("compact", set={"s3_mode": "external", "s3_endpoint": "https://s3.example.com"},
                   layout={"loadbalancers": ["lb1"], "nuxeo_front": ["front1", "front2"], "nuxeo_worker": [],
                           "postgresql": ["db1", "db2"], "opensearch": ["search1", "search2", "search3"],
                           "kafka": ["kafka1"]}, drop_secrets=list(JWT_SECRETS))
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert "nx_secret_seaweedfs" not in out, out


def test_sample_inventories_hold_the_new_secrets() -> None:
    for inv in ("single", "compact", "compact-mongodb", "distributed"):
        c = _cluster(ROOT / "inventories" / inv)
        assert all(str(c.settings.get(n) or "") for n in JWT_SECRETS), inv


# ---------------------------------------------------------------- HAProxy stats


def _haproxy_cfg(c: Cluster) -> str:
    return make_plan(c).files[c.lb_hosts[0]]["/etc/haproxy/haproxy.cfg"]


def test_stats_on_the_lb_address_over_tls(make_inv) -> None:
    c = _cluster(make_inv("compact", hostvars={"lb1": {"ansible_host": "10.1.0.5"}}))
    cfg = _haproxy_cfg(c)
    stats = cfg[cfg.index("frontend stats"):]
    assert "    bind 10.1.0.5:8404 ssl crt /etc/haproxy/tls/nuxeo.pem ssl-min-ver TLSv1.2\n" in stats
    assert "*:8404" not in cfg and "stats auth admin:********" in stats and "stats admin" not in stats


def test_stats_plain_on_the_lb_address_without_tls(make_inv) -> None:
    c = _cluster(make_inv("compact", set={"nx_tls_enabled": False, "nx_public_url": "http://x.example.com/nuxeo",
                                          "haproxy_stats_bind_address": "10.9.9.9"}))
    cfg = _haproxy_cfg(c)
    assert "    bind 10.9.9.9:8404\n" in cfg and "*:8404" not in cfg


def test_stats_off(make_inv) -> None:
    cfg = _haproxy_cfg(_cluster(make_inv("compact", set={"haproxy_stats_enabled": False})))
    assert "frontend stats" not in cfg and ":8404" not in cfg and "stats auth" not in cfg
    # the runtime API socket stays: rolling operations drain nodes through it
    assert "stats socket /run/haproxy/admin.sock" in cfg


def test_status_reads_the_stats_page_over_https(monkeypatch: pytest.MonkeyPatch, make_inv) -> None:
    c = _cluster(make_inv("compact"))
    seen: list[str] = []

    def fake_http(url: str, auth: Any = None, timeout: float = 5.0, context: Any = None) -> tuple[int, bytes, dict]:
        seen.append(url)
        body = b"# pxname,svname,status,weight\nnuxeo,front1,UP,1\nnuxeo,front2,UP,1\n"
        return 200, body, {}

    monkeypatch.setattr(status, "_http", fake_http)
    rows = status._haproxy(c, "lb1")
    assert seen == ["https://lb1:8404/stats;csv"] and rows[0].health == "ok"
    off = _cluster(make_inv("compact", set={"haproxy_stats_enabled": False}))
    monkeypatch.setattr(status, "_tcp", lambda addr, port: port == 443)
    seen.clear()
    rows = status._haproxy(off, "lb1")
    assert seen == [] and rows[0].health == "ok" and "stats page off" in rows[0].detail


def test_keepalived_checks_haproxy_on_its_frontend_not_the_stats_page() -> None:
    """The stats page may be off, asks for a password and serves TLS on the cluster address: a keepalived check
    on it failed every load balancer, and nobody held the virtual IP."""
    c = _cluster(ROOT / "inventories" / "distributed")
    env = _environment()
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = lambda v: str(v).lower() in ("true", "yes", "1", "on")
    values: dict[str, Any] = {**role_defaults(), **c.settings, "nx": c.to_facts(), "inventory_hostname": "lb1",
                              "__keepalived_interface": "eth0", "__keepalived_address": c.hosts["lb1"].address,
                              "__keepalived_prefix": "24",
                              "__keepalived_peer": next(p for p in c.derived["lb"]["vrrp"]["peers"]
                                                        if p["host"] == "lb1")}
    values["lookup"] = lambda _plugin, name, **kw: values.get(name, kw.get("default"))
    conf = env.get_template("keepalived/templates/etc/keepalived/keepalived.conf.j2").render(values)
    script = next(ln for ln in conf.splitlines() if ln.strip().startswith("script "))
    assert "http://127.0.0.1:80/" in script and "8404" not in script
