"""remove-node per component (issue 15): the order components are removed in, the hooks found by file name,
the refusals decided before any host is touched, the CLI's flags and the --limit that keeps a dead host out."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from nxprovision import commands, hostkeys
from nxprovision.daytwo import REMOVE_ORDER, check_removal, removal_components, removal_plan
from nxprovision.errors import NxError
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "playbooks" / "tasks" / "remove"


def _cluster(name: str):
    return build_cluster(load_inventory(ROOT / "inventories" / name))


# --------------------------------------------------------------------------- dispatch order


def test_patroni_member_is_removed_before_its_etcd_member() -> None:
    nx = _cluster("distributed").to_facts()
    assert removal_components(nx, "db1") == ["patroni", "etcd"]
    assert removal_components(nx, "lb2") == ["loadbalancers"]
    assert removal_components(nx, "front1") == ["nuxeo_front"]
    assert removal_components(nx, "worker1") == ["nuxeo_worker"]


def test_compact_database_host_is_a_postgresql_replica_not_patroni() -> None:
    nx = _cluster("compact").to_facts()
    db = nx["db"]
    assert db.get("manager") != "patroni"
    assert "postgresql" in removal_components(nx, db["replicas"][0])


def test_order_follows_remove_order_whatever_the_group_order() -> None:
    # a host carrying everything (groups listed in another order): Nuxeo first, then the balancer, the
    # database (Patroni before etcd, which it needs), then the data components
    nx = {"hosts": {"h": {"components": ["s3", "etcd", "kafka", "postgresql", "loadbalancers", "nuxeo_front"]}},
          "db": {"manager": "patroni"}}
    assert removal_components(nx, "h") == ["nuxeo_front", "loadbalancers", "patroni", "etcd", "kafka", "s3"]
    assert REMOVE_ORDER.index("nuxeo_front") < REMOVE_ORDER.index("loadbalancers") < REMOVE_ORDER.index("patroni")
    assert REMOVE_ORDER.index("patroni") < REMOVE_ORDER.index("etcd")


def test_plan_finds_hooks_by_file_name(tmp_path: Path) -> None:
    (tmp_path / "check").mkdir()
    (tmp_path / "after").mkdir()
    (tmp_path / "etcd.yml").write_text("---\n")
    (tmp_path / "check" / "etcd.yml").write_text("---\n")
    (tmp_path / "after" / "patroni.yml").write_text("---\n")
    nx = {"hosts": {"db1": {"components": ["postgresql", "etcd"]}}, "db": {"manager": "patroni"}}
    plan = removal_plan(nx, "db1", tmp_path)
    # patroni has no task file here: it falls back to stopping its service
    assert plan == {"components": ["patroni", "etcd"], "checks": ["etcd"], "tasks": ["service.yml", "etcd.yml"],
                    "afters": ["patroni"]}


def test_repository_hooks_cover_the_handled_components() -> None:
    nx = {"hosts": {"h": {"components": ["nuxeo_front", "loadbalancers", "postgresql", "etcd", "opensearch",
                                         "kafka"]}},
          "db": {"manager": "patroni"}}
    plan = removal_plan(nx, "h", HOOKS)
    assert plan["components"] == ["nuxeo_front", "loadbalancers", "patroni", "etcd", "opensearch", "kafka"]
    assert plan["tasks"] == ["nuxeo_front.yml", "loadbalancers.yml", "patroni.yml", "etcd.yml", "opensearch.yml",
                             "kafka.yml"]
    assert plan["checks"] == ["loadbalancers", "patroni", "etcd", "opensearch", "kafka"]
    assert plan["afters"] == ["nuxeo_front", "loadbalancers", "patroni", "etcd", "opensearch", "kafka"]
    for sub in ("", "check", "after"):  # every hook file is named after a component
        for f in (HOOKS / sub).glob("*.yml"):
            assert f.stem in REMOVE_ORDER or (sub == "" and f.stem == "service"), f


def test_remove_node_playbook_dispatches_checks_then_removals_then_afters() -> None:
    plays = yaml.safe_load((ROOT / "playbooks" / "remove_node.yml").read_text())
    includes = [t["ansible.builtin.include_tasks"] for p in plays for t in p.get("tasks", [])
                if "ansible.builtin.include_tasks" in t]
    assert includes == ["tasks/remove/check/{{ nx_remove_component }}.yml",
                        "tasks/remove/{{ __nx_remove_step.1 }}",
                        "tasks/remove/after/{{ nx_remove_component }}.yml"]
    # no play targets the host being removed: it is reached by delegation, and only when reachable
    for p in plays[1:]:
        assert p["hosts"].endswith(":!{{ nx_remove_host | default('nx-no-host-given') }}"), p["name"]
    # last, whatever the host carried: the monitoring host writes the scrape targets without it (a reload)
    assert plays[-1]["hosts"].startswith("monitoring:!")
    assert plays[-1]["tasks"][0]["ansible.builtin.include_role"] == {"name": "monitoring", "tasks_from": "targets.yml"}


def test_no_removal_task_stops_postgresql_under_patroni() -> None:
    text = (HOOKS / "patroni.yml").read_text()
    assert "postgresql@" not in text and "name: patroni" in text and "/switchover" in text
    assert "members/" in text  # the member key leaves etcd
    lb = [t["name"] for t in yaml.safe_load((HOOKS / "loadbalancers.yml").read_text())]
    assert lb.index("Stop and disable keepalived (the virtual IP moves to a survivor)") \
        < lb.index("Wait for a surviving load balancer to hold the virtual IP") < lb.index("Stop and disable HAProxy")
    (block,) = yaml.safe_load((HOOKS / "etcd.yml").read_text())
    etcd = [t["name"] for t in block["block"]]
    assert etcd.index("Remove the member from the etcd cluster") < etcd.index("Stop and disable etcd")


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("host", ["lb1", "db1", "front2"])
def test_going_below_the_minimums_needs_force(host: str) -> None:
    cluster = _cluster("distributed")
    with pytest.raises(NxError, match="--force"):
        check_removal(cluster, host)
    assert check_removal(cluster, host, force=True)


def test_last_copy_of_data_is_refused_even_with_force() -> None:
    cluster = _cluster("distributed")
    with pytest.raises(NxError) as exc:
        check_removal(cluster, "s3-1", force=True)
    assert "last s3 host" in exc.value.message and "does not lift" in exc.value.fix


def test_compact_primary_is_refused_even_with_force() -> None:
    cluster = _cluster("compact")
    primary = cluster.derived["db"]["primary"]
    with pytest.raises(NxError) as exc:
        check_removal(cluster, primary, force=True)
    assert "primary" in exc.value.message


def test_last_load_balancer_needs_force_but_is_allowed_with_it() -> None:
    cluster = _cluster("compact")
    if len(cluster.lb_hosts) != 1:
        pytest.skip("the compact sample has more than one load balancer")
    with pytest.raises(NxError, match="last loadbalancers host"):
        check_removal(cluster, cluster.lb_hosts[0])
    assert any("last loadbalancers host" in line for line in check_removal(cluster, cluster.lb_hosts[0], True))


def test_runtime_refusals_ignore_force() -> None:
    # quorum and last-copy checks run on the hosts; none of them reads nx_remove_force
    for name in ("etcd", "patroni", "postgresql", "loadbalancers", "opensearch", "kafka"):
        text = (HOOKS / "check" / f"{name}.yml").read_text()
        assert "nx_remove_force" not in text, name
        flat = " ".join(text.split()).lower()
        assert "refused" in flat and "nothing was touched" in flat, name


# --------------------------------------------------------------------------- CLI flags and limits


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake(playbook: str, inventory: Path, **kw: Any) -> SimpleNamespace:
        calls.append({"playbook": playbook, **kw})
        return SimpleNamespace(rc=0, recap={}, failures=[], logs=[], run_dir=Path("/tmp"), changed_total=1)

    monkeypatch.setattr(commands, "run_playbook", fake)
    return calls


def test_unreachable_host_is_left_out_of_the_run(make_inv, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = make_inv("distributed")
    calls = _capture(monkeypatch)
    code, out, err = run_cli("remove-node", "-i", str(inv), "front2", "--unreachable", "--force")
    assert code == 0, err
    (call,) = calls
    assert call["playbook"] == "remove_node.yml"
    assert call["limit"] == "all:!front2"
    assert call["extravars"] == {"nx_remove_host": "front2", "nx_remove_unreachable": True, "nx_remove_force": True}
    assert "without contacting it" in out and "delete it from the inventory" in out


def test_reachable_host_runs_without_a_limit(make_inv, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = make_inv("distributed")
    calls = _capture(monkeypatch)
    code, out, err = run_cli("remove-node", "-i", str(inv), "worker1")
    assert code == 0, err
    assert calls[0]["limit"] is None
    assert calls[0]["extravars"] == {"nx_remove_host": "worker1", "nx_remove_unreachable": False,
                                     "nx_remove_force": False}
    assert "worker1 (nuxeo_worker) is drained and stopped" in out


def test_refusal_touches_nothing(make_inv, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = make_inv("distributed")
    calls = _capture(monkeypatch)
    code, _out, err = run_cli("remove-node", "-i", str(inv), "s3-1", "--force")
    assert code == 2 and calls == []
    assert "last s3 host" in err and "Traceback" not in err


def test_limit_strings() -> None:
    assert commands.remove_node_run("front2", True, False)[1] == "all:!front2"
    assert commands.remove_node_run("front2", False, False)[1] is None
    groups = {"all": ["a", "b", "c"], "nuxeo": ["b", "c"]}
    everyone = ["a", "b", "c"]
    # the host key pre-check asks only the hosts the run contacts: never the excluded dead host
    assert hostkeys.run_hosts(groups, everyone, "all:!b") == ["a", "c"]
    assert hostkeys.run_hosts(groups, everyone, "!a") == ["b", "c"]
    assert hostkeys.run_hosts(groups, everyone, "nuxeo:!c") == ["b"]
    assert hostkeys.run_hosts(groups, everyone, "all:!nuxeo") == ["a"]
    assert hostkeys.run_hosts(groups, everyone, "a*") == everyone  # richer patterns: every host


def test_limit_strings_agree_with_ansible(make_inv) -> None:
    from nxprovision.limits import hosts_matching

    inv = make_inv("distributed")
    view = load_inventory(inv)
    everyone = list(view.groups.get("all") or view.hostvars)
    for pattern in ("all:!front2", "!front2", "loadbalancers:!lb1"):
        assert sorted(hostkeys.run_hosts(view.groups, everyone, pattern)) == sorted(hosts_matching(inv, pattern))


# --------------------------------------------------------------------------- check hooks, run for real


def _run_hook(tmp_path: Path, hook: str, nx: dict[str, Any]) -> tuple[int, str]:
    """Run one check hook on this machine (local connection), members given closed ports: none answers."""
    import json
    import subprocess
    import sys

    pb = tmp_path / "pb.yml"
    pb.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"nx_remove_host": "gone", "nx_remove_force": True, "nx": nx},
        "tasks": [{"ansible.builtin.include_tasks": str(HOOKS / "check" / f"{hook}.yml")}],
    }]))
    inv = tmp_path / "inv"
    inv.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    bindir = Path(sys.executable).parent
    out = subprocess.run([str(bindir / "ansible-playbook"), "-i", str(inv), str(pb)], capture_output=True, text=True,
                         timeout=240, env={"PATH": f"{bindir}:/usr/bin:/bin", "ANSIBLE_LOCALHOST_WARNING": "false",
                                           "ANSIBLE_NOCOLOR": "1", "HOME": str(tmp_path)})
    return out.returncode, json.dumps(out.stdout + out.stderr)


def test_etcd_check_refuses_when_survivors_do_not_answer_even_with_force(tmp_path: Path) -> None:
    members = [{"host": h, "name": h, "address": "127.0.0.1", "client_url": f"https://127.0.0.1:{p}"}
               for h, p in (("gone", 1), ("m2", 1), ("m3", 1))]
    nx = {"tls": {"ca_path": "/x", "certs": {}}, "etcd": {"tls": True, "client_port": 1, "members": members,
                                                          "hosts": [m["host"] for m in members]}}
    rc, out = _run_hook(tmp_path, "etcd", nx)
    assert rc != 0 and "removing gone is refused" in out and "a quorum needs 2 healthy" in out, out


def test_patroni_check_refuses_when_no_member_answers(tmp_path: Path) -> None:
    members = [{"host": h, "name": h, "address": "127.0.0.1", "rest_url": "http://127.0.0.1:1"} for h in ("gone", "m2")]
    nx = {"tls": {"ca_path": "/x"}, "db": {"patroni": {"rest_port": 1, "rest_tls": False, "members": members}}}
    rc, out = _run_hook(tmp_path, "patroni", nx)
    assert rc != 0 and "removing gone is refused" in out and "no member answered" in out, out


# --------------------------------------------------------------------------- search node hooks, run for real
# The hooks run on this machine (local connection) against the OpenSearch stand-in's front and cluster view, in
# front of a small backend that lists the indices: `localhost` is the survivor they ask, `gone` the node removed.


class _Indices:
    """The backend behind the front: `_cat/indices` answers the given indices, the rest 404."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.rows = rows

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                data = json.dumps(outer.rows if self.path.startswith("/_cat/indices") else {}).encode()
                self.send_response(200 if self.path.startswith("/_cat/indices") else 404)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = ("127.0.0.1", self.server.server_address[1])


