"""Drift: what a check-mode run of site.yml would change on each host, and what differs between Nuxeo nodes.

Pure functions and one event collector. `nxprovision drift` runs playbooks/drift.yml in check mode with diff
(nothing is written to a host), feeds every event to `Collector`, and reports. The displays of `deploy --check
--diff` use `diff_text` and `changed` too, so both show the same masked diffs.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

MASK = "********"
CLEAN, DRIFT = 0, 1

# ansible-runner replaces the whole result of a no_log task by {"censored": ...}, `changed` included; the
# callback's own line ("changed: [host]") still says it
_CHANGED_LINE = re.compile(r"^changed: \[", re.MULTILINE)
SERVICE_ACTIONS = frozenset({"systemd", "service", "systemd_service", "ansible.builtin.systemd",
                             "ansible.builtin.service", "ansible.builtin.systemd_service"})
# keys whose value is a secret even when the model does not name it (a hand-added key)
SECRET_KEY = re.compile(r"(password|passwd|secret|token|credential|awsid|private[._-]?key)", re.IGNORECASE)


def changed(event: Mapping[str, Any]) -> bool:
    """A runner_on_ok event of a result that changed something (no_log results included)."""
    if event.get("event") != "runner_on_ok":
        return False
    res = (event.get("event_data") or {}).get("res") or {}
    if res.get("changed"):
        return True
    return bool(res.get("censored")) and bool(_CHANGED_LINE.search(str(event.get("stdout") or "")))


def mask_text(text: str, secrets: Iterable[str] = (), secret_keys: Iterable[str] = ()) -> str:
    """`text` with every secret value, and the value of every `key=value` line of a secret key, replaced."""
    for s in sorted({str(s) for s in secrets if s is not None and len(str(s)) >= 4}, key=len, reverse=True):
        text = text.replace(s, MASK)
    keys = {str(k) for k in secret_keys}
    out = []
    for line in text.splitlines(keepends=True):
        m = re.match(r"^(\s*)([A-Za-z0-9_.\-]+)(\s*[=:]\s*)(.*?)(\r?\n)?$", line)
        if m and not m.group(2).startswith("#") and (m.group(2) in keys or SECRET_KEY.search(m.group(2))) \
                and m.group(4):
            line = f"{m.group(1)}{m.group(2)}{m.group(3)}{MASK}{m.group(5) or ''}"
        out.append(line)
    return "".join(out)


PREPARED_LINES = 20


def _one_diff(d: Mapping[str, Any]) -> str:
    if d.get("prepared"):
        # a module's own listing (rsync's itemized changes of an unpacked distribution: one line per file), not a
        # file's content: the first lines say what it is, the run records keep it whole
        lines = str(d["prepared"]).rstrip("\n").splitlines()
        more = len(lines) - PREPARED_LINES
        return "\n".join(lines[:PREPARED_LINES] + ([f"... {more} more lines in the run records"] if more > 0 else []))
    before, after = d.get("before"), d.get("after")
    if before is None and after is None:
        return ""
    if d.get("src_binary") or d.get("dst_binary"):
        return f"--- {d.get('before_header', 'before')}\n+++ {d.get('after_header', 'after')}\n(binary file differs)"
    if not isinstance(before, str) or not isinstance(after, str):
        # state diffs (file module: {"state": "absent"} -> {"state": "file"}, modes, owners)
        before_text = "".join(f"{k}: {v}\n" for k, v in sorted((before or {}).items())) \
            if isinstance(before, Mapping) else f"{before if before is not None else ''}\n"
        after_text = "".join(f"{k}: {v}\n" for k, v in sorted((after or {}).items())) \
            if isinstance(after, Mapping) else f"{after if after is not None else ''}\n"
        before, after = before_text, after_text
    if before == after:
        return ""
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"before: {d.get('before_header', '')}".rstrip(": "),
                                 tofile=f"after: {d.get('after_header', '')}".rstrip(": "), n=3)
    text = "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines)
    return text.rstrip("\n")


def diff_text(diff: Any) -> str:
    """Ansible's `diff` of a result (a dict or a list of them) as one unified diff; "" when nothing differs."""
    parts = [diff] if isinstance(diff, Mapping) else list(diff) if isinstance(diff, list) else []
    return "\n".join(t for t in (_one_diff(d) for d in parts if isinstance(d, Mapping)) if t)


