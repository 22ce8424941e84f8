"""Java `.properties` files and Kafka's listener / voter notations, standard library only.

Shipped inside the Kafka stand-in archive; the lab's roles write these files the way they would for the
real broker, so the parser follows java.util.Properties rather than a simplified `k=v` split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    continuing = False
    for raw in text.splitlines():
        line = raw.lstrip(" \t\f")
        if not continuing and (not line or line[0] in "#!"):
            continue
        # an odd number of trailing backslashes continues the line onto the next one
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continuing = True
            continue
        lines.append(pending + line)
        pending = ""
        continuing = False
    if continuing:
        lines.append(pending)
    return lines


def _unescape(s: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", s[i + 2 : i + 6]):
                out.append(chr(int(s[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Parse like java.util.Properties.load: `=`, `:` or whitespace separate key and value."""
    props: dict[str, str] = {}
    for line in _logical_lines(text):
        i = 0
        key_chars: list[str] = []
        while i < len(line):
            c = line[i]
            if c == "\\" and i + 1 < len(line):
                key_chars.append(line[i : i + 2])
                i += 2
                continue
            if c in "=: \t\f":
                break
            key_chars.append(c)
            i += 1
        rest = line[i:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        props[_unescape("".join(key_chars))] = _unescape(rest)
    return props


def format_properties(props: dict[str, str], header: str = "") -> str:
    lines = [f"#{line}" for line in header.splitlines()]
    lines += [f"{k}={v}" for k, v in props.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Listener:
    name: str
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"{self.name}://{self.host}:{self.port}"


def parse_listeners(value: str) -> list[Listener]:
    """`PLAINTEXT://host:9092,CONTROLLER://:9093` (an empty host means every interface)."""
    found: list[Listener] = []
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_]+)://(\[[0-9a-fA-F:]*\]|[^:/]*):(\d+)", item)
        if not m:
            raise ValueError(f"invalid listener {item!r}: expected NAME://HOST:PORT")
        host = m.group(2).strip("[]")
        found.append(Listener(m.group(1).upper(), host, int(m.group(3))))
    names = [lst.name for lst in found]
    if len(set(names)) != len(names):
        raise ValueError(f"each listener must have a different name: {value!r}")
    return found


def parse_protocol_map(value: str) -> dict[str, str]:
    """listener.security.protocol.map; Kafka's default maps each protocol name to itself."""
    default = {p: p for p in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")}
    if not value.strip():
        return default
    mapping: dict[str, str] = {}
    for item in value.split(","):
        name, sep, proto = item.strip().partition(":")
        if not sep:
            raise ValueError(f"invalid listener.security.protocol.map entry {item!r}")
        mapping[name.strip().upper()] = proto.strip().upper()
    return mapping


def parse_voters(value: str) -> dict[int, tuple[str, int]]:
    """controller.quorum.voters: `1@host1:9093,2@host2:9093`."""
    voters: dict[int, tuple[str, int]] = {}
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        m = re.fullmatch(r"(\d+)@(\[[0-9a-fA-F:]*\]|[^:]+):(\d+)", item)
        if not m:
            raise ValueError(f"invalid controller.quorum.voters entry {item!r}: expected ID@HOST:PORT")
        voters[int(m.group(1))] = (m.group(2).strip("[]"), int(m.group(3)))
    return voters


def log_dirs(props: dict[str, str]) -> list[str]:
    """log.dirs wins over log.dir, as in Kafka; the default is Kafka's /tmp/kafka-logs."""
    raw = props.get("log.dirs") or props.get("log.dir") or "/tmp/kafka-logs"
    return [d.strip() for d in raw.split(",") if d.strip()]
