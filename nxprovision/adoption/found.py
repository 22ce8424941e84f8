"""What `playbooks/adopt.yml` read on each host (nx_adopt_read), parsed into plain values.

Pure functions: the JSON files the play stored on the controller in, Python values out. Nothing here prints a
value; secrets stay in the returned structures until mapping.py puts them into the vault.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RELEASES = {"bookworm": "debian12", "trixie": "debian13"}


def properties(text: str | None) -> dict[str, str]:
    """key=value lines (nuxeo.conf, server.properties); the last of a repeated key wins, as in Java."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        s = line.strip()
        if not s or s.startswith(("#", "!")) or "=" not in s:
            continue
        k, v = s.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def pg_settings(text: str | None) -> dict[str, str]:
    """postgresql.conf / postgresql.auto.conf: `name = value`, quotes removed, comments dropped."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        m = re.match(r"^\s*([A-Za-z_][\w.]*)\s*=?\s*('(?:[^']|'')*'|[^#\s]+)", line)
        if m and not line.lstrip().startswith("#"):
            v = m.group(2)
            if v.startswith("'"):
                v = v[1:-1].replace("''", "'")
            out[m.group(1)] = v
    return out


def conninfo(text: str) -> dict[str, str]:
    """libpq's `key=value key='quoted value'` connection string."""
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = text.split()
    return dict(p.split("=", 1) for p in parts if "=" in p)


@dataclass
class HaproxyServer:
    backend: str
    name: str
    address: str
    port: int
    options: list[str]


@dataclass
class Haproxy:
    binds: list[tuple[str, int, bool]] = field(default_factory=list)  # address, port, tls
    servers: list[HaproxyServer] = field(default_factory=list)
    cookie: str = ""
    health_check: str = ""


def parse_haproxy(text: str | None) -> Haproxy:
    h = Haproxy()
    section = ""
    for raw in (text or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] in ("global", "defaults", "frontend", "backend", "listen", "userlist", "peers", "resolvers"):
            section = words[1] if len(words) > 1 else words[0]
            continue
        if words[0] == "bind" and len(words) > 1:
            addr, _, port = words[1].rpartition(":")
            if port.isdigit():
                h.binds.append((addr or "*", int(port), "ssl" in words[2:]))
        elif words[0] == "server" and len(words) > 2:
            addr, _, port = words[2].rpartition(":")
            h.servers.append(HaproxyServer(section, words[1], addr or words[2], int(port) if port.isdigit() else 0,
                                           words[3:]))
        elif words[0] == "cookie" and len(words) > 1:
            h.cookie = words[1]
        elif words[:2] == ["option", "httpchk"]:
            h.health_check = " ".join(words[2:])
        elif words[:3] == ["http-check", "send", "meth"]:
            h.health_check = " ".join(words[3:])
    return h


@dataclass
class Found:
    """One host as read."""

    host: str
    release: str
    codename: str
    arch: str
    services: dict[str, dict[str, Any]]
    listening: list[dict[str, Any]]
    packages: dict[str, str]
    components: dict[str, dict[str, Any]]
    paths: dict[str, str] = field(default_factory=dict)

    def has(self, component: str) -> bool:
        return component in self.components

    @property
    def nuxeo_conf(self) -> dict[str, str]:
        return properties((self.components.get("nuxeo") or {}).get("conf_text"))

    @property
    def haproxy(self) -> Haproxy:
        return parse_haproxy((self.components.get("haproxy") or {}).get("conf_text"))

    def pg_cluster(self) -> dict[str, Any] | None:
        clusters = (self.components.get("postgresql") or {}).get("clusters") or []
        online = [c for c in clusters if str(c.get("status", "")).startswith("online")]
        return (online or clusters or [None])[0]

    @property
    def search(self) -> tuple[str, dict[str, Any]] | None:
        for product in ("opensearch", "elasticsearch"):
            if product in self.components:
                return product, self.components[product]
        return None

    def search_settings(self) -> dict[str, Any]:
        found = self.search
        if not found:
            return {}
        try:
            data = yaml.safe_load(found[1].get("conf_text") or "") or {}
        except yaml.YAMLError:
            return {}
        return data if isinstance(data, dict) else {}

    def mongod_conf(self) -> dict[str, Any]:
        try:
            data = yaml.safe_load((self.components.get("mongodb") or {}).get("conf_text") or "") or {}
        except yaml.YAMLError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def kafka_conf(self) -> dict[str, str]:
        return properties((self.components.get("kafka") or {}).get("conf_text"))

    def s3_identities(self) -> list[dict[str, Any]]:
        text = (self.components.get("seaweedfs") or {}).get("s3_config_text")
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            return []
        return list(data.get("identities") or []) if isinstance(data, dict) else []


def load_found(folder: Path) -> dict[str, Found]:
    """Every <host>.json the play stored."""
    out: dict[str, Found] = {}
    for f in sorted(folder.glob("*.json")):
        data = json.loads(f.read_text())
        os_ = data.get("os") or {}
        codename = str(os_.get("version_codename") or "")
        out[f.stem] = Found(
            host=f.stem, release=RELEASES.get(codename, ""), codename=codename, arch=str(os_.get("arch") or ""),
            services=data.get("services") or {}, listening=data.get("listening") or [],
            packages=data.get("packages") or {}, components=data.get("components") or {},
            paths=data.get("paths") or {},
        )
    return out
