"""Settings helpers for the OpenSearch and MongoDB stand-ins (standard library only).

YAML itself is parsed by the vendored PyYAML; these functions turn the loaded documents into what the
vendors' servers derive from them, so unit tests can pin the vendors' rules without starting anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_SIZE = re.compile(r"(\d+)([kKmMgGtT]?)")
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def flatten(doc: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """`{network: {host: x}}` and `network.host: x` are the same setting in opensearch.yml."""
    out: dict[str, Any] = {}
    for key, value in (doc or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def substitute_env(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """`${VAR}` placeholders, as OpenSearch expands them; an unset variable is an error there too."""
    env = os.environ if env is None else env
    if isinstance(value, list):
        return [substitute_env(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise ValueError(f"Could not resolve placeholder '{name}'")
        return env[name]

    return re.sub(r"\$\{([A-Za-z0-9_.]+)\}", repl, value)


def as_list(value: Any) -> list[str]:
    """A list setting may be a YAML list or a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def parse_size(text: str) -> int:
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"invalid JVM size {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def jvm_options_lines(text: str, java_major: int) -> list[str]:
    """Lines of a jvm.options file that apply to this JVM major version.

    `8:-Xfoo` only for 8, `9-:-Xfoo` from 9 on, `8-10:-Xfoo` for 8 to 10; `#` starts a comment.
    """
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(\d+)(-)?(\d+)?:(-.*)", line)
        if m:
            lo = int(m.group(1))
            hi = int(m.group(3)) if m.group(3) else (None if m.group(2) else lo)
            if java_major < lo or (hi is not None and java_major > hi):
                continue
            line = m.group(4)
        elif not line.startswith("-"):
            raise ValueError(f"invalid line in jvm.options: {raw!r}")
        out.append(line)
    return out


def heap_sizes(options: list[str]) -> tuple[int | None, int | None]:
    """(Xms, Xmx) in bytes; the last occurrence wins, as for the JVM."""
    xms = xmx = None
    for opt in options:
        if opt.startswith("-Xms"):
            xms = parse_size(opt[4:])
        elif opt.startswith("-Xmx"):
            xmx = parse_size(opt[4:])
    return xms, xmx


def opensearch_bootstrap_checks(settings: Mapping[str, Any], xms: int | None, xmx: int | None) -> list[str]:
    """The subset of OpenSearch's production bootstrap checks that a stand-in can judge."""
    failures: list[str] = []
    if xms is not None and xmx is not None and xms != xmx:
        failures.append(
            f"initial heap size [{xms}] not equal to maximum heap size [{xmx}]; this can cause resize pauses"
        )
    if settings.get("discovery.type") != "single-node":
        keys = (
            "discovery.seed_hosts",
            "discovery.seed_providers",
            "cluster.initial_cluster_manager_nodes",
            "cluster.initial_master_nodes",
        )
        if not any(as_list(settings.get(k)) for k in keys):
            failures.append(
                "the default discovery settings are unsuitable for production use; at least one of "
                "[discovery.seed_hosts, discovery.seed_providers, cluster.initial_cluster_manager_nodes] "
                "must be configured"
            )
    return failures


def first_port(value: Any, default: int) -> int:
    """http.port may be a range such as `9200-9300`; the stand-in binds its first port."""
    if value is None or value == "":
        return default
    text = str(value).strip()
    return int(text.split("-", 1)[0])


def mongod_settings(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The mongod options the stand-in honours, with mongod's defaults, from a YAML config document."""
    flat = flatten(doc)
    known_sections = (
        "net.",
        "storage.",
        "systemLog.",
        "processManagement.",
        "replication.",
        "security.",
        "setParameter.",
        "operationProfiling.",
        "sharding.",
    )
    unknown = [k for k in flat if not k.startswith(known_sections)]
    if unknown:
        raise ValueError(f"Unrecognized option: {unknown[0]}")
    bind = flat.get("net.bindIp", "localhost")
    return {
        "bind_ips": ["0.0.0.0"] if flat.get("net.bindIpAll") else as_list(bind),
        "port": int(flat.get("net.port", 27017)),
        "db_path": str(flat.get("storage.dbPath", "/data/db")),
        "log_destination": flat.get("systemLog.destination"),
        "log_path": flat.get("systemLog.path"),
        "log_append": bool(flat.get("systemLog.logAppend", False)),
        "fork": bool(flat.get("processManagement.fork", False)),
        "pid_file": flat.get("processManagement.pidFilePath"),
        "repl_set": flat.get("replication.replSetName"),
        "auth": flat.get("security.authorization", "disabled") == "enabled",
        "key_file": flat.get("security.keyFile"),
        "cache_gb": flat.get("storage.wiredTiger.engineConfig.cacheSizeGB"),
        "unused": {
            k: v
            for k, v in flat.items()
            if k.startswith(("operationProfiling.", "sharding.", "setParameter.", "storage.journal"))
        },
    }
