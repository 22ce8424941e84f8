"""`nxprovision init`: a commented sample inventory for an architecture plus its vaulted secrets."""

from __future__ import annotations

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
_TOP_GROUPS = ("loadbalancers", "nuxeo", "postgresql", "mongodb", "opensearch", "kafka", "zookeeper", "s3", "etcd")


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


def _sample_layout(arch: str, database: str) -> dict[str, tuple[str, ...]]:
    layout = dict(architectures.get(arch).lab_layout)
    if database == "mongodb" and "postgresql" in layout:
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
        children[group] = {"hosts": hosts_block(names)} if names else {}
    text = yaml.safe_dump({"all": {"children": children}}, default_flow_style=False, sort_keys=False)
    header = (
        "# Hosts of this Nuxeo cluster, one group per component (nxprovision validate checks the counts).\n"
        "# nuxeo_front nodes serve users through the load balancers; nuxeo_worker nodes run async work only.\n"
        "# Give each host `ansible_host: <address>` when its name does not resolve.\n"
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


def write_inventory(
    directory: Path,
    architecture: str,
    *,
    database: str = "postgresql",
    layout: dict[str, tuple[str, ...] | list[str]] | None = None,
    hostvars: dict[str, dict[str, Any]] | None = None,
    group_vars: dict[str, Any] | None = None,
    extra_group_vars_files: dict[str, dict[str, Any]] | None = None,
    vault_password_file: Path | None = None,
    overwrite_layout: bool = False,
) -> InitResult:
    """Write (or complete) an inventory directory.

    Existing hosts.yml and main.yml are kept unless overwrite_layout; secrets are only ever added.
    """
    if architecture not in architectures.ARCHITECTURES:
        raise NxError(
            f"unknown architecture '{architecture}'",
            f"use one of: {', '.join(architectures.ARCHITECTURES)}",
        )
    if database not in ("postgresql", "mongodb"):
        raise NxError(f"unknown database '{database}'", "use postgresql or mongodb")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "group_vars" / "all").mkdir(parents=True, exist_ok=True)
    (directory / "host_vars").mkdir(exist_ok=True)
    result = InitResult(
        directory=directory,
        hosts_file=directory / "hosts.yml",
        vault_password_file=vault_password_file or directory / secrets.VAULT_PASS_NAME,
    )
    layout = layout or _sample_layout(architecture, database)

    def put(path: Path, text: str) -> None:
        if path.exists() and not overwrite_layout:
            result.files_kept.append(path)
            return
        path.write_text(text)
        result.files_written.append(path)

    put(result.hosts_file, render_hosts_yaml(layout, hostvars))
    put(directory / "group_vars" / "all" / "main.yml", render_group_vars(architecture, database, group_vars))
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
    return result
