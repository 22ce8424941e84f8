"""The last lines of a failed service's logs, fetched from the failing host for the failure report.

One table maps each role (component) to its systemd unit(s) and its product log file(s). After a failed run,
`fetch` asks the failing host for the tail of those logs with one ad-hoc Ansible call (ansible-runner, in a
temporary folder: raw logs may hold secrets, so nothing unmasked lands in the run records), masks the text
with the run's Masker, and says plainly when the host cannot be read.
"""

from __future__ import annotations

import re
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nxprovision.model.ports import host_ports
from nxprovision.runevents import unreachable_cause
from nxprovision.strategy import without_mitogen

LOG_LINES = 20  # per source (journal, file)
MAX_HOSTS = 3  # a run failing on many hosts: the first ones tell the story
FETCH_TIMEOUT_S = 60
MARK = "@@nxprovision-log@@"


@dataclass(frozen=True)
class ServiceLog:
    units: tuple[str, ...]  # systemd units (journalctl -u accepts globs)
    files: tuple[str, ...] = ()  # product log files (shell globs)


# role -> where its service logs. The one place that knows it.
SERVICE_LOGS: dict[str, ServiceLog] = {
    "nuxeo": ServiceLog(("nuxeo",), ("/var/log/nuxeo/server.log",)),
    "postgresql": ServiceLog(("postgresql@*",), ("/var/log/postgresql/postgresql-*-main.log",)),
    "patroni": ServiceLog(("patroni",)),
    "mongodb": ServiceLog(("mongod",), ("/var/log/mongodb/mongod.log",)),
    "opensearch": ServiceLog(("opensearch",), ("/var/log/opensearch/*.log",)),
    "kafka": ServiceLog(("kafka",), ("/var/log/kafka/server.log",)),
    "zookeeper": ServiceLog(("zookeeper",)),
    "seaweedfs": ServiceLog(("seaweedfs",)),
    "haproxy": ServiceLog(("haproxy",)),
    "keepalived": ServiceLog(("keepalived",)),
    "etcd": ServiceLog(("etcd",)),
    # pgBackRest itself logs per command under /var/log/pgbackrest; its TLS proxy to the S3 store is a unit
    "pgbackrest": ServiceLog(("pgbackrest-tls-proxy",), ("/var/log/pgbackrest/*.log",)),
    "monitoring": ServiceLog(("prometheus", "prometheus-alertmanager", "prometheus-node-exporter",
                              "prometheus-blackbox-exporter", "prometheus-postgres-exporter")),
    "firewall": ServiceLog(("nxprovision-firewall*",)),  # firewall_service
}

# inventory group -> the component whose log a port of that group leads to (rules.ports lists the ports)
_GROUP_COMPONENT = {
    "nuxeo": "nuxeo", "postgresql": "postgresql", "mongodb": "mongodb", "opensearch": "opensearch",
    "kafka": "kafka", "zookeeper": "zookeeper", "s3": "seaweedfs", "loadbalancers": "haproxy",
    "monitoring": "monitoring",
}
MAX_BACKENDS = 2  # hosts named in a failure beyond the failed ones
Endpoints = Callable[[], dict[str, tuple[str, str]]]  # host:port -> (host, component), built only after a failure
_ENDPOINT_RE = re.compile(r"(?<![\w.-])([A-Za-z0-9][\w.-]*):(\d{2,5})\b")

# Tasks of the day-2 playbooks run outside a role: the component is named in the task or play.
_WORDS = {
    "nuxeo": "nuxeo", "postgresql": "postgresql", "patroni": "patroni", "mongodb": "mongodb", "mongod": "mongodb",
    "opensearch": "opensearch", "search": "opensearch", "kafka": "kafka", "zookeeper": "zookeeper",
    "seaweedfs": "seaweedfs", "s3": "seaweedfs", "haproxy": "haproxy", "load balancer": "haproxy",
    "keepalived": "keepalived", "etcd": "etcd", "prometheus": "monitoring", "alertmanager": "monitoring",
}


def component_for(role: str, task: str = "", play: str = "") -> str | None:
    """The component whose logs explain a failure: the task's role, else the first component named in the task,
    then in the play."""
    if role in SERVICE_LOGS:
        return role
    for text in (task, play):
        low = text.lower()
        hits = [(m.start(), comp) for word, comp in _WORDS.items()
                for m in [re.search(rf"\b{re.escape(word)}\b", low)] if m]
        if hits:
            return min(hits)[1]
    return None


