"""What a run's events say to the operator: the line of a changed, failed or refused task, its diff, the
warnings a module returned, the "Tell the operator" reports, an unreachable host's cause in plain words, and the
mask every one of them passes through. Shared by the runner, every progress display and the failure report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, TextIO

from nxprovision.drift import changed as changed_result
from nxprovision.drift import result_diffs
from nxprovision.model.artifacts import PUBLISHED_CHECKSUM_SUFFIX

# site.yml's play that ends a run before the Nuxeo nodes when a host failed in an earlier play.
STOP_PLAY = "Stop before the Nuxeo nodes when a host failed above"


class Masker:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)
        # A secret with quotes, backslashes or non-ASCII characters is written escaped in JSON records.
        forms = {f for s in self.secrets for f in (s, json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1])}
        self._bytes = sorted({f.encode() for f in forms}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, "********")
        return text

    def data(self, value: Any) -> Any:
        """`value` (an event's JSON tree) with every string masked."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(k) if isinstance(k, str) else k: self.data(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value

    def raw(self, data: bytes) -> bytes:
        for s in self._bytes:
            if s in data:
                data = data.replace(s, b"********")
        return data


TELL = "Tell the operator"


def report_line(event: dict[str, Any]) -> str:
    """What a playbook tells the operator: the string message of a debug task named "Tell the operator ..." (the
    reindex's figures, PostgreSQL settings waiting for a restart), shown by every progress mode; "" otherwise."""
    data = event.get("event_data", {}) or {}
    if event.get("event") != "runner_on_ok" or not str(data.get("task", "")).startswith(TELL):
        return ""
    msg = (data.get("res") or {}).get("msg")
    return " ".join(str(msg).split()) if isinstance(msg, str) else ""


def warning_lines(event: dict[str, Any]) -> list[str]:
    """The warnings a module returned with its result (e.g. a package installed at another version than the lock's),
    which Ansible's own display prints and ours would otherwise keep to the run records."""
    data = event.get("event_data", {}) or {}
    if event.get("event") not in ("runner_on_ok", "runner_on_failed"):
        return []
    warnings = (data.get("res") or {}).get("warnings") or []
    return [f"WARNING  {data.get('host')}  {task_label(data)}: {' '.join(str(w).split())}"
            for w in warnings if isinstance(w, str) and w.strip()]


class PlainDisplay:
    """One line per play, per changed/failed/unreachable result, and per report."""

    def __init__(self, out: TextIO, mask: Masker, json_lines: bool = False) -> None:
        self.out, self.mask, self.json_lines = out, mask, json_lines

    def write(self, line: str) -> None:
        self.out.write(self.mask(line) + "\n")
        self.out.flush()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        if self.json_lines:
            slim = {"event": kind, "host": data.get("host"), "task": data.get("task"), "play": data.get("play"),
                    "role": data.get("role"), "changed": changed_result(event) or None,
                    "diff": (self.mask(shown_diff(event)) or None), "report": report_line(event) or None,
                    "warnings": [self.mask(w) for w in warning_lines(event)] or None}
            self.write(json.dumps({k: v for k, v in slim.items() if v is not None}))
            return
        for line in warning_lines(event):
            self.write(f"  {line}")
        if kind == "playbook_on_play_start":
            self.write(f"PLAY {data.get('play', '')}")
        elif report_line(event):
            self.write(f"  {report_line(event)}")
        elif changed_result(event):
            self.write(f"  changed  {data.get('host')}  {task_label(data)}")
            text = shown_diff(event)
            if text:
                self.write("\n".join(f"           {ln}" for ln in text.splitlines()))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            if (data.get("res") or {}).get("nx_refused"):
                self.write(f"  REFUSED  {data.get('host')}  {task_label(data)}")  # said in full at the end
            elif data.get("play") == STOP_PLAY:
                self.write(f"  STOPPED  {result_message(data)}")  # the host it ran on broke nothing
            else:
                self.write(f"  FAILED   {data.get('host')}  {task_label(data)}: {result_message(data)}")
        # runner_on_unreachable: run_playbook says it on one line, with the cause and the records


def shown_diff(event: dict[str, Any]) -> str:
    """The unified diff of a changed result (--diff runs; the event is masked already), "" when none."""
    if not changed_result(event):
        return ""
    return result_diffs((event.get("event_data") or {}).get("res") or {})


def task_label(data: dict[str, Any]) -> str:
    role = data.get("role")
    task = data.get("task", "")
    return f"{role} : {task}" if role else task


def result_message(data: dict[str, Any]) -> str:
    res = data.get("res") or {}
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    status, url = res.get("status_code"), res.get("url")
    if url and isinstance(status, int) and (status >= 400 or status < 0):
        # get_url / uri: say which URL answered what (the module's own msg is only "Request failed")
        detail = str(res.get("response") or "").strip()
        text = f"HTTP {status} for {url}" + (f" ({detail})" if detail else "")
        if str(url).endswith(PUBLISHED_CHECKSUM_SUFFIX):
            text += ("; without the checksum published beside the archive nothing is downloaded: publish it on the "
                     "mirror, or pin <product>_archive_checksum in the inventory")
        return text
    mismatch = _CHECKSUM_MISMATCH.search(str(msg))
    if mismatch:
        # get_url names its temporary file; say which archive, and both sums
        algorithm = str(((res.get("invocation") or {}).get("module_args") or {}).get("checksum") or "").split(":")[0]
        return (f"checksum MISMATCH for {url or res.get('dest') or 'the download'}: expected {algorithm} "
                f"{mismatch.group(1)}, got {mismatch.group(2)}; the download was discarded, nothing was unpacked")
    if not msg and res.get("results"):
        msgs = [r.get("msg", "") for r in res["results"] if isinstance(r, dict) and r.get("failed")]
        msg = "; ".join(m for m in msgs if m)
    if res.get("censored"):
        msg = msg or "output hidden (no_log); see the service logs on the host"
    text = str(msg).strip()
    return text if len(text) < 2000 else text[:2000] + "..."


_CHECKSUM_MISMATCH = re.compile(r"The checksum for \S+ did not match (\w+); it was (\w+)")
_SSH_PREFIXES = re.compile(
    r"^(Task failed: )?(Data could not be sent to remote host \"[^\"]*\"\. Make sure this host can be reached over "
    r"ssh: |Failed to connect to the host via ssh: )?"
)
_SSH_NOISE = ("Warning: Permanently added", "mux_client_request_session", "Shared connection to")


def unreachable_cause(message: str) -> str:
    """The SSH error of an unreachable host on one line, with the usual cause spelled out."""
    lines = [_SSH_PREFIXES.sub("", raw.strip()).strip() for raw in message.replace("\r", "\n").splitlines()]
    lines = [ln for ln in lines if ln]
    useful = [ln for ln in lines if not ln.startswith(_SSH_NOISE)] or lines
    text = "; ".join(useful) or "no answer"
    keys = host_key_cause(message)
    if keys:
        return keys
    # Mitogen says the second: the host fell back to asking a password after refusing every key
    if "Permission denied" in text or "password was requested, but none specified" in text:
        return f"SSH refused the key ({text}); check ansible_ssh_private_key_file and ansible_user"
    if any(s in text for s in ("timed out", "Timeout", "No route to host", "Host is down", "not responding")):
        return f"no answer over SSH ({text}); is the host up and its network reachable?"
    if "Connection refused" in text:
        return f"SSH connection refused ({text}); is the host (re)booting, is sshd running?"
    return text


def host_key_cause(message: str) -> str:
    """SSH's refusal of a host key, said plainly: which key it offered, which one was expected, how to fix it."""
    if "IDENTIFICATION HAS CHANGED" in message or "has changed and you have requested strict" in message:
        offered = re.search(r"(SHA256:[A-Za-z0-9+/]+)", message)
        where = re.search(r"Offending (\S+) key in (\S+):(\d+)", message)
        expected = ""
        if where:
            expected = f", expected {_recorded_fingerprint(Path(where.group(2)), int(where.group(3)))} " \
                       f"({where.group(2)}:{where.group(3)})"
        fix = (f"remove that line (`ssh-keygen -R ADDRESS -f {where.group(2)}`)" if where else "remove its line")
        return (f"SSH host key CHANGED: the host offered {offered.group(1) if offered else 'another key'}{expected}; "
                f"refused, nothing was sent to it. If it was reinstalled on purpose, {fix}, then "
                "`nxprovision trust-hosts -i INVENTORY HOST`")
    if "requested strict checking" in message or "Host key verification failed" in message:
        return ("SSH host key not trusted yet (no key for this address in the known_hosts file); record it with "
                "`nxprovision trust-hosts -i INVENTORY HOST`")
    return ""


def _recorded_fingerprint(path: Path, line: int) -> str:
    from nxprovision.hostkeys import HostKey

    try:
        parts = path.read_text().splitlines()[line - 1].split()
        return HostKey(parts[-2], parts[-1]).fingerprint if parts[0].startswith("@") else \
            HostKey(parts[1], parts[2]).fingerprint
    except (OSError, IndexError, ValueError):
        return "the recorded key"