def result_diffs(res: Mapping[str, Any]) -> str:
    """Every diff of a task result, the items of a loop included."""
    texts = [diff_text(res.get("diff"))] if res.get("diff") else []
    for item in res.get("results") or []:
        if isinstance(item, Mapping) and item.get("changed") and item.get("diff"):
            texts.append(diff_text(item["diff"]))
    return "\n".join(t for t in texts if t)


def diff_path(res: Mapping[str, Any]) -> str:
    """The file a result changed, when it names one."""
    if res.get("nx_path"):
        return str(res["nx_path"])
    for key in ("dest", "path"):
        if isinstance(res.get(key), str) and res[key].startswith("/"):
            return res[key]
    diffs = res.get("diff")
    # before_header is the file on the host; a template's after_header is its temporary copy
    for d in [diffs] if isinstance(diffs, Mapping) else diffs if isinstance(diffs, list) else []:
        header = str(d.get("before_header") or "") if isinstance(d, Mapping) else ""
        if header.startswith("/"):
            return header.split(" ")[0]
    # a loop writing several files (one task, one item per file): the first item that changed
    for item in res.get("results") or []:
        if isinstance(item, Mapping) and item.get("changed") and (path := diff_path(item)):
            return path
    return ""


@dataclass
class Finding:
    host: str
    kind: str  # file | hidden | service | setting | package | install | failed | unreachable
    task: str
    path: str = ""
    diff: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        what = {"file": f"file {self.path}", "hidden": f"file {self.path or '?'}",
                "service": "service", "setting": "setting", "package": "package", "install": "install pending",
                "failed": "check FAILED",
                "unreachable": "UNREACHABLE"}.get(self.kind, self.kind)
        return f"{what}: {self.detail}  (task '{self.task}')" if self.detail else f"{what}  (task '{self.task}')"


@dataclass
class NodeDifference:
    group: str
    what: str  # "Nuxeo version" or "nuxeo.conf <key>"
    values: dict[str, str]  # host -> value ("(absent)" when the key is missing)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        return f"{self.group}: {self.what} differs: " + ", ".join(f"{h}={v}" for h, v in sorted(self.values.items()))


