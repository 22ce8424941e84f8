"""Monitoring (issue 20): the model's `monitoring` section, the secret, and the role's rendered files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nxprovision import rotation, secrets
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import Cluster, build_cluster
from nxprovision.model.roledefaults import role_defaults
from nxprovision.plan import _environment, make_plan

ROOT = Path(__file__).resolve().parents[2]
COMPACT = {"loadbalancers": ["lb1"], "nuxeo_front": ["front1", "front2"], "nuxeo_worker": ["worker1"],
           "postgresql": ["db1", "db2"], "opensearch": ["search1", "search2", "search3"], "kafka": ["kafka1"],
           "s3": ["s3-1"]}
ADDRESSES = {h: {"ansible_host": f"10.2.0.{i}"} for i, h in enumerate(
    ["lb1", "front1", "front2", "worker1", "db1", "db2", "search1", "search2", "search3", "kafka1", "s3-1"], start=10)}


def _cluster(inv: Path) -> Cluster:
    return build_cluster(load_inventory(inv))


def _monitored(make_inv: Any, **set_: Any) -> Cluster:
    return _cluster(make_inv("compact", set=set_ or None, layout={**COMPACT, "monitoring": ["lb1"]},
                             hostvars=ADDRESSES))


def _render(c: Cluster, host: str, template: str, **extra: Any) -> str:
    """A monitoring template as Ansible renders it for HOST (role defaults, settings, the role's vars)."""
    env = _environment()
    env.filters["to_json"] = json.dumps
    env.filters["combine"] = lambda a, b: {**a, **b}
    facts = c.to_facts()
    values: dict[str, Any] = {**role_defaults(), **c.settings, "nx": facts, "inventory_hostname": host}
    values["__monitoring_address"] = facts["hosts"][host]["address"]
    values.update(extra)
    values["lookup"] = lambda _plugin, name, **_kw: values[name]
    return env.get_template(f"monitoring/templates/{template}").render(values)


# ---------------------------------------------------------------- model


def test_off_while_the_group_is_empty() -> None:
    for sample in ("single", "compact", "compact-mongodb", "distributed"):
        c = _cluster(ROOT / "inventories" / sample)
        m = c.derived["monitoring"]
        assert m["enabled"] is False and m["jobs"] == [], sample
        assert all("monitoring" not in cert["services"] for cert in c.derived["tls"]["certs"].values()), sample


def test_targets_come_from_the_inventory(make_inv) -> None:
    c = _monitored(make_inv)
    m = c.to_facts()["monitoring"]
    assert m["enabled"] and m["host"] == "lb1" and m["address"] == "10.2.0.10" and m["scheme"] == "https"
    assert m["prometheus_url"] == "https://10.2.0.10:9090" and m["alertmanager_url"] == "https://10.2.0.10:9095"
    jobs = {j["name"]: j for j in m["jobs"]}
    assert set(jobs) == {"prometheus", "alertmanager", "node", "haproxy", "nuxeo_runningstatus", "postgres", "nuxeo",
                         "search"}
    assert jobs["postgres"]["targets"] == [{"host": h, "address": f"{ADDRESSES[h]['ansible_host']}:9187"}
                                           for h in c.db_hosts]
    # each Nuxeo node's runningstatus, probed by the blackbox exporter on the monitoring host
    probe = jobs["nuxeo_runningstatus"]
    assert probe["probe"] == {"module": "nuxeo_runningstatus", "exporter": "10.2.0.10:9115"}
    assert {t["host"]: t["address"] for t in probe["targets"]} == {
        n.host: f"http://{n.address}:{n.port}/nuxeo/runningstatus" for n in c.nuxeo_nodes}
    node = jobs["node"]["targets"]
    # every host, on its cluster address
    assert sorted(t["host"] for t in node) == sorted(c.hosts)
    assert {t["address"] for t in node} == {f"{a['ansible_host']}:9100" for a in ADDRESSES.values()}
    assert m["node_exporter_bind"]["db2"] == "10.2.0.15:9100"
    assert jobs["haproxy"]["targets"] == [{"host": "lb1", "address": "10.2.0.10:8404"}]
    assert jobs["haproxy"]["auth"] == "haproxy" and jobs["haproxy"]["user"] == "admin"
    assert jobs["node"]["user"] == "monitoring" and jobs["node"]["scheme"] == "https"


def test_add_node_adds_a_target(make_inv) -> None:
    layout = {**COMPACT, "nuxeo_front": ["front1", "front2", "front3"], "monitoring": ["lb1"]}
    c = _cluster(make_inv("compact", layout=layout, hostvars={**ADDRESSES, "front3": {"ansible_host": "10.2.0.40"}}))
    node = next(j for j in c.derived["monitoring"]["jobs"] if j["name"] == "node")
    assert {"host": "front3", "address": "10.2.0.40:9100"} in node["targets"]
    # add-node's run converges the monitoring host too, which writes the new target
    from nxprovision.daytwo import add_node_limit

    assert "lb1" in add_node_limit(c, ["front3"])
    layout = {**COMPACT, "opensearch": ["search1", "search2", "search3", "search4"], "monitoring": ["db1"]}
    c = _cluster(make_inv("compact", layout=layout))
    assert add_node_limit(c, ["search4"])[-1] == "db1"


def test_remove_node_takes_the_host_out_of_the_targets(make_inv) -> None:
    from nxprovision.daytwo import view_without

    layout = {**COMPACT, "nuxeo_front": ["front1", "front2", "front3"], "monitoring": ["lb1"]}
    c = _cluster(make_inv("compact", layout=layout, hostvars={**ADDRESSES, "front3": {"ansible_host": "10.2.0.40"}}))
    after = build_cluster(view_without(c.view, "front3"))
    text = _render(after, "lb1", "etc/prometheus/prometheus.yml.j2")
    assert "10.2.0.40" not in text and "10.2.0.11:9100" in text
    assert "10.2.0.40:9100" in _render(c, "lb1", "etc/prometheus/prometheus.yml.j2")
    # remove_node.yml and the deploy write them with the same task file, which reloads (never restarts)
    tasks = yaml.safe_load((ROOT / "roles/monitoring/tasks/targets.yml").read_text())
    assert [t.get("notify") for t in tasks] == ["Reload prometheus", None]
    # the same file runs the search nodes' exporters, so a search node's exporter leaves with it
    assert tasks[1]["ansible.builtin.include_tasks"] == "search_exporters.yml"
    server = (ROOT / "roles/monitoring/tasks/server.yml").read_text()
    assert "import_tasks: targets.yml" in server and "prometheus.yml.j2" not in server


def test_nuxeo_reporter_on_every_node_with_monitoring(make_inv) -> None:
    c = _monitored(make_inv, nuxeo_metrics_port=9470)
    job = next(j for j in c.derived["monitoring"]["jobs"] if j["name"] == "nuxeo")
    # every Nuxeo node, front and worker, on its cluster address
    assert job["targets"] == [{"host": h, "address": f"{ADDRESSES[h]['ansible_host']}:9470"}
                              for h in ("front1", "front2", "worker1")]
    assert job["scheme"] == "http" and job["auth"] == "none"
    for n in c.nuxeo_nodes:
        conf = {i.key: i.value for i in n.conf}
        assert (conf["metrics.enabled"], conf["metrics.prometheus.enabled"], conf["metrics.prometheus.port"]) == (
            "true", "true", "9470"), n.host
    # monitoring off: Nuxeo's own defaults (off), no key written
    off = _cluster(make_inv("compact", layout=COMPACT, hostvars=ADDRESSES))
    assert not any(i.key.startswith("metrics.") for n in off.nuxeo_nodes for i in n.conf)


def test_nuxeo_reporter_port_is_admitted_from_the_monitoring_host_only(make_inv) -> None:
    c = _monitored(make_inv, nx_firewall_enabled=True)
    for host in ("front1", "worker1"):
        rule = next(r for r in c.derived["firewall"]["hosts"][host]["rules"] if r["port"] == 9464)
        assert rule["sources"] == ["10.2.0.10"] and rule["label"] == "Nuxeo Prometheus reporter", rule
    assert not any(r["port"] == 9464 for r in c.derived["firewall"]["hosts"]["db1"]["rules"])
    # off with monitoring: the port is not open at all (Nuxeo does not listen on it)
    off = _cluster(make_inv("compact", set={"nx_firewall_enabled": True}, layout=COMPACT, hostvars=ADDRESSES))
    assert not any(r["port"] == 9464 for r in off.derived["firewall"]["hosts"]["front1"]["rules"])


def test_an_open_reporter_is_a_warning_until_the_firewall_is_on(make_inv, run_cli) -> None:
    layout = {**COMPACT, "monitoring": ["lb1"]}
    code, out, _ = run_cli("validate", "-i", str(make_inv("compact", layout=layout)))
    assert code in (0, 1) and "ports.open_metrics" in out, out
    code, out, _ = run_cli("validate", "-i", str(make_inv("compact", layout=layout,
                                                            set={"nx_firewall_enabled": True})))
    assert "ports.open_metrics" not in out, out
    code, out, _ = run_cli("validate", "-i", str(make_inv("compact")))
    assert "ports.open_metrics" not in out, out


def test_nuxeo_reporter_port_clash_is_reported(make_inv, run_cli) -> None:
    # Nuxeo's own default, 9090, is Prometheus's: on a monitoring host that is also a Nuxeo node they clash
    inv = make_inv("compact", set={"nuxeo_metrics_port": 9090}, layout={**COMPACT, "monitoring": ["front1"]})
    code, out, err = run_cli("validate", "-i", str(inv))
    assert code == 2 and "ports.clash" in out and "nuxeo_metrics_port" in out, out + err


def test_add_node_adds_a_nuxeo_reporter_target(make_inv) -> None:
    from nxprovision.daytwo import add_node_limit, view_without

    layout = {**COMPACT, "nuxeo_worker": ["worker1", "worker2"], "monitoring": ["lb1"]}
    c = _cluster(make_inv("compact", layout=layout, hostvars={**ADDRESSES, "worker2": {"ansible_host": "10.2.0.41"}}))
    assert "10.2.0.41:9464" in _render(c, "lb1", "etc/prometheus/prometheus.yml.j2")
    assert "lb1" in add_node_limit(c, ["worker2"])
    after = build_cluster(view_without(c.view, "worker2"))
    assert "10.2.0.41" not in _render(after, "lb1", "etc/prometheus/prometheus.yml.j2")


def test_every_host_gets_a_certificate_for_its_node_exporter(make_inv) -> None:
    c = _monitored(make_inv)
    certs = c.derived["tls"]["certs"]
    assert set(certs) == set(c.hosts)
    assert all("monitoring" in v["services"] for v in certs.values())
    assert certs["worker1"]["paths"]["monitoring"]["key"] == "/etc/prometheus/tls/server.key"
    assert "10.2.0.13" in certs["worker1"]["ips"]


def test_plain_http_without_tls(make_inv) -> None:
    c = _monitored(make_inv, nx_tls_enabled=False, nx_public_url="http://nuxeo.example.com/nuxeo")
    m = c.derived["monitoring"]
    assert not m["tls"] and m["scheme"] == "http" and m["ca_file"] == ""
    assert all(j["scheme"] == "http" for j in m["jobs"])
    c = _monitored(make_inv, nx_tls_monitoring=False)
    assert not c.derived["monitoring"]["tls"]
    # the public frontend keeps its certificate; HAProxy's exporter is on its stats page, over TLS with it
    assert next(j for j in c.derived["monitoring"]["jobs"] if j["name"] == "haproxy")["scheme"] == "https"


def test_haproxy_stats_off_means_no_haproxy_job(make_inv) -> None:
    c = _monitored(make_inv, haproxy_stats_enabled=False)
    assert "haproxy" not in {j["name"] for j in c.derived["monitoring"]["jobs"]}


def test_one_search_exporter_per_node_on_the_monitoring_hosts_loopback(make_inv) -> None:
    c = _monitored(make_inv, monitoring_search_exporter_port=9300 + 30)
    m = c.derived["monitoring"]
    assert m["search_exporters"] == [
        {"host": h, "instance": h, "listen": f"127.0.0.1:{9330 + i}",
         "url": f"https://{ADDRESSES[h]['ansible_host']}:9200"}
        for i, h in enumerate(("search1", "search2", "search3"))]
    job = next(j for j in m["jobs"] if j["name"] == "search")
    # Prometheus scrapes them on its own host's loopback, labelled with the search node each one reads
    assert job["targets"] == [{"host": e["host"], "address": e["listen"]} for e in m["search_exporters"]]
    assert job["scheme"] == "http" and job["auth"] == "none"
    # they read their node as the search user `monitoring` (cluster and index statistics only), with the monitoring
    # password; the user exists only while there is a monitoring host
    users = c.derived["search"]["security"]["users"]
    assert users["monitoring"] == {"secret": "nx_secret_monitoring_password", "role": "nxprovision_monitoring",
                                   "description": "the monitoring host's exporters: cluster health and statistics"}
    off = _cluster(make_inv("compact", layout=COMPACT, hostvars=ADDRESSES))
    assert set(off.derived["search"]["security"]["users"]) == {"admin", "nuxeo", "backup"}
    # the host firewall admits the monitoring host to the search nodes' REST port
    rules = {(r["port"], tuple(r["sources"])) for r in c.derived["firewall"]["hosts"]["search2"]["rules"]}
    assert any(port == 9200 and "10.2.0.10" in src for port, src in rules), rules


def test_search_exporter_files_keep_the_password_off_the_command_line(make_inv) -> None:
    c = _monitored(make_inv)
    e = c.derived["monitoring"]["search_exporters"][1]
    env = _render(c, "lb1", "etc/prometheus/search-exporter.env.j2", item=e,
                  __monitoring_search_dir="/etc/prometheus/search-exporter")
    values = dict(line.split("=", 1) for line in env.splitlines() if line and not line.startswith("#"))
    password = c.settings["nx_secret_monitoring_password"]
    assert json.loads(values["ES_USERNAME"]) == "monitoring" and json.loads(values["ES_PASSWORD"]) == password
    args = json.loads(values["ARGS"])
    assert password not in args
    assert args.split() == ["--es.uri=https://10.2.0.17:9200", "--es.ca=/etc/nxprovision/tls/ca.crt",
                            "--es.node=_local", "--es.timeout=5s", "--es.clusterinfo.interval=30s",
                            "--web.listen-address=127.0.0.1:9121"]
    unit = _render(c, "lb1", "etc/systemd/system/nxprovision-search-exporter@.service.j2",
                   __monitoring_user="prometheus", __monitoring_search_dir="/etc/prometheus/search-exporter")
    assert "EnvironmentFile=/etc/prometheus/search-exporter/%i.env" in unit and "User=prometheus" in unit
    assert "ExecStart=/usr/bin/prometheus-elasticsearch-exporter $ARGS" in unit
    # the opensearch role's roles.yml grants that user statistics only
    roles = yaml.safe_load(_render_opensearch_roles(c))
    assert roles["nxprovision_monitoring"]["cluster_permissions"] == ["cluster_monitor"]
    assert roles["nxprovision_monitoring"]["index_permissions"][0]["allowed_actions"] == ["indices_monitor"]
    off = _cluster(make_inv("compact", layout=COMPACT, hostvars=ADDRESSES))
    assert "nxprovision_monitoring" not in yaml.safe_load(_render_opensearch_roles(off))


def _render_opensearch_roles(c: Cluster) -> str:
    env = _environment()
    env.filters["to_json"] = json.dumps
    facts = c.to_facts()
    return env.get_template("opensearch/templates/opt/opensearch/securityconfig/roles.yml.j2").render(
        __opensearch_security=facts["search"]["security"])


def test_patroni_members_are_scraped_on_their_rest_port_without_a_password(make_inv) -> None:
    c = _cluster(make_inv("distributed", layout={
        "loadbalancers": ["lb1", "lb2"], "nuxeo_front": ["front1", "front2"], "nuxeo_worker": ["worker1"],
        "postgresql": ["db1", "db2", "db3"], "etcd": ["db1", "db2", "db3"],
        "opensearch": ["search1", "search2", "search3"], "kafka": ["kafka1", "kafka2", "kafka3"], "s3": ["s3-1"],
        "monitoring": ["lb1"]}))
    jobs = {j["name"]: j for j in c.derived["monitoring"]["jobs"]}
    patroni = jobs["patroni"]
    rest = c.derived["db"]["patroni"]
    assert [t["host"] for t in patroni["targets"]] == ["db1", "db2", "db3"]
    assert [f"https://{t['address']}" for t in patroni["targets"]] == [m["rest_url"] for m in rest["members"]]
    assert patroni["scheme"] == "https" and patroni["auth"] == "none" and patroni["metrics_path"] == "/metrics"
    conf = yaml.safe_load(_render(c, "lb1", "etc/prometheus/prometheus.yml.j2"))
    job = next(j for j in conf["scrape_configs"] if j["job_name"] == "patroni")
    assert "basic_auth" not in job and job["tls_config"] == {"ca_file": "/etc/nxprovision/tls/ca.crt"}
    # the members' firewall admits the monitoring host to the REST port
    monitor = c.derived["monitoring"]["address"]
    rules = c.derived["firewall"]["hosts"]["db2"]["rules"]
    assert any(r["port"] == rest["rest_port"] and monitor in r["sources"] for r in rules), rules
    # the compact architecture has no Patroni
    assert "patroni" not in {j["name"] for j in _monitored(make_inv).derived["monitoring"]["jobs"]}


def test_ports_clash_is_reported(make_inv, run_cli) -> None:
    inv = make_inv("compact", set={"monitoring_prometheus_port": 8404}, layout={**COMPACT, "monitoring": ["lb1"]})
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 2 and "8404" in out, out


# ---------------------------------------------------------------- secret


def test_the_password_is_generated_checked_and_not_rotated(make_inv, run_cli) -> None:
    name = "nx_secret_monitoring_password"
    assert secrets.spec(name).needed_for == "monitoring" and len(secrets.spec(name).generate()) >= 24
    assert name in rotation.REFUSED
    inv = make_inv("compact", layout={**COMPACT, "monitoring": ["lb1"]}, drop_secrets=[name])
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 2 and "secrets.missing" in out and name in out
    # monitoring off: not asked for
    code, out, _ = run_cli("validate", "-i", str(make_inv("compact", drop_secrets=[name])))
    assert name not in out, out
    for sample in ("single", "compact", "compact-mongodb", "distributed"):
        assert str(_cluster(ROOT / "inventories" / sample).settings.get(name) or ""), sample


def test_init_writes_an_empty_monitoring_group(run_cli, tmp_path: Path) -> None:
    d = tmp_path / "inv"
    code, _out, err = run_cli("init", "--architecture", "compact", str(d))
    assert code == 0, err
    text = (d / "hosts.yml").read_text()
    assert "\n    monitoring:\n" in text and "# monitoring: one host" in text
    assert yaml.safe_load(text)["all"]["children"]["monitoring"] is None
    assert _cluster(d).derived["monitoring"]["enabled"] is False


# ---------------------------------------------------------------- rendering


def test_prometheus_yml_scrapes_the_model_targets_with_auth_and_the_ca(make_inv) -> None:
    c = _monitored(make_inv)
    text = _render(c, "lb1", "etc/prometheus/prometheus.yml.j2")
    conf = yaml.safe_load(text)
    jobs = {j["job_name"]: j for j in conf["scrape_configs"]}
    assert set(jobs) == {"prometheus", "alertmanager", "node", "haproxy", "nuxeo_runningstatus", "postgres", "nuxeo",
                         "search"}
    # Nuxeo's reporter has neither TLS nor authentication: plain HTTP, no credentials sent
    nuxeo = jobs["nuxeo"]
    assert nuxeo["scheme"] == "http" and "basic_auth" not in nuxeo and "tls_config" not in nuxeo
    assert [sc["targets"] for sc in nuxeo["static_configs"]] == [["10.2.0.11:9464"], ["10.2.0.12:9464"],
                                                                  ["10.2.0.13:9464"]]
    probe = jobs["nuxeo_runningstatus"]
    assert probe["metrics_path"] == "/probe" and probe["params"] == {"module": ["nuxeo_runningstatus"]}
    assert {"target_label": "__address__", "replacement": "10.2.0.10:9115"} in probe["relabel_configs"]
    assert probe["basic_auth"]["username"] == "monitoring" and probe["scheme"] == "https"
    node = jobs["node"]
    assert node["scheme"] == "https" and node["tls_config"] == {"ca_file": "/etc/nxprovision/tls/ca.crt"}
    assert node["basic_auth"] == {"username": "monitoring", "password": c.settings["nx_secret_monitoring_password"]}
    assert {sc["labels"]["nx_host"] for sc in node["static_configs"]} == set(c.hosts)
    assert jobs["haproxy"]["basic_auth"]["password"] == c.settings["nx_secret_haproxy_stats_password"]
    am = conf["alerting"]["alertmanagers"][0]
    assert am["static_configs"] == [{"targets": ["10.2.0.10:9095"]}] and am["scheme"] == "https"
    assert conf["rule_files"] == ["/etc/prometheus/nxprovision.rules.yml"]
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "config", "--syntax-only", "/dev/stdin"], input=text,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_services_listen_on_the_cluster_address_only(make_inv) -> None:
    c = _monitored(make_inv)
    node = _render(c, "db1", "etc/default/prometheus-node-exporter.j2")
    assert "--web.listen-address=10.2.0.14:9100 " in node and "--web.config.file=" in node
    prom = _render(c, "lb1", "etc/default/prometheus.j2")
    assert "--web.listen-address=10.2.0.10:9090 " in prom and "--web.config.file=/etc/prometheus/web.yml" in prom
    am = _render(c, "lb1", "etc/default/prometheus-alertmanager.j2")
    assert "--web.listen-address=10.2.0.10:9095 " in am and am.rstrip().endswith('--cluster.listen-address="')
    bb = _render(c, "lb1", "etc/default/prometheus-blackbox-exporter.j2")
    assert "--web.listen-address=10.2.0.10:9115 " in bb and "--web.config.file=/etc/prometheus/blackbox-web.yml" in bb
    pg = _render(c, "db1", "etc/default/prometheus-postgres-exporter.j2")
    assert "--web.listen-address=10.2.0.14:9187 " in pg and "user=prometheus host=/var/run/postgresql" in pg
    assert "password" not in pg
    for text in (node, prom, am, bb, pg):
        assert "0.0.0.0" not in text and "=:9" not in text