@pytest.fixture()
def search_cluster(tmp_path: Path):
    from nxprovision_lab.standins.runtime import opensearch_cluster, opensearch_snapshots

    backend = _Indices([{"index": "nuxeo", "status": "open", "pri": "2", "rep": "1"}])
    up = {"gone"}
    holder: dict[str, Any] = {}

    def cluster(members: list[str]) -> Any:
        view = opensearch_cluster.Cluster(
            node_name="localhost", cluster_name="c", members=[(m, "127.0.0.1" if m == "localhost" else m)
                                                              for m in members],
            http_port=0, state_file=tmp_path / "cluster.json",
            indices=lambda: backend.rows, alive=lambda host, _p: host in up)
        api = opensearch_snapshots.SnapshotApi(opensearch_snapshots.Backend(backend.address),
                                               state_file=tmp_path / "repos.json", keystore=dict,
                                               plugin_installed=False)
        front = opensearch_snapshots.serve_front(("127.0.0.1", 0), backend.address, api, None, view)
        holder.update(front=front, view=view)
        return SimpleNamespace(view=view, port=front.server_address[1], backend=backend, up=up)

    yield cluster
    opensearch_snapshots.close_quietly(holder.get("front"))
    backend.server.shutdown()


def _search_nx(port: int, hosts: list[str]) -> dict[str, Any]:
    return {"hosts": {h: {"address": "127.0.0.1" if h == "localhost" else "127.0.0.9"} for h in hosts},
            "search": {"hosts": hosts, "http_port": port, "tls": False, "ca_file": "",
                       "security": {"enabled": False, "users": {"admin": {"secret": "search_admin_pw"}}}}}


