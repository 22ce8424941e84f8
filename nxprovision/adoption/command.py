"""`nxprovision adopt -i HOSTS --output DIR`: bring a running Nuxeo cluster built by hand under management.

The given inventory names the hosts (groups optional: the hosts' services say what each one runs) and how to reach
them. Nothing is written until every host was read and the mapping holds; then DIR gets a whole inventory: hosts.yml
by group, group_vars with what the hosts run, host_vars where nodes differ, the secrets found in their configuration
in a new vault (the rest generated), the SSH host keys the given inventory trusted, and the report.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nxprovision.errors import NxError

if TYPE_CHECKING:
    from nxprovision.adoption.found import Found
    from nxprovision.adoption.mapping import Adoption
    from nxprovision.init import InitResult
    from nxprovision.inventory import InventoryView
    from nxprovision.rules.finding import Finding

# the given inventory's own variables a new inventory has no use for, or must not carry in clear
_NOT_KEPT_PREFIXES = ("nx_secret_", "ansible_become_pass", "ansible_password", "ansible_ssh_pass")


def _shared_and_own(hostvars: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Variables every host has with one value (kept in group_vars) and each host's own (kept in hosts.yml)."""
    # plain str keys: Ansible's own string types do not go through yaml.safe_dump
    hostvars = {str(h): {str(k): v for k, v in hv.items()} for h, hv in hostvars.items()}
    hosts = list(hostvars)
    keys = set.intersection(*(set(v) for v in hostvars.values())) if hosts else set()
    shared = {k: hostvars[hosts[0]][k] for k in sorted(keys)
              if all(hostvars[h][k] == hostvars[hosts[0]][k] for h in hosts)}
    own = {h: {k: v for k, v in hv.items() if k not in shared} for h, hv in hostvars.items()}
    return shared, own


def _kept(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not k.startswith(_NOT_KEPT_PREFIXES)}


def _check_output(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NxError(f"{out}: exists and is not an empty folder",
                      "adopt writes a new inventory: give --output a new folder (nothing was read or written)")


def write_adoption(out: Path, given: InventoryView, found: dict[str, Found],
                   known_hosts: Path | None = None) -> tuple[Adoption, list[Finding], InitResult]:
    """Map what the hosts run and write the inventory, its vault and the report into `out` (new or empty)."""
    from nxprovision import hostkeys, secrets
    from nxprovision.adoption import report
    from nxprovision.adoption.mapping import adopt
    from nxprovision.init import write_inventory
    from nxprovision.inventory import load_inventory
    from nxprovision.model.cluster import build_cluster
    from nxprovision.rules import run_rules

    shared, own = _shared_and_own(given.hostvars)
    adoption, _cluster = adopt(found, given, _kept(shared))
    blocking = [p for p in adoption.problems if p.where == "cluster"]
    if blocking:
        for p in adoption.problems:
            print(f"nxprovision: {p.where}: {p.what}; {p.why}")
        raise NxError("nothing to adopt: no Nuxeo cluster found on these hosts; nothing was written",
                      "check the hosts listed in the inventory")
    group_vars = {**_kept(shared), **adoption.group_vars}
    hostvars = {h: {**_kept(own.get(h, {})), **adoption.host_vars.get(h, {})} for h in given.hostvars}
    out.mkdir(parents=True, exist_ok=True)
    # the found secrets first, so init's completion keeps them and generates only the others
    vault_pass = out / secrets.VAULT_PASS_NAME
    secrets.create_vault_password_file(vault_pass)
    secrets.write_secrets_file(out / secrets.SECRETS_RELPATH, dict(adoption.secrets),
                               secrets.read_vault_password(vault_pass))
    written = write_inventory(out, adoption.architecture, database=adoption.database,
                              layout={g: list(m) for g, m in adoption.layout.items()},
                              hostvars=hostvars, group_vars=group_vars)
    if known_hosts is not None and known_hosts.exists():
        shutil.copy2(known_hosts, hostkeys.known_hosts_path(out))
    findings = run_rules(build_cluster(load_inventory(out)))
    report.write(adoption, findings, out)
    return adoption, findings, written


def cmd_adopt(args: argparse.Namespace) -> int:
    from nxprovision import hostkeys
    from nxprovision.adoption import report
    from nxprovision.adoption.found import load_found
    from nxprovision.ansibleopts import ansible_options
    from nxprovision.inventory import find_vault_password_file, load_inventory
    from nxprovision.runevents import Masker
    from nxprovision.runner import run_playbook, scrub_records

    given_path = Path(args.inventory)
    out = Path(args.output)
    _check_output(out)
    vpf = find_vault_password_file(given_path, args.vault_password_file)
    given = load_inventory(given_path, str(vpf) if vpf else None)
    if not given.hostvars:
        raise NxError(f"{given_path}: names no host", "list the hosts of the running cluster in it")
    work = Path(tempfile.mkdtemp(prefix="nxprovision-adopt-"))  # 0700: the hosts' files, secrets included
    try:
        result = run_playbook("adopt.yml", given_path, verb="adopt", vault_password_file=vpf, secrets=[],
                              extravars={"nx_adopt_dir": str(work)}, progress=args.progress,
                              options=ansible_options(args))
        if result.rc != 0:
            for f in result.failures:
                print(f"nxprovision: {f.host}: {f.message}")
            raise NxError(f"could not read every host (records in {result.run_dir}); nothing was written",
                          "make each host reachable (nxprovision trust-hosts for new host keys), then run adopt again")
        found = load_found(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    adoption, findings, written = write_adoption(out, given, found, hostkeys.known_hosts_path(given_path))
    scrub_records(result.run_dir, Masker(list(adoption.secrets.values())))
    print(f"adopted {len(found)} hosts as a {adoption.architecture} cluster ({adoption.database}) into {out}")
    print(f"secrets: {len(adoption.secrets)} found (in the vault), {len(written.secrets_added)} generated")
    print(f"differences between nodes: {len(adoption.differences)}; not carried over: {len(adoption.unmapped)}; "
          f"problems: {len(adoption.problems)}")
    errors = [f for f in findings if f.severity == "error"]
    for f in findings:
        print(f.line())
    print(f"report: {out / report.REPORT_MD} (and {report.REPORT_JSON})")
    print(f"next: read the report (its last section is what the first deploy changes), then "
          f"`nxprovision deploy -i {out}`")
    return 1 if errors or adoption.problems else 0


def register(sub: argparse._SubParsersAction) -> None:
    from nxprovision.cliargs import run_args

    a = sub.add_parser("adopt", help="read a running Nuxeo cluster built without nxprovision and write the "
                                     "inventory that reproduces it, with a report (changes no host)")
    run_args(a)
    a.add_argument("--output", "-o", required=True, metavar="DIR", help="the new inventory's folder (new or empty)")
    a.set_defaults(func=cmd_adopt)
