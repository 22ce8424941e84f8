"""SSH host keys: the known_hosts file beside the inventory, first trust, and the check before every run.

Every run sends the vault's secrets to the hosts, so it must talk to the hosts the operator trusted and to
no one else at their addresses. `trust-hosts` records each host's keys once, after the operator compared
their fingerprints; every later run checks them twice: here, before Ansible starts (one clear message,
and the run does not start for any host), and in SSH itself (StrictHostKeyChecking=yes with this file).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shlex
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from nxprovision.errors import NxError

# Hidden: Ansible reads every other file of an inventory folder as an inventory source.
KNOWN_HOSTS_NAME = ".known_hosts"
SCAN_TIMEOUT_S = 5


def known_hosts_path(inventory: str | Path) -> Path:
    from nxprovision.inventory import inventory_dir

    return (inventory_dir(inventory) / KNOWN_HOSTS_NAME).resolve()


@dataclass(frozen=True)
class Target:
    host: str
    address: str
    port: int = 22

    @property
    def pattern(self) -> str:
        """How known_hosts names this address (OpenSSH writes [addr]:port for other ports than 22)."""
        return self.address if self.port == 22 else f"[{self.address}]:{self.port}"

    @property
    def where(self) -> str:
        return self.address if self.port == 22 else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class HostKey:
    kind: str  # ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa
    blob: str  # base64

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def line(self, pattern: str) -> str:
        return f"{pattern} {self.kind} {self.blob}"


@dataclass
class Recorded:
    keys: list[HostKey] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # 1-based line numbers in the file


def _matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):  # HashKnownHosts: |1|salt|HMAC-SHA1(salt, name)
        try:
            _, _, salt, digest = pattern.split("|", 3)
            mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
            return hmac.compare_digest(mac, base64.b64decode(digest))
        except (ValueError, TypeError):
            return False
    return name in pattern.split(",")


def recorded(path: Path, target: Target) -> Recorded:
    """The keys known_hosts holds for this address (markers such as @revoked are not trust)."""
    found = Recorded()
    if not path.exists():
        return found
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        parts = raw.split()
        if len(parts) < 3 or parts[0].startswith(("#", "@")):
            continue
        if _matches(parts[0], target.pattern):
            found.keys.append(HostKey(parts[1], parts[2]))
            found.lines.append(n)
    return found


def parse_scan(output: str) -> list[HostKey]:
    keys = []
    for raw in output.splitlines():
        parts = raw.split()
        if len(parts) >= 3 and not parts[0].startswith("#"):
            keys.append(HostKey(parts[1], parts[2]))
    return sorted(set(keys), key=lambda k: k.kind)


def scan(target: Target, timeout: int = SCAN_TIMEOUT_S) -> list[HostKey]:
    """The keys the host at this address offers now ([] when nothing answers)."""
    try:
        proc = subprocess.run(["ssh-keyscan", "-T", str(timeout), "-p", str(target.port), target.address],
                              capture_output=True, text=True, timeout=timeout * 3 + 5, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise NxError("ssh-keyscan is not installed", "install the OpenSSH client (apt install openssh-client)") \
            from None
    except subprocess.TimeoutExpired:
        return []
    return parse_scan(proc.stdout)


def scan_all(targets: Iterable[Target]) -> dict[Target, list[HostKey]]:
    todo = list(targets)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(todo)))) as pool:
        return dict(zip(todo, pool.map(scan, todo), strict=True))


def targets_of(hostvars: dict[str, dict], hosts: Iterable[str]) -> list[Target]:
    out = []
    for h in hosts:
        hv = hostvars.get(h) or {}
        addr = str(hv.get("ansible_host") or hv.get("ansible_ssh_host") or h)
        port = hv.get("ansible_port") or hv.get("ansible_ssh_port") or 22
        try:
            out.append(Target(h, addr, int(port)))
        except (TypeError, ValueError):
            raise NxError(f"host {h}: ansible_port '{port}' is not a number", "set a port number") from None
    return out


def through_proxy(hostvars: dict) -> bool:
    """A host reached through a jump host: its address may mean another machine from here, so it is not scanned
    from the controller (SSH still checks its key, through the proxy)."""
    args = " ".join(str(hostvars.get(k) or "") for k in ("ansible_ssh_common_args", "ansible_ssh_extra_args",
                                                            "ansible_ssh_args"))
    return "ProxyJump" in args or "ProxyCommand" in args or "-J " in args


def remove_command(path: Path, target: Target) -> str:
    return f"ssh-keygen -R {shlex.quote(target.pattern)} -f {shlex.quote(str(path))}"


def trust_command(inventory: str | Path, hosts: Iterable[str]) -> str:
    return f"nxprovision trust-hosts -i {shlex.quote(str(inventory))} {' '.join(hosts)}".rstrip()


def changed_message(path: Path, inventory: str | Path, target: Target, known: Recorded,
                    offered: list[HostKey]) -> NxError:
    expected = ", ".join(f"{k.kind} {k.fingerprint}" for k in known.keys)
    got = ", ".join(f"{k.kind} {k.fingerprint}" for k in offered)
    lines = ",".join(str(n) for n in known.lines)
    return NxError(
        f"the SSH host key of {target.host} ({target.where}) CHANGED: {path} line {lines} expects {expected}; "
        f"the host offers {got}. Someone may be answering at its address; no task ran and no secret was sent",
        f"if the host was reinstalled on purpose, check the new fingerprint on its console "
        f"(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then `{remove_command(path, target)}` and "
        f"`{trust_command(inventory, [target.host])}`",
    )


def untrusted_message(path: Path, inventory: str | Path, hosts: list[Target]) -> NxError:
    names = ", ".join(f"{t.host} ({t.where})" for t in hosts)
    return NxError(
        f"{names}: no SSH host key recorded in {path}; nothing was run (a run sends the vault's secrets "
        "only to hosts whose keys were checked)",
        f"record them once with `{trust_command(inventory, [t.host for t in hosts])}` "
        "(it shows the fingerprints and asks before recording)",
    )


def check(inventory: str | Path, hostvars: dict[str, dict], hosts: Iterable[str]) -> None:
    """Refuse the run before Ansible starts: a host without a recorded key, or one that offers another key."""
    path = known_hosts_path(inventory)
    targets = targets_of(hostvars, hosts)
    untrusted = [t for t in targets if not recorded(path, t).keys]
    if untrusted:
        raise untrusted_message(path, inventory, untrusted)
    scannable = [t for t in targets if not through_proxy(hostvars.get(t.host) or {})]
    for t, offered in scan_all(scannable).items():
        if not offered:
            continue  # no answer now: the run says the host is unreachable, and SSH would check the key anyway
        known = recorded(path, t)
        if not set(offered) & set(known.keys):
            raise changed_message(path, inventory, t, known, offered)


def run_hosts(view_groups: dict[str, list[str]], all_hosts: list[str], limit: str | None) -> list[str]:
    """The hosts a --limit selects, read simply: names and groups joined by ',' or ':', each possibly excluded
    with a leading '!' (`all:!front2`, remove-node --unreachable). Anything richer (wildcards, '&') counts every
    host: checking too many keys is safe, too few is not."""
    if not limit:
        return list(all_hosts)
    chosen: list[str] = []
    excluded: set[str] = set()
    for token in limit.replace(":", ",").split(","):
        token = token.strip()
        if not token:
            continue
        negate = token.startswith("!")
        name = token[1:] if negate else token
        if name == "all":
            members = list(all_hosts)
        elif name in all_hosts:
            members = [name]
        elif name in view_groups:
            members = list(view_groups[name])
        else:
            return list(all_hosts)
        if negate:
            excluded.update(members)
        else:
            chosen += members
    if excluded and not chosen:
        # Ansible reads a pattern that only excludes as "all but these"
        chosen = list(all_hosts)
    return list(dict.fromkeys(h for h in chosen if h in all_hosts and h not in excluded))


def append(path: Path, target: Target, keys: list[HostKey]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    path.write_text(old + "".join(k.line(target.pattern) + "\n" for k in keys))
    path.chmod(0o644)


@dataclass
class TrustPlan:
    """What `trust-hosts` found: keys to record, hosts already trusted, and hosts it must not touch."""

    new: dict[Target, list[HostKey]] = field(default_factory=dict)
    already: list[Target] = field(default_factory=list)
    changed: dict[Target, tuple[Recorded, list[HostKey]]] = field(default_factory=dict)
    silent: list[Target] = field(default_factory=list)


def plan_trust(path: Path, targets: list[Target], offered: dict[Target, list[HostKey]]) -> TrustPlan:
    plan = TrustPlan()
    for t in targets:
        keys = offered.get(t) or []
        known = recorded(path, t)
        if not keys:
            plan.silent.append(t)
        elif not known.keys:
            plan.new[t] = keys
        elif set(keys) & set(known.keys):
            plan.already.append(t)
        else:
            plan.changed[t] = (known, keys)
    return plan
