"""Nuxeo's reference architectures as data (nuxeo-facts.md section 1).

Each architecture states, per inventory group, how many hosts it needs, and the host layout that
`nxprovision init` and the lab use for it. Rules read these numbers; nothing else hard-codes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Inventory groups nxprovision knows. `nuxeo` is the parent of nuxeo_front and nuxeo_worker.
GROUPS: tuple[str, ...] = (
    "loadbalancers",
    "nuxeo",
    "nuxeo_front",
    "nuxeo_worker",
    "postgresql",
    "mongodb",
    "opensearch",
    "kafka",
    "zookeeper",
    "s3",
    "etcd",
    "monitoring",
)

# Groups whose members form a quorum or a replicated set: a partial --limit on them is refused.
QUORUM_GROUPS: tuple[str, ...] = ("opensearch", "kafka", "zookeeper", "etcd", "mongodb", "postgresql")


@dataclass(frozen=True)
class Architecture:
    name: str
    title: str
    summary: str
    # group -> (minimum, maximum or None). A database group is checked through "database".
    counts: dict[str, tuple[int, int | None]]
    multi_node: bool
    lab_layout: dict[str, tuple[str, ...]] = field(default_factory=dict)


SINGLE = Architecture(
    name="single",
    title="Single host (trials)",
    summary="Every component on one host: for trials and demos, never for production.",
    counts={
        "nuxeo_front": (1, 1),
        "nuxeo_worker": (0, 0),
        "loadbalancers": (0, 1),
        "database": (1, 1),
        "opensearch": (1, 1),
        "kafka": (0, 1),
        "zookeeper": (0, 1),
        "s3": (0, 1),
    },
    multi_node=False,
    lab_layout={
        "loadbalancers": ("nuxeo1",),
        "nuxeo_front": ("nuxeo1",),
        "postgresql": ("nuxeo1",),
        "opensearch": ("nuxeo1",),
        "kafka": ("nuxeo1",),
        "s3": ("nuxeo1",),
    },
)

COMPACT = Architecture(
    name="compact",
    title="Compact architecture with Kafka",
    summary=(
        "Nuxeo's reference architecture B: a load balancer with sticky sessions, >= 2 Nuxeo nodes, "
        ">= 3 search nodes, a database cluster of >= 2 nodes, 1 Kafka broker, a shared binary store."
    ),
    counts={
        "nuxeo_front": (2, None),
        "nuxeo_worker": (0, None),
        "loadbalancers": (1, None),
        "database": (2, None),
        "opensearch": (3, None),
        "kafka": (1, 1),
        "zookeeper": (0, 3),
        "s3": (0, None),
    },
    multi_node=True,
    lab_layout={
        "loadbalancers": ("lb1",),
        "nuxeo_front": ("front1", "front2"),
        "nuxeo_worker": ("worker1",),
        "postgresql": ("db1", "db2"),
        "opensearch": ("search1", "search2", "search3"),
        "kafka": ("kafka1",),
        "s3": ("s3-1",),
    },
)

DISTRIBUTED = Architecture(
    name="distributed",
    title="Distributed architecture with Kafka (no single point of failure)",
    summary=(
        "Nuxeo's reference architecture C: compact plus >= 3 Kafka brokers (KRaft from LTS 2023.33, "
        "else 3 ZooKeeper nodes) and 2 load balancers sharing a virtual IP."
    ),
    counts={
        "nuxeo_front": (2, None),
        "nuxeo_worker": (0, None),
        "loadbalancers": (2, None),
        "database": (2, None),
        "opensearch": (3, None),
        "kafka": (3, None),
        "zookeeper": (0, None),
        "s3": (0, None),
    },
    multi_node=True,
    lab_layout={
        "loadbalancers": ("lb1", "lb2"),
        "nuxeo_front": ("front1", "front2"),
        "nuxeo_worker": ("worker1",),
        "postgresql": ("db1", "db2", "db3"),
        "etcd": ("db1", "db2", "db3"),
        "opensearch": ("search1", "search2", "search3"),
        "kafka": ("kafka1", "kafka2", "kafka3"),
        "s3": ("s3-1",),
    },
)

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (SINGLE, COMPACT, DISTRIBUTED)}


def get(name: str) -> Architecture:
    return ARCHITECTURES[name]


def lab_hosts(name: str) -> list[str]:
    """Distinct host names of an architecture's lab layout, in a stable order."""
    seen: dict[str, None] = {}
    for hosts in ARCHITECTURES[name].lab_layout.values():
        for h in hosts:
            seen.setdefault(h, None)
    return list(seen)
