"""Taking a Kafka broker out of the cluster the way Kafka operators do (remove-node, issue 15).

Reads what `kafka-topics.sh --describe` prints, decides whether the brokers left can hold every topic (its
replication factor, its min.insync.replicas) and the KRaft controller quorum, and writes the minimal
`kafka-reassign-partitions.sh` plan that moves every replica off the leaving broker: only the partitions it holds
change, each keeps its other replicas in place (and so its preferred leader when that is not the leaving broker).
Pure functions: the nx_kafka_removal action plugin calls them on the controller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FIELD = re.compile(r"(\w+):\s*([^\t]*)")


@dataclass
class Partition:
    topic: str
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass
class Topics:
    partitions: list[Partition] = field(default_factory=list)
    # per topic: the configs `--describe` listed (overrides of the broker defaults only)
    configs: dict[str, dict[str, str]] = field(default_factory=dict)


def _ids(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip().lstrip("-").isdigit()]


def parse_describe(text: str) -> Topics:
    """`kafka-topics.sh --describe` output: a `Topic: t ... Configs: k=v,...` line per topic, then a tab-indented
    `Topic: t Partition: n Leader: l Replicas: a,b Isr: a,b` line per partition (extra fields are ignored)."""
    out = Topics()
    for line in text.splitlines():
        if not line.strip().startswith("Topic:"):
            continue
        fields = dict(_FIELD.findall(line))
        topic = fields.get("Topic", "").strip()
        if "Partition" in fields:
            out.partitions.append(Partition(topic, int(fields["Partition"]), int(fields.get("Leader", "-1") or -1),
                                            _ids(fields.get("Replicas", "")), _ids(fields.get("Isr", ""))))
        else:
            raw = line.split("Configs:", 1)[1].strip() if "Configs:" in line else ""
            out.configs[topic] = dict(kv.split("=", 1) for kv in raw.split(",") if "=" in kv)
    return out


def refusal(topics: Topics, leaving: int, survivors: list[int], min_insync_default: int, unreachable: bool,
            voters: list[int], voters_answering: list[int]) -> str:
    """Why the broker LEAVING may not go, or '' (never lifted by --force: each case loses data or writes).

    - the brokers left cannot hold a topic's replicas (one per broker) or its min.insync.replicas;
    - a copy is missing now (an under-replicated partition): the leaving broker may hold the last in-sync one. With
      --unreachable the leaving broker is gone already: refused only when a partition has no other in-sync copy;
    - KRaft: the voters left would not form a quorum of the smaller voter set, with the ones answering now.
    """
    left = len(survivors)
    if left < 1:
        return "it is the last Kafka broker: every topic would be lost"
    for p in topics.partitions:
        if len(p.replicas) > left:
            return (f"topic {p.topic} keeps {len(p.replicas)} replicas of each partition on different brokers and "
                    f"only {left} broker(s) would be left, so its partitions cannot leave broker {leaving} (fix: "
                    f"lower the topic's replication factor first, or add a broker)")
    for name in sorted({p.topic for p in topics.partitions}):
        isr = int(topics.configs.get(name, {}).get("min.insync.replicas", min_insync_default) or 0)
        if isr > left:
            return (f"topic {name} needs min.insync.replicas={isr} and only {left} broker(s) would be left: "
                    f"producers writing with acks=all would be refused (fix: lower min.insync.replicas first, "
                    f"or add a broker)")
    for p in topics.partitions:
        others = [b for b in p.isr if b != leaving]
        if unreachable:
            if not others:
                return (f"partition {p.topic}-{p.partition} has no in-sync copy on another broker (ISR "
                        f"{_list(p.isr)}): broker {leaving} held the last one (fix: bring it back, then run this "
                        f"again without --unreachable)")
        elif len(p.isr) < len(p.replicas):
            return (f"partition {p.topic}-{p.partition} is under-replicated now (replicas {_list(p.replicas)}, in "
                    f"sync {_list(p.isr)}): broker {leaving} may hold its last current copy (fix: bring the "
                    f"brokers back until kafka-topics.sh --describe --under-replicated-partitions prints nothing)")
    if voters:
        new = [v for v in voters if v != leaving]
        need = len(new) // 2 + 1
        up = [v for v in voters_answering if v in new]
        if not new or len(up) < need:
            return (f"the KRaft controller quorum would keep {len(new)} voter(s), a quorum needs {need} and only "
                    f"{_list(up) or 'none'} answer(s) (fix: bring the other controllers back, nxprovision status)")
    return ""


def _list(ids: list[int]) -> str:
    return ",".join(str(i) for i in ids)


def reassignment(topics: Topics, leaving: int, survivors: list[int]) -> dict:
    """The `--reassignment-json-file` plan: each partition holding LEAVING gets, in its place, the survivor that
    holds the fewest replicas so far (counting the moves already planned) among those not already in its replica
    list; the other replicas and their order stay. Partitions without LEAVING are left out."""
    load = {b: 0 for b in survivors}
    for p in topics.partitions:
        for b in p.replicas:
            if b in load:
                load[b] += 1
    moves = []
    for p in sorted(topics.partitions, key=lambda p: (p.topic, p.partition)):
        if leaving not in p.replicas:
            continue
        free = [b for b in survivors if b not in p.replicas]
        if not free:
            continue  # refusal() refuses this case before any plan runs
        pick = min(free, key=lambda b: (load[b], b))
        load[pick] += 1
        moves.append({"topic": p.topic, "partition": p.partition,
                      "replicas": [pick if b == leaving else b for b in p.replicas]})
    return {"version": 1, "partitions": moves}


def holders(topics: Topics, broker: int) -> list[str]:
    """The partitions BROKER still holds a replica of (`topic-n`)."""
    return [f"{p.topic}-{p.partition}" for p in topics.partitions if broker in p.replicas]
