"""The OpenSearch stand-in's cluster view: shard allocation over the configured nodes, as OpenSearch reports it.

The lab's search nodes are in-memory servers that hold the same data (opensearch_replication copies every write to
the other live nodes and a live node's data to a starting one), not OpenSearch's shards: every node holds every
document. This module gives each of them the cluster APIs remove-node and the rolling restart rely on, in
OpenSearch's REST shapes:
- `GET|PUT _cluster/settings`: persistent and transient settings; only the allocation settings are known, any
  other key is refused (400 "not recognized") as OpenSearch refuses an unknown setting; `null` resets a key;
- `POST|DELETE _cluster/voting_config_exclusions` (`node_names`; `wait_for_removal`): the names kept, refused
  without node names or beyond `cluster.max_voting_config_exclusions` (10), a DELETE waits until they left;
- `GET _cat/nodes`, `_cat/allocation`, `_cat/shards[/<index>,...]` (`format=json`; index names or wildcards),
  `GET _cluster/health` (`wait_for_status`, `timeout`): the shards of the cluster's indices (`pri` primaries,
  `rep` replicas each) allocated over the nodes;
- `GET _cat/indices[/...]`: the backend's answer with each index's health taken from that allocation.
Members: the names of `cluster.initial_cluster_manager_nodes` paired in order with `discovery.seed_hosts`; this node
is always a member, another one while its HTTP port answers (a powered-off node leaves the cluster; a starting node
opens its HTTP port once it holds the cluster's data). Allocation is computed at each call, as OpenSearch converges,
but at once: no copy of a shard on the same node twice; a node
excluded by `cluster.routing.allocation.exclude._name|_ip|_host` (or left out by `include`/`require`) gets no copy,
and a copy it holds stays on it while no other node can take it (OpenSearch never drops a started copy to obey an
exclusion); `cluster.routing.allocation.enable: primaries|none` leaves replicas unassigned. Health: red when a
primary has no node, yellow when a replica has none, else green. The placement is a report only: whichever node a
client reaches answers from its own full copy.
The settings are kept by the node that receives them (a JSON file in path.data), not shared with the other
stand-ins: a client must send one operation's calls to one node.
"""

from __future__ import annotations

import fnmatch
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_FILTERS = ("exclude", "include", "require")
_ATTRS = ("_name", "_ip", "_host")
_ENABLE = ("all", "primaries", "new_primaries", "none")
_KNOWN = {
    "cluster.routing.allocation.enable", "cluster.routing.rebalance.enable",
    "cluster.routing.allocation.cluster_concurrent_rebalance", "cluster.routing.allocation.node_concurrent_recoveries",
    *(f"cluster.routing.allocation.{f}.{a}" for f in _FILTERS for a in _ATTRS),
}
MAX_VOTING_EXCLUSIONS = 10
_HEALTH_RANK = {"green": 0, "yellow": 1, "red": 2}
# `_cat/indices` columns without `h=`, as OpenSearch prints them
_CAT_INDICES_DEFAULT = ["health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted",
                        "store.size", "pri.store.size"]
# What the health answer (and so `nxprovision status`) says the stand-in does not do.
NOTICE = ("OpenSearch stand-in: every node holds every document (writes copied to each live node over the "
          "transport port, a full copy when a node starts), in memory; shards and health computed over the nodes, no "
          "real shard routing")


