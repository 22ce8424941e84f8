"""Run playbooks through ansible-runner: one private data dir per run, events to a display, a recap.

The playbooks hold the procedure; this module only starts them, watches their events, masks secrets in
whatever it prints, and says which host and task failed and where the run's records are.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from nxprovision import servicelogs
from nxprovision.ansibleopts import AnsibleOptions
from nxprovision.errors import NxError
from nxprovision.model.roledefaults import project_root
from nxprovision.progress import make_display
from nxprovision.runevents import STOP_PLAY, Masker, result_message, task_label, unreachable_cause
from nxprovision.servicelogs import cluster_endpoints
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
                cause = unreachable_cause(result_message(data))
                if progress == "json" and display is None:
                    say(json.dumps({"event": "host_unreachable", "host": host, "task": task_label(data),
                                    "cause": cause, "records": str(run_dir)}))
                else:
                    say(f"nxprovision: {where} is UNREACHABLE at task '{task_label(data)}': {cause}; "
                        f"records in {run_dir}")
        if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            failures.append(Failure(str(data.get("host")), str(data.get("task", "")), str(data.get("role") or ""),
                                    mask(result_message(data)), kind == "runner_on_unreachable",
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
        broken = [f for f in failures if not f.stop]  # the host a stop ran on broke nothing: no log of it
        # said only where a failure names a service (a read-only play or a stanza check names none)
        with_service = [f.host for f in broken
                        if not f.unreachable and servicelogs.component_for(f.role, f.task, f.play) is not None]
        if progress != "json" and with_service:
            say("nxprovision: reading the failed service's log on " + ", ".join(dict.fromkeys(with_service)) + " ...")
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
