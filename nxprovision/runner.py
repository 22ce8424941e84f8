"""Run playbooks through ansible-runner: one private data dir per run, events to a display, a recap.

The playbooks hold the procedure; this module only starts them, watches their events, masks secrets in
whatever it prints, and says which host and task failed and where the run's records are.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from nxprovision.ansibleopts import AnsibleOptions
from nxprovision.drift import changed as changed_result
from nxprovision.drift import result_diffs
from nxprovision.errors import NxError
from nxprovision.model.artifacts import PUBLISHED_CHECKSUM_SUFFIX
from nxprovision.model.roledefaults import project_root
from nxprovision.strategy import strategy_env, strategy_name

RECAP_KEYS = (("ok", "ok"), ("changed", "changed"), ("dark", "unreachable"), ("failures", "failed"),
              ("skipped", "skipped"), ("rescued", "rescued"), ("ignored", "ignored"))
KEEP_RUNS = 30
KEEP_READ_ONLY_RUNS = 10
READ_ONLY_VERBS = frozenset({"status-probe", "certs-check", "support-bundle", "prechecks"})


def runs_dir() -> Path:
    env = os.environ.get("NXPROVISION_RUNS_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/nxprovision/runs")
    return Path.home() / ".local" / "state" / "nxprovision" / "runs"


# site.yml's play that ends a run before the Nuxeo nodes when a host failed in an earlier play.
STOP_PLAY = "Stop before the Nuxeo nodes when a host failed above"


@dataclass
class Failure:
    host: str
    task: str
    role: str
    message: str
    unreachable: bool = False
    play: str = ""
    refused: bool = False  # a check refused the run on purpose (nx_refused in the result), nothing broke

    @property
    def kind(self) -> str:
        return "refused" if self.refused else "unreachable" if self.unreachable else "failed"

    @property
    def stop(self) -> bool:
        """site.yml stopped the run because a host failed in an earlier play: this host itself broke nothing."""
        return self.play == STOP_PLAY


@dataclass
class RunResult:
    rc: int
    status: str
    run_dir: Path
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    logs: list[Any] = field(default_factory=list)  # servicelogs.LogTail of the failed hosts, masked

    @property
    def changed_total(self) -> int:
        return sum(r.get("changed", 0) for r in self.recap.values())


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


def scrub_records(run_dir: Path, mask: Masker) -> list[Path]:
    """Mask every secret in every file a run keeps (ansible-runner's stdout holds what a failing task printed);
    returns the files that held one."""
    scrubbed = []
    for f in sorted(run_dir.rglob("*")):
        if f.is_symlink() or not f.is_file():
            continue
        try:
            data = f.read_bytes()
        except OSError:
            continue
        clean = mask.raw(data)
        if clean != data:
            f.write_bytes(clean)
            scrubbed.append(f)
    return scrubbed


def _private_dir(path: Path) -> None:
    """The run records hold the cluster's layout and, while a run goes on, unmasked output: owner only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


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
    return [f"WARNING  {data.get('host')}  {_task_label(data)}: {' '.join(str(w).split())}"
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
            self.write(f"  changed  {data.get('host')}  {_task_label(data)}")
            text = shown_diff(event)
            if text:
                self.write("\n".join(f"           {ln}" for ln in text.splitlines()))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            if (data.get("res") or {}).get("nx_refused"):
                self.write(f"  REFUSED  {data.get('host')}  {_task_label(data)}")  # said in full at the end
            elif data.get("play") == STOP_PLAY:
                self.write(f"  STOPPED  {_message(data)}")  # the host it ran on broke nothing
            else:
                self.write(f"  FAILED   {data.get('host')}  {_task_label(data)}: {_message(data)}")
        # runner_on_unreachable: run_playbook says it on one line, with the cause and the records


def shown_diff(event: dict[str, Any]) -> str:
    """The unified diff of a changed result (--diff runs; the event is masked already), "" when none."""
    if not changed_result(event):
        return ""
    return result_diffs((event.get("event_data") or {}).get("res") or {})


def _task_label(data: dict[str, Any]) -> str:
    role = data.get("role")
    task = data.get("task", "")
    return f"{role} : {task}" if role else task


def _message(data: dict[str, Any]) -> str:
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


def format_recap(recap: dict[str, dict[str, int]]) -> str:
    lines = ["PLAY RECAP " + "*" * 69]
    width = max((len(h) for h in recap), default=10)
    for host in sorted(recap):
        r = recap[host]
        counts = "  ".join(f"{label}={r.get(label, 0)}" for _k, label in RECAP_KEYS)
        lines.append(f"{host.ljust(width)} : {counts}")
    return "\n".join(lines)


def run_verb(run_dir_name: str) -> str:
    """The verb of a run folder named <date>-<time>-<verb>-<pid>-<id> (verbs may hold dashes)."""
    parts = run_dir_name.split("-")
    return "-".join(parts[2:-2]) if len(parts) >= 5 else ""


def _rotate(base: Path, keep: int | None = None, keep_read_only: int | None = None) -> None:
    """Keep the newest runs of each kind: read-only runs (a `status` every minute from a monitor) must not push
    the records of the last deploy or restart out."""
    keep = KEEP_RUNS if keep is None else keep
    keep_read_only = KEEP_READ_ONLY_RUNS if keep_read_only is None else keep_read_only
    runs = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name)
    read_only = [p for p in runs if run_verb(p.name) in READ_ONLY_VERBS]
    changing = [p for p in runs if run_verb(p.name) not in READ_ONLY_VERBS]
    for old in changing[: max(0, len(changing) - keep)] + read_only[: max(0, len(read_only) - keep_read_only)]:
        shutil.rmtree(old, ignore_errors=True)


def _endpoints(inventory: Path, vault_password_file: Path | None) -> dict[str, tuple[str, str]]:
    from nxprovision.inventory import load_inventory
    from nxprovision.model.cluster import build_cluster
    from nxprovision.servicelogs import cluster_endpoints

    return cluster_endpoints(build_cluster(load_inventory(inventory, vault_password_file)))


def run_playbook(
    playbook: str,
    inventory: Path,
    *,
    verb: str,
    vault_password_file: Path | None,
    secrets: list[str],
    limit: str | None = None,
    tags: str | None = None,
    skip_tags: str | None = None,
    check: bool = False,
    diff: bool = False,
    extravars: dict[str, Any] | None = None,
    verbosity: int = 0,
    display: Callable[[dict[str, Any]], None] | None = None,
    out: TextIO | None = None,
    progress: str = "plain",
    options: AnsibleOptions | None = None,
) -> RunResult:
    import sys

    import ansible_runner

    out = out or sys.stdout
    options = options or AnsibleOptions()
    extravars = options.run_vars(extravars, verb)
    passwords = options.passwords()
    mask = Masker(secrets + list(passwords.values()))
    over_ssh = check_host_keys(inventory, vault_password_file, limit, options.connection_vars())
    strategy = strategy_env(options.mitogen, over_ssh)
    # ansible-playbook lives beside this interpreter (a venv that may not be activated).
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    base = runs_dir()
    _private_dir(base)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = base / f"{stamp}-{verb}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    _private_dir(run_dir)
    _rotate(base)
    root = project_root()
    pb = root / "playbooks" / playbook
    if not pb.exists():
        raise NxError(f"playbook {pb} not found",
                      "install nxprovision from its wheel (it carries the collection), run it from its checkout, "
                      "or set NXPROVISION_HOME to a tree of roles/ and playbooks/")
    cmdline = []
    if vault_password_file:
        cmdline += ["--vault-password-file", str(vault_password_file)]
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")
    if skip_tags:
        cmdline += ["--skip-tags", skip_tags]
    cmdline += options.cmdline()
    (run_dir / "command.json").write_text(json.dumps({
        "verb": verb, "playbook": str(pb), "inventory": str(inventory), "limit": limit, "tags": tags,
        "skip_tags": skip_tags, "check": check, "diff": diff, "extravars": extravars or {},
        "ansible": options.record(), "strategy": strategy_name(strategy),
    }, indent=2))
    if passwords:
        # ansible-runner writes the passwords it is given to env/passwords unless that file exists: an empty one
        # keeps the become password in memory only
        env = run_dir / "env"
        env.mkdir(mode=0o700, exist_ok=True)
        (env / "passwords").write_text("{}")
    live = None
    if display is not None:
        show = display
    else:
        from nxprovision.progress import make_display

        show, live = make_display(progress, _count_plays(pb), mask, out)
    recap: dict[str, dict[str, int]] = {}
    failures: list[Failure] = []
    unreachable: set[str] = set()

    def say(line: str) -> None:
        console = getattr(live, "console", None)
        if console is not None:
            console.print(mask(line), markup=False, highlight=False, soft_wrap=True)
        else:
            out.write(mask(line) + "\n")
            out.flush()

    def on_event(event: dict[str, Any]) -> bool:
        # ansible-runner writes the event to job_events/ after this returns: masked in place, it never
        # reaches the disk in clear
        for key in list(event):
            event[key] = mask.data(event[key])
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        if kind == "runner_on_unreachable" and not data.get("ignore_errors"):
            host = str(data.get("host"))
            if host not in unreachable:
                # said at once, one line: the rest of the run goes on without this host
                unreachable.add(host)
                addr = data.get("remote_addr")
                where = f"{host} ({addr})" if addr and addr != host else host
                cause = unreachable_cause(_message(data))
                if progress == "json" and display is None:
                    say(json.dumps({"event": "host_unreachable", "host": host, "task": _task_label(data),
                                    "cause": cause, "records": str(run_dir)}))
                else:
                    say(f"nxprovision: {where} is UNREACHABLE at task '{_task_label(data)}': {cause}; "
                        f"records in {run_dir}")
        if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            failures.append(Failure(str(data.get("host")), str(data.get("task", "")), str(data.get("role") or ""),
                                    mask(_message(data)), kind == "runner_on_unreachable",
                                    str(data.get("play") or ""), bool((data.get("res") or {}).get("nx_refused"))))
        if kind == "playbook_on_stats":
            hosts = set()
            for key, _label in RECAP_KEYS:
                hosts |= set((data.get(key) or {}).keys())
            for h in hosts:
                recap[h] = {label: int((data.get(key) or {}).get(h, 0)) for key, label in RECAP_KEYS}
        show(event)
        return True

    envvars = {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "NXPROVISION_HOME": str(root),
        "ANSIBLE_SSH_ARGS": ssh_args(root / "ansible.cfg", inventory),
        # ansible-runner turns host key checking off unless the environment names it, and Ansible then adds
        # StrictHostKeyChecking=no to every SSH command: our ssh_args come first and win, but a run must not
        # depend on option order to check host keys
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        **strategy,
    }
    if live is not None:
        live.__enter__()
    try:
        r = _run(ansible_runner, run_dir, root, pb, inventory, cmdline, limit, tags, extravars, envvars, verbosity,
                 on_event, passwords)
    finally:
        if live is not None:
            live.__exit__(None, None, None)
        for leftover in ("env/extravars", "env/passwords"):
            (run_dir / leftover).unlink(missing_ok=True)
        scrub_records(run_dir, mask)
    result = RunResult(rc=int(r.rc if r.rc is not None else 1), status=str(r.status), run_dir=run_dir,
                       recap=recap, failures=failures)
    if result.rc != 0 and failures and not check and not all(f.refused or f.stop for f in failures):
        from nxprovision import servicelogs

        broken = [f for f in failures if not f.stop]  # the host a stop ran on broke nothing: no log of it
        if progress != "json":
            say("nxprovision: reading the failed service's log on "
                + ", ".join(dict.fromkeys(f.host for f in broken)) + " ...")
        vault = ["--vault-password-file", str(vault_password_file)] if vault_password_file else []
        result.logs = servicelogs.fetch(broken, inventory, vault, envvars, mask, run_dir / "failure-logs",
                                        options=options,
                                        endpoints=lambda: _endpoints(inventory, vault_password_file))
    (run_dir / "summary.json").write_text(json.dumps({
        "rc": result.rc, "status": result.status, "recap": recap,
        "failures": [f.__dict__ for f in failures],
    }, indent=2))
    scrub_records(run_dir, mask)
    return result


def ssh_args(cfg: Path, inventory: Path) -> str:
    """ansible.cfg's ssh_args plus the known_hosts beside the inventory. They come first on SSH's command line,
    and SSH keeps the first value of an option: an inventory's ansible_ssh_common_args cannot relax them."""
    import configparser
    import shlex

    from nxprovision.hostkeys import known_hosts_path

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(cfg)
    base = parser.get("ssh_connection", "ssh_args", fallback="-o ControlMaster=auto -o ControlPersist=60s")
    if "StrictHostKeyChecking" not in base:
        base += " -o StrictHostKeyChecking=yes"
    return f"{base} -o UserKnownHostsFile={shlex.quote(str(known_hosts_path(inventory)))}"


SSH_CONNECTIONS = ("ssh", "smart", "ansible.builtin.ssh")


def check_host_keys(inventory: Path, vault_password_file: Path | None, limit: str | None,
                    overrides: dict[str, Any] | None = None) -> bool:
    """Before Ansible starts: every host of the run is trusted and still offers its recorded key. `overrides`: the
    connection options of the command line (a --ssh-common-args jump host: the hosts are not scanned from here).
    True when every host of the run is reached over SSH."""
    from nxprovision import hostkeys
    from nxprovision.inventory import load_inventory

    view = load_inventory(inventory, str(vault_password_file) if vault_password_file else None)
    hostvars = {h: {**(hv or {}), **(overrides or {})} for h, hv in view.hostvars.items()}
    everyone = list(view.groups.get("all") or view.hostvars)
    run = hostkeys.run_hosts(view.groups, everyone, limit)
    hosts = [h for h in run if str((hostvars.get(h) or {}).get("ansible_connection") or "ssh") in SSH_CONNECTIONS]
    hostkeys.check(inventory, hostvars, hosts)
    return len(hosts) == len(run)


def _count_plays(pb: Path) -> int:
    import yaml

    def count(path: Path, depth: int = 0) -> int:
        try:
            plays = yaml.safe_load(path.read_text()) or []
        except (OSError, yaml.YAMLError):
            return 1
        n = 0
        for p in plays if isinstance(plays, list) else []:
            imp = p.get("import_playbook") or p.get("ansible.builtin.import_playbook") if isinstance(p, dict) else None
            if imp and depth < 5 and "{{" not in str(imp):
                n += count(path.parent / str(imp), depth + 1)
            else:
                n += 1
        return max(n, 1)

    return count(pb)


def _run(ansible_runner: Any, run_dir: Path, root: Path, pb: Path, inventory: Path, cmdline: list[str],
         limit: str | None, tags: str | None, extravars: dict[str, Any] | None, envvars: dict[str, str],
         verbosity: int, on_event: Callable[[dict[str, Any]], bool], passwords: dict[str, str] | None = None) -> Any:
    return ansible_runner.run(
        private_data_dir=str(run_dir),
        project_dir=str(root),
        playbook=str(pb),
        inventory=str(inventory.resolve()),
        cmdline=shlex.join(cmdline) if cmdline else None,
        limit=limit,
        tags=tags,
        extravars=extravars or {},
        envvars=envvars,
        verbosity=verbosity or None,
        quiet=True,
        event_handler=on_event,
        rotate_artifacts=1,
        passwords=passwords or None,
    )