@dataclass
class Collector:
    """Event callback of a check-mode run: the findings per host, the node readings of drift.yml."""

    findings: list[Finding] = field(default_factory=list)
    readings: dict[str, dict[str, Any]] = field(default_factory=dict)
    handlers: set[str] = field(default_factory=set)
    reading_task: str = "Read the node's Nuxeo version and nuxeo.conf keys"
    # a role's install phase says, in check mode, that it would run and what its preview leaves out (a host the role
    # has not installed yet: an adopted cluster before its first deploy)
    pending_task: str = "Tell the operator what this check-mode preview leaves out"

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        host = str(data.get("host") or "")
        res = data.get("res") or {}
        label = f"{data.get('role')} : {data.get('task')}" if data.get("role") else str(data.get("task") or "")
        if kind == "playbook_on_handler_task_start":
            # a handler (restart, reload) follows from a change already reported
            self.handlers.add(str(data.get("task_uuid") or data.get("uuid") or ""))
            return
        if kind == "runner_on_ok" and data.get("task") == self.reading_task:
            self.readings[host] = {"version": res.get("version"), "keys": res.get("keys") or {},
                                   "exists": bool(res.get("exists"))}
            return
        if kind == "runner_on_ok" and data.get("task") == self.pending_task and isinstance(res.get("msg"), str):
            self.findings.append(Finding(host, "install", label, detail=" ".join(res["msg"].split())))
            return
        if kind == "runner_on_unreachable":
            if not any(f.host == host and f.kind == "unreachable" for f in self.findings):
                self.findings.append(Finding(host, "unreachable", label, detail=str(res.get("msg") or "")[:300]))
            return
        if kind == "runner_on_failed" and not data.get("ignore_errors"):
            self.findings.append(Finding(host, "failed", label, detail=str(res.get("msg") or "")[:300]))
            return
        if kind == "runner_on_ok" and isinstance(res.get("nx_lock_differ"), dict):
            # nx_apt_lock: packages installed at another version than the version lock's (no deploy moves them)
            for name, versions in sorted(res["nx_lock_differ"].items()):
                have, want = [*list(versions), "?", "?"][:2]
                self.findings.append(Finding(host, "package", label,
                                             detail=f"{name} {have} is installed, the version lock holds {want}"))
        if not changed(event) or str(data.get("task_uuid") or "") in self.handlers:
            return
        if res.get("nx_diff_of"):
            # the masked diff of an earlier no_log task: it replaces that task's "differs"
            self.findings = [f for f in self.findings
                             if not (f.host == host and f.kind == "hidden" and f.task.endswith(str(res["nx_diff_of"])))]
            text = result_diffs(res)
            self.findings.append(Finding(host, "file" if text else "hidden", label, diff_path(res), text,
                                         "" if text else "differs (secret-bearing file, diff hidden)"))
            return
        if res.get("censored"):
            self.findings.append(Finding(host, "hidden", label, detail="differs (no_log task: diff hidden)"))
            return
        action = str(data.get("task_action") or data.get("resolved_action") or "")
        if action in SERVICE_ACTIONS:
            name = str(res.get("name") or "")
            state = str(res.get("state") or "")
            detail = f"{name} should be {'running, is stopped' if state == 'started' else state or 'changed'}"
            if res.get("enabled") and not state:
                detail = f"{name} should start at boot, does not"
            self.findings.append(Finding(host, "service", label, detail=detail))
            return
        text = result_diffs(res)
        path = diff_path(res)
        if text or path:
            self.findings.append(Finding(host, "file", label, path, text, "" if text else "differs"))
        else:
            self.findings.append(Finding(host, "setting", label, detail=str(res.get("msg") or "differs")[:300]))


def compare_nodes(readings: Mapping[str, Mapping[str, Any]], expected: Mapping[str, Mapping[str, str]],
                  group: str = "nuxeo") -> list[NodeDifference]:
    """Differences between nodes the model does not explain: a key whose values differ between two nodes the
    model gives the same value (or both no such key), and differing installed Nuxeo versions.
    `expected`: host -> key -> value the model writes (secret values masked)."""
    out: list[NodeDifference] = []
    hosts = sorted(h for h in readings if readings[h].get("exists"))
    versions = {h: str(readings[h].get("version") or "(none recorded)") for h in hosts}
    if len(set(versions.values())) > 1:
        out.append(NodeDifference(group, "Nuxeo version", versions))
    keys = sorted({k for h in hosts for k in (readings[h].get("keys") or {})})
    absent = "(absent)"
    for key in keys:
        actual = {h: str((readings[h].get("keys") or {}).get(key, absent)) for h in hosts}
        model = {h: str((expected.get(h) or {}).get(key, absent)) for h in hosts}
        unexplained = any(actual[a] != actual[b] and model[a] == model[b]
                          for i, a in enumerate(hosts) for b in hosts[i + 1:])
        if unexplained:
            out.append(NodeDifference(group, f"nuxeo.conf {key}", actual))
    return out


def exit_code(findings: list[Finding], nodes: list[NodeDifference]) -> int:
    return DRIFT if findings or nodes else CLEAN


def report_lines(findings: list[Finding], nodes: list[NodeDifference]) -> list[str]:
    lines: list[str] = []
    for host in sorted({f.host for f in findings}):
        lines.append(f"{host}:")
        for f in (f for f in findings if f.host == host):
            lines.append(f"  {f.line()}")
            lines += [f"    {ln}" for ln in f.diff.splitlines()]
    if nodes:
        lines.append("between nodes:")
        lines += [f"  {n.line()}" for n in nodes]
    return lines