def log_command(component: str, lines: int = LOG_LINES) -> str:
    """A POSIX shell command printing each source's last lines after a marker line naming the source."""
    spec = SERVICE_LOGS[component]
    parts = []
    for unit in spec.units:
        q = shlex.quote(unit)
        parts.append(f"echo '{MARK} journalctl -u '{q}; journalctl -u {q} -n {lines} --no-pager -o short-iso 2>&1")
    for pattern in spec.files:
        parts.append(f"for f in {pattern}; do [ -f \"$f\" ] && echo \"{MARK} $f\" && tail -n {lines} \"$f\"; done")
    return "; ".join(parts) + "; true"


def parse_sections(output: str) -> list[tuple[str, list[str]]]:
    """(source, lines) for each source with something in it, in output order."""
    sections: list[tuple[str, list[str]]] = []
    for line in output.splitlines():
        if line.startswith(MARK):
            sections.append((line[len(MARK):].strip(), []))
        elif sections:
            sections[-1][1].append(line.rstrip())
    useful = []
    for source, body in sections:
        body = [ln for ln in body if ln.strip()]
        if body and not (len(body) == 1 and body[0].startswith("-- No entries --")):
            useful.append((source, body))
    return useful


@dataclass
class LogTail:
    host: str
    component: str
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    error: str | None = None  # why nothing could be read
    named: bool = False  # not a failed host: a failed host's task or log named this one's service

    def lines(self) -> list[str]:
        """The report's lines for this host (already masked)."""
        if self.error:
            return [f"nxprovision: no {self.component} log from {self.host}: {self.error}"]
        if not self.sections:
            return [f"nxprovision: {self.host} has no {self.component} log lines (no journal entries, no log file)"]
        why = ", named in the failure above" if self.named else ""
        out = [f"nxprovision: last lines of {self.component}'s logs on {self.host}{why} "
               f"({'; '.join(s for s, _ in self.sections)}):"]
        for source, body in self.sections:
            out.append(f"  == {source}")
            out += [f"  | {ln}" for ln in body]
        return out


def from_output(host: str, component: str, output: str, mask: Callable[[str], str]) -> LogTail:
    sections = [(mask(src), [mask(ln) for ln in body]) for src, body in parse_sections(output)]
    return LogTail(host, component, sections)


def cluster_endpoints(cluster: Any) -> dict[str, tuple[str, str]]:
    """"host:port" and "address:port" of every service the cluster's hosts listen on -> (host, component)."""
    out: dict[str, tuple[str, str]] = {}
    for name, host in cluster.hosts.items():
        for group, _label, _key, port in host_ports(cluster, name):
            comp = _GROUP_COMPONENT.get(group)
            if comp is None or not str(port).isdigit():
                continue
            for where in dict.fromkeys((name, host.address)):
                out.setdefault(f"{where}:{port}", (name, comp))
    return out


def named_backends(texts: list[str], endpoints: dict[str, tuple[str, str]], skip: set[str]
                   ) -> list[tuple[str, str]]:
    """(host, component) of the cluster's services a failure's text names by host:port, in order of mention:
    a node that waited for a broker or a database says which one, and that one's log says why."""
    found: dict[str, str] = {}
    for text in texts:
        for m in _ENDPOINT_RE.finditer(text):
            hit = endpoints.get(f"{m.group(1)}:{m.group(2)}")
            if hit and hit[0] not in skip and hit[0] not in found:
                found[hit[0]] = hit[1]
    return list(found.items())


