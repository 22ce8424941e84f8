"""The Grafana dashboards of the monitoring role: valid JSON in Grafana's dashboard format, valid PromQL, and only
metric names that a scraped target exports (the lists in roles/monitoring/files/exported_metrics/, each scraped
from the Debian package the role installs, or for Nuxeo's reporter read from its code). No lab test checks these
names against a live Prometheus yet."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from nxprovision import dashboards

FILES = dashboards.dashboard_files()
# the cluster overview and one per component that has an exporter in this release
EXPECTED = {"overview.json", "hosts.json", "haproxy.json", "nuxeo.json", "monitoring.json", "database.json",
            "search.json", "kafka.json"}


def test_every_component_has_a_dashboard() -> None:
    assert {f.name for f in FILES} == EXPECTED


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_grafana_dashboard_format(path: Path) -> None:
    d = json.loads(path.read_text())  # valid JSON, or this fails
    assert d["uid"].startswith("nx-") and len(d["uid"]) <= 40 and d["title"].startswith("nxprovision: ")
    assert isinstance(d["schemaVersion"], int) and "nxprovision" in d["tags"]
    names = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "nx_host"} <= names
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)) and ids
    for p in d["panels"]:
        assert p["type"] in ("timeseries", "stat", "table", "gauge"), p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert set(p["gridPos"]) == {"x", "y", "w", "h"} and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(t["expr"].strip() for t in p["targets"]), p["title"]


def test_uids_are_unique() -> None:
    uids = [json.loads(f.read_text())["uid"] for f in FILES]
    assert len(uids) == len(set(uids))


def test_metric_names_are_extracted_from_promql() -> None:
    f = dashboards.metric_names
    expr = 'sum by (code) (rate(haproxy_backend_http_responses_total{proxy="nuxeo",code=~"5.."}[$__rate_interval]))'
    assert f(expr) == {"haproxy_backend_http_responses_total"}
    assert f("1 - node_filesystem_avail_bytes{fstype!=\"tmpfs\"} / on (nx_host) group_left node_filesystem_size_bytes"
             " offset 5m") == {"node_filesystem_avail_bytes", "node_filesystem_size_bytes"}
    assert f("count(up == 0) or vector(0)") == {"up"}
    assert f("(time() - nxprovision_backup_last_success_timestamp_seconds) / 3600") == {
        "nxprovision_backup_last_success_timestamp_seconds"}


def test_every_name_a_dashboard_reads_is_exported_by_a_scraped_target() -> None:
    exported = dashboards.exported_names()
    assert {"node_exporter", "haproxy", "prometheus", "nxprovision"} <= set(exported)
    assert all(len(names) > 0 for names in exported.values())
    known = set().union(*exported.values())
    used = dashboards.used_names()
    assert all(used.values()), used
    missing = {f: sorted(names - known) for f, names in used.items() if names - known}
    assert not missing, f"metric names no scraped target exports: {missing}"


def test_postgres_exporter_list_is_the_roles_query_file() -> None:
    queries = yaml.safe_load((dashboards.ROLE_FILES / "postgres-exporter-queries.yml").read_text())
    served = {f"{q}_{col}" for q, spec in queries.items() for m in spec["metrics"] for col in m}
    assert dashboards.exported_names()["postgres_exporter"] == served


def test_a_name_no_target_exports_is_caught(tmp_path: Path) -> None:
    d = json.loads((dashboards.DASHBOARDS / "overview.json").read_text())
    d["panels"][0]["targets"][0]["expr"] = "nuxeo_works_global_queue_scheduled"
    (tmp_path / "x.json").write_text(json.dumps(d))
    used = dashboards.used_names(tmp_path)["x.json"]
    assert "nuxeo_works_global_queue_scheduled" in used - set().union(*dashboards.exported_names().values())


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_every_expression_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule, Grafana's variables replaced by what Grafana sends."""
    rules = []
    for f in FILES:
        for i, expr in enumerate(dashboards.expressions(json.loads(f.read_text()))):
            text = expr.replace("$__rate_interval", "1m").replace("$__range", "1h")
            text = re.sub(r"\$\{?\w+\}?", ".*", text)
            rules.append({"record": f"nx:{f.stem}:{i}", "expr": text})
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