def _run_search_hooks(tmp_path: Path, hooks: list[str], nx: dict[str, Any], **extra: Any) -> tuple[int, str]:
    import json
    import subprocess
    import sys

    pb = tmp_path / "pb.yml"
    pb.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"nx_remove_host": "gone", "nx_remove_force": True, "nx_remove_unreachable": False, "nx": nx,
                 # long: Ansible masks a no_log value wherever it appears in a result, keys included
                 "search_admin_pw": "search-admin-test-password", **extra},
        "tasks": [{"ansible.builtin.include_tasks": str(HOOKS / h)} for h in hooks],
    }]))
    inv = tmp_path / "inv"
    inv.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    bindir = Path(sys.executable).parent
    out = subprocess.run([str(bindir / "ansible-playbook"), "-i", str(inv), str(pb)], capture_output=True, text=True,
                         timeout=240, env={"PATH": f"{bindir}:/usr/bin:/bin", "ANSIBLE_LOCALHOST_WARNING": "false",
                                           "ANSIBLE_NOCOLOR": "1", "HOME": str(tmp_path)})
    return out.returncode, json.dumps(out.stdout + out.stderr)


def test_search_check_refuses_when_the_nodes_left_cannot_hold_the_replicas(tmp_path: Path, search_cluster) -> None:
    c = search_cluster(["localhost", "gone"])
    rc, out = _run_search_hooks(tmp_path, ["check/opensearch.yml"], _search_nx(c.port, ["localhost", "gone"]))
    assert rc != 0 and "removing gone is refused: 1 search node(s) would be left" in out, out
    assert "keeps 2 copies" in out and "--force does not lift this" in out, out
    assert c.view.settings["persistent"] == {} and c.view.voting_exclusions == []  # nothing touched


