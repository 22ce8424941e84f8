"""`nxprovision init`: a commented sample inventory for an architecture plus its vaulted secrets."""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nxprovision import secrets
from nxprovision.errors import NxError
from nxprovision.model import architectures
from nxprovision.model.defaults import SAMPLE_GROUP_VARS, SAMPLE_ONLY


class _IndentedDumper(yaml.SafeDumper):
    """Indents list items under their key, as yamllint's default expects."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


# Order of groups in a written hosts.yml; nuxeo_front/nuxeo_worker are written under `nuxeo`.
_TOP_GROUPS = ("loadbalancers", "nuxeo", "postgresql", "mongodb", "opensearch", "kafka", "zookeeper", "s3", "etcd",
               "monitoring")


@dataclass
class InitResult:
    directory: Path
    hosts_file: Path
    vault_password_file: Path
    secrets_added: list[str] = field(default_factory=list)
    secrets_kept: list[str] = field(default_factory=list)
    files_written: list[Path] = field(default_factory=list)
    files_kept: list[Path] = field(default_factory=list)
    ca_created: bool = False
    architecture: str = "compact"
    database: str = "postgresql"
    # architecture and database came from the folder's existing main.yml
    from_existing: bool = False


def _sample_layout(arch: str, database: str) -> dict[str, tuple[str, ...]]:
    layout = dict(architectures.get(arch).lab_layout)
    if database == "mongodb" and "postgresql" in layout:
        layout.pop("etcd", None)  # only Patroni uses etcd
        hosts = layout.pop("postgresql")
        if arch != "single":
            hosts = tuple(f"mongo{i + 1}" for i in range(max(3, len(hosts))))
        layout["mongodb"] = hosts
    return layout


def render_hosts_yaml(
    layout: dict[str, tuple[str, ...] | list[str]], hostvars: dict[str, dict[str, Any]] | None = None
) -> str:
    hostvars = hostvars or {}
    placed: set[str] = set()

    def hosts_block(names: tuple[str, ...] | list[str]) -> dict[str, Any]:
        block: dict[str, Any] = {}
        for n in names:
            if n in placed or not hostvars.get(n):
                block[n] = None
            else:
                block[n] = dict(hostvars[n])
            placed.add(n)
        return block

    children: dict[str, Any] = {}
    for group in _TOP_GROUPS:
        if group == "nuxeo":
            children["nuxeo"] = {
                "children": {
                    "nuxeo_front": {"hosts": hosts_block(layout.get("nuxeo_front", ()))},
                    "nuxeo_worker": {"hosts": hosts_block(layout.get("nuxeo_worker", ()))},
                }
            }
            for sub in ("nuxeo_front", "nuxeo_worker"):
                if not children["nuxeo"]["children"][sub]["hosts"]:
                    children["nuxeo"]["children"][sub] = {}
            continue
        names = layout.get(group, ())
        if group == "etcd" and not names:
            continue  # only Patroni (distributed, PostgreSQL) uses etcd: no empty group to wonder about
        children[group] = {"hosts": hosts_block(names)} if names else {}
    text = yaml.safe_dump({"all": {"children": children}}, default_flow_style=False, sort_keys=False)
    header = (
        "# Hosts of this Nuxeo cluster, one group per component (nxprovision validate checks the counts).\n"
        "# nuxeo_front nodes serve users through the load balancers; nuxeo_worker nodes run async work only.\n"
        "# Give each host `ansible_host: <address>` when its name does not resolve.\n"
        "# monitoring: one host (the load balancer's is enough in small clusters) turns on Prometheus, Alertmanager\n"
        "# and the node exporter on every host; left empty, there is no monitoring.\n"
    )
    return header + text.replace(": null\n", ":\n").replace(" {}\n", "\n")


def render_group_vars(arch: str, database: str, overrides: dict[str, Any] | None = None) -> str:
    """group_vars/all/main.yml: every setting with a comment saying what it is for."""
    values = {k: v for k, (v, _c) in SAMPLE_GROUP_VARS.items()}
    values.update(SAMPLE_ONLY)
    values["nx_architecture"] = arch
    values["nx_database"] = database
    if arch == "distributed":
        values["nx_vip"] = "10.20.0.100"
        values["nx_public_url"] = "https://10.20.0.100/nuxeo"
    else:
        values.pop("nx_vip", None)
    if overrides:
        values.update(overrides)
    lines = [
        f"# nxprovision inventory settings for the `{arch}` architecture.",
        *(f"# {ln}" for ln in textwrap.wrap(architectures.get(arch).summary, 100)),
        "# Secrets are not here: they live in secrets.yml beside this file, vault-encrypted.",
        "",
    ]
    for key, value in values.items():
        comment = SAMPLE_GROUP_VARS.get(key, (None, ""))[1]
        if comment:
            for c in comment.split("\n"):
                lines.append(f"# {c}")
        dumped = yaml.dump({key: value}, Dumper=_IndentedDumper, default_flow_style=False,
                           sort_keys=False).rstrip("\n")
        lines.append(dumped)
        lines.append("")
    return "\n".join(lines)


# Kernel file systems: a folder there cannot hold an inventory (mkdir fails half-way, or writes vanish).
_VIRTUAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def _check_directory(directory: Path) -> None:
    target = directory.absolute()
    for root in _VIRTUAL_ROOTS:
        if target == root or root in target.parents:
            raise NxError(f"{directory}: is under {root}, a kernel file system that cannot hold an inventory",
                          "choose a folder on a disk, e.g. inventories/<cluster>")
    if directory.exists() and not directory.is_dir():
        raise NxError(f"{directory}: exists and is not a folder",
                      "choose a new folder name, or the folder of an existing inventory")
    for sub in (Path("group_vars"), Path("group_vars") / "all", Path("host_vars")):
        if (directory / sub).exists() and not (directory / sub).is_dir():
            raise NxError(f"{directory / sub}: is a file, where init writes a folder",
                          "move that file away, or choose another inventory folder")
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NxError(f"{directory}: {existing} is a file, not a folder", "choose a path whose parents are folders")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NxError(f"{directory}: cannot write in {existing}",
                      "choose a folder you can write to, or run as the user who owns it")


def _check_vault_password_file(path: Path, explicit: bool) -> bytes | None:
    """The password when the file exists; None when init will create it."""
    if path.exists():
        if path.is_dir():
            raise NxError(f"{path}: is a folder, not a vault password file",
                          "pass --vault-password-file with a file holding the password")
        return secrets.read_vault_password(path)
    if explicit and not path.absolute().parent.is_dir():
        raise NxError(f"--vault-password-file {path}: the folder {path.absolute().parent} does not exist",
                      "create that folder first, or name a file in an existing folder (init creates it, mode 0600)")
    return None


def _check_existing_secrets(directory: Path, vault_password_file: Path, password: bytes | None) -> None:
    """An existing secrets.yml must open with the password init will use, or init would add a second
    password (a new .vault-pass) that cannot read the secrets the cluster runs with."""
    path = directory / secrets.SECRETS_RELPATH
    if not path.exists():
        return
    if path.is_dir():
        raise NxError(f"{path}: is a folder, not the secrets file", "move it away, then run init again")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise NxError(f"{path}: cannot read ({exc.strerror})", "check the file's permissions") from None
    if secrets.is_vaulted(raw) and password is None:
        raise NxError(
            f"{path}: is vault-encrypted, but {vault_password_file} does not exist; init would create a new "
            "password that cannot open it",
            "pass --vault-password-file with the password that encrypted it (or put it back in "
            f"{directory / secrets.VAULT_PASS_NAME})",
        )
    try:
        secrets.load_secrets_file(path, password or b"")
    except NxError as exc:
        if "cannot decrypt" in exc.message:
            raise NxError(f"{path}: {vault_password_file} does not open this vault (another password)",
                          "pass --vault-password-file with the password that encrypted it") from None
        raise


def _existing_settings(directory: Path) -> dict[str, Any]:
    path = directory / "group_vars" / "all" / "main.yml"
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise NxError(f"{where}: YAML syntax error ({exc.problem}); init reads the architecture from it",
                      "fix the YAML at that line, then run init again") from None
    except (OSError, yaml.YAMLError) as exc:
        raise NxError(f"{path}: cannot read ({exc})", "fix or remove the file, then run init again") from None
    return data if isinstance(data, dict) else {}


def _choose(directory: Path, setting: str, option: str, given: str | None, default: str,
            existing: dict[str, Any]) -> tuple[str, bool]:
    """The value init uses, and whether it came from the folder. An existing folder keeps its own: init keeps
    its hosts.yml and main.yml, so another value would be silently ignored."""
    have = existing.get(setting)
    if have is None or str(have) == "":
        return given or default, False
    have = str(have)
    if given and given != have:
        raise NxError(
            f"{directory}: is a {have} inventory ({setting}: {have} in group_vars/all/main.yml); init keeps "
            f"that file, so {option} {given} would not apply",
            f"init a new folder for a {given} cluster, or leave out {option} to complete this one",
        )
    return have, True


def write_inventory(
    directory: Path,
    architecture: str | None,
    *,
    database: str | None = None,
    layout: dict[str, tuple[str, ...] | list[str]] | None = None,
    hostvars: dict[str, dict[str, Any]] | None = None,
    group_vars: dict[str, Any] | None = None,
    extra_group_vars_files: dict[str, dict[str, Any]] | None = None,
    vault_password_file: Path | None = None,
    overwrite_layout: bool = False,
) -> InitResult:
    """Write (or complete) an inventory directory.

    Existing hosts.yml and main.yml are kept unless overwrite_layout; secrets are only ever added. Every check
    runs before the first write, so a refused init leaves nothing behind. On an existing folder the
    architecture and database default to the folder's own, and a different one is refused.
    """
    if architecture is not None and architecture not in architectures.ARCHITECTURES:
        raise NxError(
            f"unknown architecture '{architecture}'",
            f"use one of: {', '.join(architectures.ARCHITECTURES)}",
        )
    if database not in (None, "postgresql", "mongodb"):
        raise NxError(f"unknown database '{database}'", "use postgresql or mongodb")
    _check_directory(directory)
    existing = {} if overwrite_layout else _existing_settings(directory)
    architecture, arch_kept = _choose(directory, "nx_architecture", "-a", architecture, "compact", existing)
    database, db_kept = _choose(directory, "nx_database", "--database", database, "postgresql", existing)
    if architecture not in architectures.ARCHITECTURES:
        raise NxError(f"{directory / 'group_vars/all/main.yml'}: unknown nx_architecture '{architecture}'",
                      f"set it to one of: {', '.join(architectures.ARCHITECTURES)}")
    vpf = vault_password_file or directory / secrets.VAULT_PASS_NAME
    password = _check_vault_password_file(vpf, vault_password_file is not None)
    _check_existing_secrets(directory, vpf, password)
    result = InitResult(
        directory=directory,
        hosts_file=directory / "hosts.yml",
        vault_password_file=vpf,
        architecture=architecture,
        database=database,
        from_existing=arch_kept or db_kept,
    )
    try:
        _write(result, layout or _sample_layout(architecture, database), hostvars, group_vars,
               extra_group_vars_files, overwrite_layout)
    except OSError as exc:
        raise NxError(f"{directory}: cannot write {exc.filename or ''} ({exc.strerror})",
                      "free disk space or fix the folder's permissions, then run init again (it completes)") \
            from None
    return result


def _write(result: InitResult, layout: dict[str, tuple[str, ...] | list[str]],
           hostvars: dict[str, dict[str, Any]] | None, group_vars: dict[str, Any] | None,
           extra_group_vars_files: dict[str, dict[str, Any]] | None, overwrite_layout: bool) -> None:
    directory = result.directory
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (directory / "host_vars").mkdir(exist_ok=True)

    def put(path: Path, text: str) -> None:
        if path.exists() and not overwrite_layout:
            result.files_kept.append(path)
            return
        path.write_text(text)
        result.files_written.append(path)

    put(result.hosts_file, render_hosts_yaml(layout, hostvars))
    put(directory / "group_vars" / "all" / "main.yml",
        render_group_vars(result.architecture, result.database, group_vars))
    for name, values in (extra_group_vars_files or {}).items():
        put(
            directory / "group_vars" / "all" / f"{name}.yml",
            yaml.safe_dump(values, default_flow_style=False, sort_keys=False),
        )

    if not result.vault_password_file.exists():
        secrets.create_vault_password_file(result.vault_password_file)
        result.files_written.append(result.vault_password_file)
    password = secrets.read_vault_password(result.vault_password_file)
    result.secrets_added, result.secrets_kept = secrets.ensure_secrets(directory, password)
    merged = {k: v for k, (v, _c) in SAMPLE_GROUP_VARS.items()}
    merged.update(group_vars or {})
    if str(merged.get("nx_tls_enabled")).lower() in ("true", "1", "yes"):
        from nxprovision import pki

        result.ca_created = pki.ensure_ca(directory, password, str(merged.get("nx_cluster_name") or "nuxeo"))