def test_alertmanager_receiver_takes_the_operator_notifiers(make_inv) -> None:
    c = _monitored(make_inv)
    conf = yaml.safe_load(_render(c, "lb1", "etc/prometheus/alertmanager.yml.j2",
                                  monitoring_alertmanager_receiver={"webhook_configs": [{"url": "http://x/hook"}]}))
    assert conf["route"]["receiver"] == "nxprovision"
    assert conf["receivers"] == [{"name": "nxprovision", "webhook_configs": [{"url": "http://x/hook"}]}]
    assert yaml.safe_load(_render(c, "lb1", "etc/prometheus/alertmanager.yml.j2"))["receivers"] == [
        {"name": "nxprovision"}]


def test_haproxy_exports_metrics_behind_the_stats_password(make_inv) -> None:
    c = _monitored(make_inv, nx_tls_enabled=False, nx_public_url="http://nuxeo.example.com/nuxeo")
    cfg = make_plan(c, reveal=True).files["lb1"]["/etc/haproxy/haproxy.cfg"]
    stats = cfg[cfg.index("frontend stats"):]
    assert "http-request use-service prometheus-exporter if { path /metrics }" in stats
    assert "http-request auth realm metrics if { path /metrics } !{ http_auth(nx_stats) }" in stats
    assert f"user admin insecure-password {c.settings['nx_secret_haproxy_stats_password']}" in stats
    if shutil.which("haproxy"):
        r = subprocess.run(["haproxy", "-c", "-f", "/dev/stdin"], input=cfg, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    # without monitoring, the page is unchanged
    off = make_plan(_cluster(make_inv("compact")), reveal=True).files["lb1"]["/etc/haproxy/haproxy.cfg"]
    assert "prometheus-exporter" not in off and "userlist" not in off


def test_web_config_module_keeps_a_hash_that_verifies(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("nx_web_config", ROOT / "plugins" / "modules" / "nx_web_config.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        h = mod._hash("s3cret", 4)
    except ImportError:
        pytest.skip("neither bcrypt nor crypt on this Python")
    assert h.startswith("$2") and mod._verifies("s3cret", h) and not mod._verifies("other", h)
    text = mod.render({"monitoring": h}, "/etc/prometheus/tls/server.crt", "/etc/prometheus/tls/server.key", "TLS12")
    conf = yaml.safe_load(text)
    assert conf["basic_auth_users"] == {"monitoring": h}
    assert conf["tls_server_config"]["cert_file"] == "/etc/prometheus/tls/server.crt"
    # the module reads the hash back from what it wrote
    assert mod.existing_hashes(text) == {"monitoring": h}
    if shutil.which("promtool"):
        (tmp_path / "web.yml").write_text(mod.render({"monitoring": h}, "", "", "TLS12"))
        r = subprocess.run(["promtool", "check", "web-config", str(tmp_path / "web.yml")], capture_output=True,
                           text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_single_host_with_monitoring_validates(make_inv, run_cli) -> None:
    """Everything on one host: no port of Prometheus or Alertmanager clashes with another component's (Kafka's
    KRaft controller takes Alertmanager's usual 9093)."""
    layout = {"loadbalancers": ["nuxeo1"], "nuxeo_front": ["nuxeo1"], "postgresql": ["nuxeo1"],
              "opensearch": ["nuxeo1"], "kafka": ["nuxeo1"], "s3": ["nuxeo1"], "monitoring": ["nuxeo1"]}
    inv = make_inv("single", layout=layout)
    code, out, _ = run_cli("validate", "-i", str(inv))
    # no clash (Nuxeo's reporter included); only the warning that it is open without the host firewall
    assert code == 0 and "ports.clash" not in out and "ports.invalid" not in out, out
    assert _cluster(inv).derived["monitoring"]["alertmanager_port"] == 9095


def test_node_exporter_port_clash_is_reported_on_any_host(make_inv, run_cli) -> None:
    inv = make_inv("compact", set={"monitoring_node_exporter_port": 9200}, layout={**COMPACT, "monitoring": ["lb1"]})
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 2 and "9200" in out and "search1" in out, out


def test_search_exporter_files_as_ansible_evaluates_them(make_inv, tmp_path: Path) -> None:
    """The role's list of wanted exporter files, evaluated by Ansible itself (not by a bare Jinja environment): any
    file outside it is taken for a search node that left, and its exporter stopped. (A backreference in that
    expression once came out literally under Ansible, and the deploy stopped every exporter it had just started.)"""
    c = _monitored(make_inv)
    facts = tmp_path / "nx.json"
    facts.write_text(json.dumps({"nx": c.to_facts(), "monitoring_config_dir": "/etc/prom",
                                 "ansible_connection": "local", "ansible_python_interpreter": sys.executable}))
    out = tmp_path / "wanted.json"
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "lb1", "gather_facts": False,
        "tasks": [
            {"ansible.builtin.include_vars": {"file": str(ROOT / "roles/monitoring/vars/main.yml")}},
            {"ansible.builtin.copy": {"dest": str(out), "mode": "0600",
                                      "content": "{{ {'files': __monitoring_search_env_files, "
                                                 "'search': __monitoring_search | bool} | to_json }}"}},
        ]}]))
    ansible = Path(sys.executable).parent / "ansible-playbook"
    env = {**os.environ, "ANSIBLE_CONFIG": str(tmp_path / "none.cfg")}  # no ansible.cfg of the checkout
    r = subprocess.run([str(ansible), "-i", "lb1,", "-e", f"@{facts}", str(play)], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    got = json.loads(out.read_text())
    assert got == {"files": [f"/etc/prom/search-exporter/{h}.env" for h in ("search1", "search2", "search3")],
                   "search": True}