def test_search_check_refuses_while_a_copy_is_missing(tmp_path: Path, search_cluster) -> None:
    c = search_cluster(["localhost", "gone", "third"])  # `third` does not answer: its copies are missing
    c.backend.rows[0]["rep"] = "2"
    rc, out = _run_search_hooks(tmp_path, ["check/opensearch.yml"],
                                _search_nx(c.port, ["localhost", "gone", "third", "fourth"]))
    assert rc != 0 and "the search cluster is yellow" in out and "may hold the last one" in out, out


def test_search_check_refuses_when_no_survivor_answers(tmp_path: Path) -> None:
    rc, out = _run_search_hooks(tmp_path, ["check/opensearch.yml"], _search_nx(1, ["gone", "m2"]))
    assert rc != 0 and "no other search node answers" in out, out


def test_search_node_dead_is_waited_out_and_its_exclusions_lifted(tmp_path: Path, search_cluster) -> None:
    """--unreachable: the check accepts a yellow cluster, the removal never excludes or stops the dead node but
    waits until the cluster dropped it; the after hook lifts the exclusions (an older one of the node included)."""
    c = search_cluster(["localhost", "gone", "third"])
    c.up.add("third")
    c.view.put_settings({"persistent": {"cluster.routing.allocation.exclude._name": "gone,other"}})
    c.up.discard("gone")  # powered off
    nx = _search_nx(c.port, ["localhost", "gone", "third"])
    rc, out = _run_search_hooks(tmp_path, ["check/opensearch.yml", "opensearch.yml"], nx, nx_remove_unreachable=True)
    assert rc == 0, out
    assert c.view.voting_exclusions == ["gone"]
    nx_after = _search_nx(c.port, ["localhost", "third"])
    rc, out = _run_search_hooks(tmp_path, ["after/opensearch.yml"], nx_after, nx_remove_search_peer="localhost")
    assert rc == 0, out
    assert c.view.settings["persistent"] == {"cluster.routing.allocation.exclude._name": "other"}
    assert c.view.voting_exclusions == []


def test_search_removal_drains_before_it_stops() -> None:
    (block,) = yaml.safe_load((HOOKS / "opensearch.yml").read_text())
    names = [t["name"] for t in block["block"]]
    assert names.index("Exclude the node from shard allocation") < names.index("Wait until the node holds no shard") \
        < names.index("Stop and disable OpenSearch") < names.index("Wait until the cluster no longer lists the node")
    stop = next(t for t in block["block"] if t["name"] == "Stop and disable OpenSearch")
    assert stop["when"] == "not nx_remove_unreachable | bool" and stop["delegate_to"] == "{{ nx_remove_host }}"