class ClusterError(Exception):
    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason = status, kind, reason

    def body(self) -> dict[str, Any]:
        cause = {"type": self.kind, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def _flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out |= _flatten(v, key)
            else:
                out[key] = v
    return out


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in flat.items():
        *head, last = key.split(".")
        node = out
        for h in head:
            node = node.setdefault(h, {})
        node[last] = v
    return out


def _values(v: Any) -> list[str]:
    if v is None:
        return []
    items = v if isinstance(v, list) else str(v).split(",")
    return [str(i).strip() for i in items if str(i).strip()]


class Cluster:
    """Allocation of one node's indices over the cluster's live members."""

    def __init__(self, *, node_name: str, cluster_name: str, members: list[tuple[str, str]], http_port: int,
                 state_file: Path, indices: Callable[[], list[dict[str, Any]]],
                 alive: Callable[[str, int], bool], version: str = "") -> None:
        self.node_name, self.cluster_name, self.version = node_name, cluster_name, version
        names = [n for n, _a in members]
        self.members = members if node_name in names else [(node_name, ""), *members]
        self.http_port, self.state_file = http_port, state_file
        self._indices, self._alive = indices, alive
        self._lock = threading.Lock()
        saved = json.loads(state_file.read_text()) if state_file.exists() else {}
        self.settings: dict[str, dict[str, Any]] = {
            "persistent": dict(saved.get("persistent") or {}), "transient": {}}
        self.voting_exclusions: list[str] = list(saved.get("voting_exclusions") or [])

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps({"persistent": self.settings["persistent"],
                                   "voting_exclusions": self.voting_exclusions}, indent=1, sort_keys=True))
        tmp.replace(self.state_file)

    # ------------------------------------------------------------------ settings

    def get_settings(self, flat: bool = False) -> dict[str, Any]:
        return {scope: dict(kv) if flat else _nest(kv) for scope, kv in self.settings.items()}

    def put_settings(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = [k for k in body if k not in ("persistent", "transient")]
        if unknown or not body:
            raise ClusterError(400, "action_request_validation_exception",
                               "Validation Failed: 1: no settings to update;")
        changes = {scope: _flatten(body.get(scope) or {}) for scope in ("persistent", "transient")}
        for scope, kv in changes.items():
            for k, v in kv.items():
                if k not in _KNOWN:
                    raise ClusterError(400, "illegal_argument_exception", f"{scope} setting [{k}], not recognized")
                if k == "cluster.routing.allocation.enable" and v is not None and str(v).lower() not in _ENABLE:
                    raise ClusterError(400, "illegal_argument_exception",
                                       f"Illegal allocation.enable value [{str(v).upper()}]")
        with self._lock:
            for scope, kv in changes.items():
                for k, v in kv.items():
                    if v is None:
                        self.settings[scope].pop(k, None)
                    else:
                        self.settings[scope][k] = ",".join(v) if isinstance(v, list) else str(v)
            self._save()
        return {"acknowledged": True, **{s: kv for s, kv in changes.items()}}

    def _setting(self, key: str) -> Any:
        # transient wins over persistent, as in OpenSearch
        return self.settings["transient"].get(key, self.settings["persistent"].get(key))

    # ------------------------------------------------------------------ voting configuration exclusions

    def add_voting_exclusions(self, query: dict[str, str]) -> dict[str, Any]:
        names = _values(query.get("node_names"))
        if not names or "node_ids" in query:
            raise ClusterError(400, "illegal_argument_exception",
                               "Please set node identifiers correctly. One and only one of [node_name], [node_names] "
                               "and [node_ids] has to be set")
        with self._lock:
            new = [n for n in names if n not in self.voting_exclusions]
            if len(self.voting_exclusions) + len(new) > MAX_VOTING_EXCLUSIONS:
                raise ClusterError(400, "illegal_argument_exception",
                                   f"add voting config exclusions request for {names} would add "
                                   f"[{len(new)}] exclusions to the existing [{len(self.voting_exclusions)}] which "
                                   f"would exceed the maximum of [{MAX_VOTING_EXCLUSIONS}] set by "
                                   "[cluster.max_voting_config_exclusions]")
            self.voting_exclusions += new
            self._save()
        return {}

    def clear_voting_exclusions(self, query: dict[str, str]) -> dict[str, Any]:
        if query.get("wait_for_removal", "true") != "false":
            deadline = time.monotonic() + _seconds(query.get("timeout", "30s"))
            while True:
                still = [n for n, _a in self.live() if n in self.voting_exclusions]
                if not still:
                    break
                if time.monotonic() >= deadline:
                    raise ClusterError(503, "opensearch_timeout_exception",
                                       f"timed out waiting for removal of nodes; if nodes should not be removed, "
                                       f"set waitForRemoval to false. {still}")
                time.sleep(0.5)
        with self._lock:
            self.voting_exclusions = []
            self._save()
        return {}

    # ------------------------------------------------------------------ members and allocation

    def live(self) -> list[tuple[str, str]]:
        return [(n, a) for n, a in self.members
                if n == self.node_name or (a and self._alive(a, self.http_port))]

    def _eligible(self, name: str, address: str) -> bool:
        attrs = {"_name": name, "_ip": address, "_host": address}
        for a in _ATTRS:
            val = attrs[a]
            if val and val in _values(self._setting(f"cluster.routing.allocation.exclude.{a}")):
                return False
            inc = _values(self._setting(f"cluster.routing.allocation.include.{a}"))
            if inc and val not in inc:
                return False
            req = _values(self._setting(f"cluster.routing.allocation.require.{a}"))
            if req and val not in req:
                return False
        return True

    def shards(self) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """Every shard copy (index, shard, prirep, state, node) and the live members."""
        live = self.live()
        live_names = [n for n, _a in live]
        eligible = [n for n, a in live if self._eligible(n, a)]
        everyone = [n for n, _a in self.members]
        enable = str(self._setting("cluster.routing.allocation.enable") or "all").lower()
        rows: list[dict[str, Any]] = []
        slot = 0
        for idx in sorted(self._indices(), key=lambda i: str(i.get("index"))):
            if str(idx.get("status", "open")) != "open":
                continue
            pri, rep = int(idx.get("pri") or 1), int(idx.get("rep") or 0)
            for shard in range(pri):
                # the members in a fixed rotation per shard: copies spread, and stay put while nothing changes
                home = [everyone[(slot + i) % len(everyone)] for i in range(len(everyone))]
                slot += 1
                taken: list[str] = []
                for copy in range(1 + rep):
                    prirep = "p" if copy == 0 else "r"
                    natural = home[copy] if copy < len(home) else None
                    node: str | None = None
                    if prirep == "p" or enable == "all" or natural in live_names:
                        # allocation limited (a rolling restart): a replica whose node is away is not rebuilt
                        node = next((n for n in home if n in eligible and n not in taken), None)
                        if node is None:
                            # nowhere else to go: a started copy stays on its excluded node
                            node = next((n for n in home if n in live_names and n not in taken), None)
                    if node is not None:
                        taken.append(node)
                    rows.append({"index": idx.get("index"), "shard": str(shard), "prirep": prirep,
                                 "state": "STARTED" if node else "UNASSIGNED", "docs": str(idx.get("docs.count", 0)),
                                 "node": node})
        return rows, live

    def index_health(self) -> dict[str, str]:
        """Each open index's health over the cluster's nodes (red: a primary without a node, yellow: a replica)."""
        out: dict[str, str] = {}
        for r in self.shards()[0]:
            level = "green" if r["state"] != "UNASSIGNED" else "red" if r["prirep"] == "p" else "yellow"
            name = str(r["index"])
            if _HEALTH_RANK[level] >= _HEALTH_RANK[out.get(name, "green")]:
                out[name] = level
        return out

    def cat_indices(self, data: bytes, query: dict[str, str]) -> bytes:
        """The backend's `_cat/indices` answer with each index's health from this view: the backend is one node, so
        it reports every index with replicas yellow while the cluster's health says green. JSON rows and text
        columns are rewritten where the answer names the index; other columns are left as the backend wrote them."""
        health = self.index_health()
        if query.get("format") == "json":
            rows = json.loads(data or b"[]")
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict) and "health" in row and str(row.get("index")) in health:
                    row["health"] = health[str(row["index"])]
            return json.dumps(rows).encode()
        columns = [c.strip() for c in query.get("h", "").split(",") if c.strip()] or _CAT_INDICES_DEFAULT
        if "health" not in columns or "index" not in columns:
            return data
        at, name_at = columns.index("health"), columns.index("index")
        lines = data.decode().splitlines()
        out = []
        for n, line in enumerate(lines):
            cells = line.split()
            header = n == 0 and query.get("v") in ("", "true")
            if not header and len(cells) == len(columns) and cells[name_at] in health:
                cells[at] = health[cells[name_at]]
                line = " ".join(cells)
            out.append(line)
        return ("\n".join(out) + ("\n" if data.endswith(b"\n") else "")).encode()

    def health(self) -> dict[str, Any]:
        rows, live = self.shards()
        primaries = [r for r in rows if r["prirep"] == "p"]
        unassigned = [r for r in rows if r["state"] == "UNASSIGNED"]
        status = ("red" if any(r["state"] == "UNASSIGNED" for r in primaries)
                  else "yellow" if unassigned else "green")
        return {
            "cluster_name": self.cluster_name, "status": status, "timed_out": False,
            "number_of_nodes": len(live), "number_of_data_nodes": len(live),
            "active_primary_shards": sum(1 for r in primaries if r["state"] == "STARTED"),
            "active_shards": sum(1 for r in rows if r["state"] == "STARTED"),
            "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": len(unassigned),
            "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0 * (len(rows) - len(unassigned)) / max(len(rows), 1),
            "notice": NOTICE,
        }

    def wait_health(self, want: str, timeout_s: float) -> dict[str, Any]:
        if want not in _HEALTH_RANK:
            raise ClusterError(400, "illegal_argument_exception", f"unknown cluster health status [{want}]")
        deadline = time.monotonic() + timeout_s
        while True:
            h = self.health()
            if _HEALTH_RANK[h["status"]] <= _HEALTH_RANK[want]:
                return h
            if time.monotonic() >= deadline:
                return {**h, "timed_out": True}
            time.sleep(0.5)

    # ------------------------------------------------------------------ REST

    def handle(self, method: str, parts: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        try:
            return 200, self._route(method, parts, query, body if isinstance(body, dict) else {})
        except ClusterError as e:
            return e.status, e.body()

    def root(self) -> dict[str, Any]:
        """GET /: the product's own name and version (the backend would report its own)."""
        return {
            "name": self.node_name, "cluster_name": self.cluster_name,
            "version": {"distribution": "opensearch", "number": self.version, "build_type": "tar",
                        "minimum_wire_compatibility_version": "6.8.0",
                        "minimum_index_compatibility_version": "6.0.0-beta1"},
            "tagline": "The OpenSearch Project: https://opensearch.org/",
        }

    def _route(self, method: str, parts: list[str], query: dict[str, str], body: dict[str, Any]) -> Any:
        if parts == [] and method == "GET":
            return self.root()
        if parts == ["_cluster", "settings"]:
            if method == "GET":
                return self.get_settings(query.get("flat_settings") == "true")
            if method == "PUT":
                return self.put_settings(body)
        elif parts == ["_cluster", "voting_config_exclusions"]:
            if method == "POST":
                return self.add_voting_exclusions(query)
            if method == "DELETE":
                return self.clear_voting_exclusions(query)
        elif parts[:2] == ["_cluster", "health"] and method == "GET":
            want = query.get("wait_for_status")
            if not want:
                return self.health()
            h = self.wait_health(want, _seconds(query.get("timeout", "30s")))
            if h["timed_out"]:
                raise _Timeout(h)  # OpenSearch answers 408 with the health body when the wait times out
            return h
        elif parts[:2] == ["_cat", "shards"] and len(parts) == 3 and method == "GET":
            wanted = [p for p in parts[2].split(",") if p]
            return [r for r in self.shards()[0] if any(fnmatch.fnmatchcase(str(r["index"]), w) for w in wanted)]
        elif parts[:1] == ["_cat"] and len(parts) == 2 and method == "GET":
            rows, live = self.shards()
            if parts[1] == "shards":
                return rows
            if parts[1] == "nodes":
                return [{"name": n, "ip": a, "node.role": "dimr",
                         "cluster_manager": "*" if n == self.node_name else "-"} for n, a in live]
            if parts[1] == "allocation":
                out = [{"node": n, "ip": a, "shards": str(sum(1 for r in rows if r["node"] == n))} for n, a in live]
                unassigned = sum(1 for r in rows if r["node"] is None)
                return out + ([{"node": "UNASSIGNED", "shards": str(unassigned)}] if unassigned else [])
        raise ClusterError(405, "illegal_argument_exception",
                           f"Incorrect HTTP method for uri [/{'/'.join(parts)}] and method [{method}]")


class _Timeout(ClusterError):
    def __init__(self, health: dict[str, Any]) -> None:
        super().__init__(408, "timeout", "cluster health timed out")
        self.health = health

    def body(self) -> dict[str, Any]:
        return self.health


def _seconds(value: str) -> float:
    v = value.strip().lower()
    for suffix, mult in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if v.endswith(suffix) and v[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(v[: -len(suffix)]) * mult
    return float(v) if v.replace(".", "", 1).isdigit() else 30.0


def is_cluster_call(parts: list[str], method: str = "GET") -> bool:
    """The requests this module answers (the front passes every other one to the backend)."""
    return ((parts == [] and method == "GET")
            or parts in (["_cluster", "settings"], ["_cluster", "health"], ["_cluster", "voting_config_exclusions"])
            or (len(parts) == 2 and parts[0] == "_cat" and parts[1] in ("shards", "nodes", "allocation"))
            or (len(parts) == 3 and parts[:2] == ["_cat", "shards"]))
