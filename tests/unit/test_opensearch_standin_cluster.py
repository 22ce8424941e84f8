"""The OpenSearch stand-in's cluster view (opensearch_cluster): allocation filters, shards per node, health, and the
refusals OpenSearch answers (unknown settings, bad values)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nxprovision_lab.standins.runtime import opensearch_cluster, opensearch_standin

NODES = [("search1", "10.0.0.1"), ("search2", "10.0.0.2"), ("search3", "10.0.0.3")]


def make(tmp_path: Path, *, rep: int = 1, pri: int = 2, down: tuple[str, ...] = (),
         nodes: list[tuple[str, str]] = NODES) -> opensearch_cluster.Cluster:
    indices = [{"index": "nuxeo", "status": "open", "pri": str(pri), "rep": str(rep), "docs.count": "3"},
               {"index": "nuxeo-audit", "status": "open", "pri": "1", "rep": str(rep)}]
    address = dict(nodes)
    return opensearch_cluster.Cluster(
        node_name=nodes[0][0], cluster_name="c-search", members=nodes, http_port=9200,
        state_file=tmp_path / "settings.json", indices=lambda: indices,
        alive=lambda host, _port: not any(address[d] == host for d in down))


def call(c: opensearch_cluster.Cluster, method: str, path: str, body: Any = None, **query: str) -> tuple[int, Any]:
    return c.handle(method, [p for p in path.split("/") if p], query, body or {})


def per_node(c: opensearch_cluster.Cluster) -> dict[str, int]:
    status, rows = call(c, "GET", "_cat/allocation")
    assert status == 200
    return {r["node"]: int(r["shards"]) for r in rows}


def test_three_nodes_one_replica_is_green_and_spread(tmp_path) -> None:
    c = make(tmp_path)
    status, health = call(c, "GET", "_cluster/health")
    assert status == 200 and health["status"] == "green" and health["number_of_nodes"] == 3
    assert health["active_shards"] == 6 and health["unassigned_shards"] == 0
    shards = per_node(c)
    assert sum(shards.values()) == 6 and all(n > 0 for n in shards.values()), shards
    _, rows = call(c, "GET", "_cat/shards")
    for idx, shard in {(r["index"], r["shard"]) for r in rows}:
        nodes = [r["node"] for r in rows if (r["index"], r["shard"]) == (idx, shard)]
        assert len(set(nodes)) == len(nodes), "two copies of a shard on one node"


def test_cat_shards_of_named_indices(tmp_path) -> None:
    c = make(tmp_path)
    _, rows = call(c, "GET", "_cat/shards/nuxeo")
    assert {r["index"] for r in rows} == {"nuxeo"} and len(rows) == 4  # 2 primaries, 1 replica each
    _, rows = call(c, "GET", "_cat/shards/nuxeo-*,nothing")
    assert {r["index"] for r in rows} == {"nuxeo-audit"}
    assert opensearch_cluster.is_cluster_call(["_cat", "shards", "nuxeo"])


def test_exclusion_moves_every_copy_away_when_the_others_can_hold_them(tmp_path) -> None:
    c = make(tmp_path)
    status, ack = call(c, "PUT", "_cluster/settings",
                       {"persistent": {"cluster.routing.allocation.exclude._name": "search3"}})
    assert status == 200 and ack["acknowledged"] is True
    assert per_node(c).get("search3") == 0
    assert call(c, "GET", "_cluster/health")[1]["status"] == "green"
    # kept across a restart of the node (persistent), cleared by null
    again = make(tmp_path)
    assert call(again, "GET", "_cluster/settings", flat_settings="true")[1]["persistent"] == {
        "cluster.routing.allocation.exclude._name": "search3"}
    assert call(again, "GET", "_cluster/settings")[1]["persistent"] == {
        "cluster": {"routing": {"allocation": {"exclude": {"_name": "search3"}}}}}
    call(again, "PUT", "_cluster/settings", {"persistent": {"cluster.routing.allocation.exclude._name": None}})
    assert per_node(again)["search3"] > 0


def test_exclusion_cannot_drain_a_node_whose_copies_have_nowhere_to_go(tmp_path) -> None:
    """Two nodes, one replica: the excluded node keeps its copies (OpenSearch never drops a started copy)."""
    c = make(tmp_path, nodes=NODES[:2])
    nested = {"cluster.routing.allocation": {"exclude": {"_name": "search2"}}}
    call(c, "PUT", "_cluster/settings", {"persistent": nested})
    assert per_node(c)["search2"] == 3
    assert call(c, "GET", "_cluster/health")[1]["status"] == "green"


def test_a_node_that_does_not_answer_leaves_the_cluster(tmp_path) -> None:
    c = make(tmp_path, down=("search3",))
    status, health = call(c, "GET", "_cluster/health")
    assert health["number_of_nodes"] == 2 and health["status"] == "green"
    assert "search3" not in per_node(c)
    # alone, with one replica: yellow, and a wait for green times out with 408
    alone = make(tmp_path, down=("search2", "search3"))
    assert call(alone, "GET", "_cluster/health")[1]["status"] == "yellow"
    status, body = call(alone, "GET", "_cluster/health", wait_for_status="green", timeout="1s")
    assert status == 408 and body["timed_out"] is True and body["status"] == "yellow"


def test_allocation_limited_to_primaries_leaves_an_away_nodes_replicas_unassigned(tmp_path) -> None:
    c = make(tmp_path, down=("search2",))
    call(c, "PUT", "_cluster/settings", {"persistent": {"cluster.routing.allocation.enable": "primaries"}})
    assert call(c, "GET", "_cluster/health")[1]["status"] == "yellow"
    call(c, "PUT", "_cluster/settings", {"persistent": {"cluster.routing.allocation.enable": None}})
    assert call(c, "GET", "_cluster/health")[1]["status"] == "green"


@pytest.mark.parametrize("body, reason", [
    ({"persistent": {"cluster.routing.allocation.exclud._name": "x"}}, "not recognized"),
    ({"persistent": {"cluster.routing.allocation.enable": "sometimes"}}, "Illegal allocation.enable value"),
    ({}, "no settings to update"),
])
def test_refused_settings(tmp_path, body, reason) -> None:
    c = make(tmp_path)
    status, answer = call(c, "PUT", "_cluster/settings", body)
    assert status == 400 and reason in answer["error"]["reason"], answer
    assert call(c, "GET", "_cluster/settings")[1]["persistent"] == {}


def test_members_come_from_the_configured_managers_and_seeds(tmp_path) -> None:
    s = {"cluster.initial_cluster_manager_nodes": ["search1", "search2"],
         "discovery.seed_hosts": ["10.0.0.1", "10.0.0.2:9300"]}
    view = opensearch_standin.cluster_view(s, tmp_path, ("127.0.0.1", 1), "search1", "c", 9200, "1.3.20")
    assert view.members == [("search1", "10.0.0.1"), ("search2", "10.0.0.2")]


def test_voting_config_exclusions(tmp_path) -> None:
    c = make(tmp_path)
    status, answer = call(c, "POST", "_cluster/voting_config_exclusions")
    assert status == 400 and "node identifiers" in answer["error"]["reason"]
    assert call(c, "POST", "_cluster/voting_config_exclusions", node_names="search3")[0] == 200
    # search3 still answers: a DELETE waiting for its removal times out, and keeps the exclusion
    status, answer = call(c, "DELETE", "_cluster/voting_config_exclusions", timeout="1s")
    assert status == 503 and "timed out waiting for removal" in answer["error"]["reason"]
    assert make(tmp_path, down=("search3",)).voting_exclusions == ["search3"]
    gone = make(tmp_path, down=("search3",))
    assert call(gone, "DELETE", "_cluster/voting_config_exclusions")[0] == 200
    assert gone.voting_exclusions == []
    too_many = ",".join(f"n{i}" for i in range(opensearch_cluster.MAX_VOTING_EXCLUSIONS + 1))
    status, answer = call(c, "POST", "_cluster/voting_config_exclusions", node_names=too_many)
    assert status == 400 and "cluster.max_voting_config_exclusions" in answer["error"]["reason"]


def test_nuxeo_search_client_retries_a_502_on_the_next_node() -> None:
    """A node stopping (the stand-in's front without its backend answers 502 text) is skipped, as the low-level REST
    client skips a 502/503/504; with every node failing, the error names the status instead of a JSON error."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from nxprovision_lab.standins.nuxeo.runtime.search import SearchClient, SearchError

    def server(status: int, body: bytes) -> ThreadingHTTPServer:
        class H(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        s = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        return s

    stopping = server(502, b"search backend unreachable\n")
    healthy = server(200, b'{"status": "green"}')
    try:
        client = SearchClient([f"127.0.0.1:{stopping.server_address[1]}", f"127.0.0.1:{healthy.server_address[1]}"])
        assert [client.health() for _ in range(4)] == ["green"] * 4
        with pytest.raises(SearchError, match="502"):
            SearchClient([f"127.0.0.1:{stopping.server_address[1]}"]).health()
    finally:
        stopping.shutdown()
        healthy.shutdown()


def test_the_root_reports_the_product_version_not_the_backends(tmp_path) -> None:
    """GET / is how clients and `status` read the version: the in-memory backend would give its own."""
    c = opensearch_cluster.Cluster(
        node_name="search1", cluster_name="c-search", members=NODES, http_port=9200,
        state_file=tmp_path / "settings.json", indices=lambda: [], alive=lambda _h, _p: True, version="1.3.20")
    status, root = call(c, "GET", "")
    assert status == 200
    assert root["version"]["number"] == "1.3.20" and root["version"]["distribution"] == "opensearch"
    assert root["name"] == "search1" and root["cluster_name"] == "c-search"
    assert opensearch_cluster.is_cluster_call([], "GET") and not opensearch_cluster.is_cluster_call([], "HEAD")


def test_cat_indices_health_is_the_clusters_not_the_one_node_backends(tmp_path) -> None:
    c = make(tmp_path)
    backend_json = b'[{"health":"yellow","index":"nuxeo","pri":"2","rep":"1"},{"index":"nuxeo-audit","rep":"1"}]'
    rows = json.loads(c.cat_indices(backend_json, {"format": "json"}))
    assert rows[0]["health"] == "green" and "health" not in rows[1]
    text = (b"health status index uuid pri rep docs.count docs.deleted store.size pri.store.size\n"
            b"yellow open   nuxeo       u1   2   1   3 0 1kb 1kb\n"
            b"yellow open   nuxeo-audit u2   1   1   0 0 1kb 1kb\n")
    lines = c.cat_indices(text, {"v": ""}).decode().splitlines()
    assert lines[0].startswith("health status") and [ln.split()[0] for ln in lines[1:]] == ["green", "green"]
    assert c.cat_indices(b"open nuxeo\n", {"h": "status,index"}) == b"open nuxeo\n"
    # one node left of three, one replica each: every replica still has a node, primaries too
    two = make(tmp_path / "two", down=("search3",))
    assert set(two.index_health().values()) == {"green"}
    alone = make(tmp_path / "alone", down=("search2", "search3"))
    assert alone.index_health() == {"nuxeo": "yellow", "nuxeo-audit": "yellow"}
    assert [ln.split()[0] for ln in alone.cat_indices(text, {}).decode().splitlines()[1:]] == ["yellow", "yellow"]