def fetch(failures: list[Any], inventory: Path, cmdline: list[str], envvars: dict[str, str],
          mask: Callable[[str], str], record_dir: Path | None = None, options: Any = None,
          endpoints: Endpoints | None = None) -> list[LogTail]:
    """The log tails of the failed hosts (at most MAX_HOSTS), one ad-hoc call each; never raises. `options`: the
    command's AnsibleOptions (the same user, key, jump host and become password as the run). `endpoints` (called
    only here, after a failure): the cluster's services by host:port; the services a failure or a fetched log
    names that way get their log fetched too (at most MAX_BACKENDS more hosts)."""

    wanted: dict[str, str] = {}
    tails: list[LogTail] = []
    for f in failures:
        comp = component_for(f.role, f.task, getattr(f, "play", ""))
        if comp is None or f.host in wanted or any(t.host == f.host for t in tails):
            continue
        if len(wanted) + len(tails) >= MAX_HOSTS:
            break
        if f.unreachable:
            tails.append(LogTail(f.host, comp, error="the host is unreachable (see above)"))
        else:
            wanted[f.host] = comp
    for host, comp in wanted.items():
        try:
            tail = _fetch_one(host, comp, inventory, cmdline, envvars, mask, unreachable_cause, options)
        except Exception as exc:  # a failure report never fails because of its own extras
            tail = LogTail(host, comp, error=mask(f"{type(exc).__name__}: {exc}"))
        tails.append(tail)
    tails += _backend_tails(failures, tails, endpoints, inventory, cmdline, envvars, mask, options)
    if record_dir is not None and tails:
        record_dir.mkdir(parents=True, exist_ok=True)
        for t in tails:
            (record_dir / f"{t.host}.log").write_text("\n".join(t.lines()) + "\n")
    return tails


def _backend_tails(failures: list[Any], tails: list[LogTail], endpoints: Endpoints | None, inventory: Path,
                   cmdline: list[str], envvars: dict[str, str], mask: Callable[[str], str], options: Any,
                   ) -> list[LogTail]:

    if endpoints is None:
        return []
    try:
        known = endpoints()
    except Exception:  # a failure report never fails because of its own extras
        return []
    texts = [str(getattr(f, "message", "")) for f in failures]
    texts += [ln for t in tails for _src, body in t.sections for ln in body]
    skip = {t.host for t in tails} | {f.host for f in failures if getattr(f, "unreachable", False)}
    out: list[LogTail] = []
    for host, comp in named_backends(texts, known, skip)[:MAX_BACKENDS]:
        try:
            tail = _fetch_one(host, comp, inventory, cmdline, envvars, mask, unreachable_cause, options)
        except Exception as exc:
            tail = LogTail(host, comp, error=mask(f"{type(exc).__name__}: {exc}"))
        tail.named = True
        out.append(tail)
    return out


def _fetch_one(host: str, component: str, inventory: Path, cmdline: list[str], envvars: dict[str, str],
               mask: Callable[[str], str], unreachable_cause: Callable[[str], str], options: Any = None) -> LogTail:
    import shlex

    import ansible_runner

    result: dict[str, Any] = {}

    def on_event(event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable") and data.get("host") == host:
            result["kind"] = kind
            result["res"] = data.get("res") or {}
        return False  # nothing of it is kept on disk beyond the temporary folder

    # the journal is root's to read: become, like the plays (a no-op for a root login)
    args = [*cmdline, "--become"] + [a for a in (options.cmdline() if options else []) if a != "--become"]
    passwords = options.passwords() if options else {}
    tmp = Path(tempfile.mkdtemp(prefix="nxprovision-logs-"))
    try:
        if passwords:
            (tmp / "env").mkdir(mode=0o700)
            (tmp / "env" / "passwords").write_text("{}")  # the password stays in memory (runner.run_playbook)
        r = ansible_runner.run(
            private_data_dir=str(tmp),
            host_pattern=host,
            module="ansible.builtin.shell",
            module_args=log_command(component),
            inventory=str(inventory.resolve()),
            cmdline=shlex.join(args),
            envvars={**without_mitogen(envvars), "ANSIBLE_TIMEOUT": "10"},
            extravars=options.connection_vars() if options else None,
            passwords=passwords or None,
            quiet=True,
            timeout=FETCH_TIMEOUT_S,
            event_handler=on_event,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = result.get("res") or {}
    kind = result.get("kind")
    if kind == "runner_on_ok":
        return from_output(host, component, str(res.get("stdout") or ""), mask)
    if kind == "runner_on_unreachable":
        return LogTail(host, component, error=mask("unreachable: " + unreachable_cause(str(res.get("msg") or ""))))
    if kind == "runner_on_failed":
        msg = str(res.get("msg") or res.get("stderr") or "the command failed").strip().splitlines()[0]
        return LogTail(host, component, error=mask(msg[:300]))
    status = getattr(r, "status", "?")
    why = f"no answer within {FETCH_TIMEOUT_S}s" if status == "timeout" else f"the fetch ended {status}"
    return LogTail(host, component, error=why)
