"""Verbs that run playbooks: deploy, the day-2 operations, backup and restore."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from nxprovision.ansibleopts import ansible_options, apply_to_view, extra_vars_of
from nxprovision.cliargs import ansible_args, inventory_args, run_args
from nxprovision.errors import NxError
from nxprovision.rotation import masked_names
from nxprovision.runevents import unreachable_cause
from nxprovision.runlock import exclusive
from nxprovision.runner import format_recap, run_playbook

EXIT_INVALID = 2


def _validated(args: argparse.Namespace, changing: bool = True):
    """The cluster of a valid inventory, its vault password file and its secret values; a changing run is
    also refused when the inventory's vault password or CA is a published one."""
    from nxprovision import secret_files
    from nxprovision.inventory import find_vault_password_file, inventory_dir
    from nxprovision.rules import run_rules

    inv = Path(args.inventory)
    view, cluster = _cluster_as_run(args)
    vpf = find_vault_password_file(inv, args.vault_password_file)
    findings = run_rules(cluster) + secret_files.findings(cluster, inventory_dir(inv), vpf)
    for f in findings:
        (sys.stderr if f.severity == "error" else sys.stdout).write(f.line() + "\n")
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise NxError(f"{inv}: invalid inventory ({len(errors)} error(s)); no host was touched",
                      "fix the lines above and run again")
    if changing and not getattr(args, "check", False):
        secret_files.refuse_public(cluster, inventory_dir(inv), vpf, str(getattr(args, "command", "") or "this run"))
    secrets = [str(v) for h in view.hostvars.values() for k, v in h.items() if k in masked_names()]
    _check_ca_key(cluster, inv, vpf)
    return cluster, vpf, secrets


def _cluster_as_run(args: argparse.Namespace, overrides: dict | None = None):
    """The inventory's view and cluster as the plays will see them: -e (and a verb's own overrides, e.g. the
    version an upgrade goes to) win over the inventory. Refused -e names stop the command before anything else."""
    from nxprovision.inventory import load_inventory
    from nxprovision.model.cluster import build_cluster

    extra = {**extra_vars_of(args), **(overrides or {})}
    view = load_inventory(Path(args.inventory), args.vault_password_file)
    apply_to_view(view, extra)
    return view, build_cluster(view)


def _check_ca_key(cluster, inv: Path, vpf: Path | None) -> None:
    from nxprovision import pki
    from nxprovision.secrets import read_vault_password

    tls = cluster.derived.get("tls") or {}
    if not tls.get("enabled") or vpf is None:
        return
    from nxprovision.inventory import inventory_dir

    pki.check_ca_key_opens(pki.resolve(inventory_dir(inv), str(tls["ca_key_file"])), read_vault_password(vpf), vpf)


def refuse_pending_rotation(cluster, verb: str) -> None:
    """A run in the middle of a rotation would put the new value on every node at once, without drains."""
    from nxprovision.rotation import pending_rotations

    pending = pending_rotations(cluster.settings)
    if pending:
        r = pending[0]
        raise NxError(f"a rotation of {r.title} is pending (the vault holds the new and the previous value): "
                      f"`{verb}` would apply it to every node at once, without draining them; nothing was done",
                      f"finish it first with `nxprovision secrets rotate -i INVENTORY {r.key}` "
                      "(or go back with --rollback), then run this again")


class Prepared(NamedTuple):
    """What every verb that changes hosts starts from: the cluster as the run will see it (valid), the vault
    password file, the secret values every output is masked with."""

    cluster: Any
    vault_password_file: Path | None
    secrets: list[str]


def changing_verb(name: str, *, mid_rotation_ok: bool = False,
                  removed_ok: Callable[[argparse.Namespace], tuple[str, ...]] | None = None,
                  ) -> Callable[[Callable[[argparse.Namespace, Prepared], int]], Callable[[argparse.Namespace], int]]:
    """The one pipeline of a verb that changes hosts: the inventory's lock, validation (every rule; the samples'
    public vault password and CA refused), the guards (a pending secret rotation, unless the verb is the rotation
    or leaves Nuxeo alone; hosts taken out with remove-node, except those the verb names), then the verb."""

    def wrap(body: Callable[[argparse.Namespace, Prepared], int]) -> Callable[[argparse.Namespace], int]:
        @exclusive(name)
        @functools.wraps(body)
        def run(args: argparse.Namespace) -> int:
            cluster, vpf, secrets = _validated(args)
            if not mid_rotation_ok:
                refuse_pending_rotation(cluster, name)
            refuse_removed_hosts(args, cluster, name, removed_ok(args) if removed_ok else ())
            return body(args, Prepared(cluster, vpf, secrets))

        return run

    return wrap


def report_refusal(result, out=sys.stdout) -> int:
    """A check that refused the run on purpose (a downgrade, ...): what was refused and how to proceed, in one
    block, without a failure report."""
    seen: set[str] = set()
    lines = []
    for f in result.failures:
        if f.message in seen or f.stop:
            continue
        seen.add(f.message)
        first, *rest = f.message.splitlines() or [""]
        lines.append(f"nxprovision: REFUSED: {first}")
        lines += [f"  {ln}" for ln in rest if ln.strip()]
    out.write("\n".join(lines) + "\n")
    done = (f"the run stopped there, after {result.changed_total} change(s) of earlier plays"
            if result.changed_total else "nothing was changed")
    out.write(f"nxprovision: {done}; records in {result.run_dir}\n")
    return 2


def report(result, out=sys.stdout) -> int:
    # a refusal stops the run at the same gate as a failure: the stop adds nothing to what was refused
    if result.rc != 0 and result.failures and all(f.refused or f.stop for f in result.failures) \
            and any(f.refused for f in result.failures):
        return report_refusal(result, out)
    if result.recap:
        out.write(format_recap(result.recap) + "\n")
    if result.rc != 0:
        seen = set()
        for f in result.failures:
            if (f.host, f.task) in seen:
                continue
            seen.add((f.host, f.task))
            if f.stop:
                out.write(f"nxprovision: {(f.message.splitlines() or [''])[0]}\n")
                continue
            what = "unreachable" if f.unreachable else "failed"
            role = f"{f.role} : " if f.role else ""
            first = unreachable_cause(f.message) if f.unreachable else (f.message.splitlines() or [""])[0]
            out.write(f"nxprovision: {f.host} {what} at task '{role}{f.task}': {first}\n")
        for tail in result.logs:
            out.write("\n".join(tail.lines()) + "\n")
        out.write(f"nxprovision: run failed (rc={result.rc}); records in {result.run_dir}\n")
        return 1
    out.write(f"nxprovision: run ok, {result.changed_total} change(s); records in {result.run_dir}\n")
    return 0


@changing_verb("deploy")
def cmd_deploy(args: argparse.Namespace, prepared: Prepared) -> int:
    from nxprovision.limits import check_limit

    cluster, vpf, secrets = prepared
    for problem in check_limit(cluster, Path(args.inventory), args.limit, args.force):
        print(f"WARNING --force: {problem}")
    result = run_playbook(
        "site.yml", Path(args.inventory), verb="deploy", vault_password_file=vpf, secrets=secrets,
        limit=args.limit, tags=args.tags, skip_tags=args.skip_tags, check=args.check, diff=args.diff,
        verbosity=args.verbose, progress=args.progress, extravars=downgrade_vars(args),
        options=ansible_options(args),
    )
    code = report(result)
    if code == 0 and not args.check and not args.limit:
        _suggest_lock(Path(args.inventory))
    return code


def _suggest_lock(inventory: Path) -> None:
    """A converged cluster without a version lock: the next build of it may get other package versions."""
    from nxprovision import versionlock
    from nxprovision.inventory import inventory_dir

    if not versionlock.path_of(inventory_dir(inventory)).exists():
        print(f"note: no version lock beside the inventory: `nxprovision lock -i {inventory}` records the package "
              "versions each kind of host runs now, so later builds install exactly those (README, Version lock)")


def downgrade_vars(args: argparse.Namespace) -> dict | None:
    """--allow-downgrade: the nuxeo role may install an older version than a node records."""
    return {"nuxeo_allow_downgrade": True} if getattr(args, "allow_downgrade", False) else None


def refuse_removed_hosts(args: argparse.Namespace, cluster, verb: str, allowed: tuple[str, ...] = ()) -> None:
    from nxprovision import removed

    removed.refuse(Path(args.inventory), set(cluster.hosts), verb, allowed)


def _run(args: argparse.Namespace, playbook: str, verb: str, vpf, secrets, **kw) -> int:
    result = run_playbook(playbook, Path(args.inventory), verb=verb, vault_password_file=vpf, secrets=secrets,
                          verbosity=getattr(args, "verbose", 0), progress=getattr(args, "progress", "auto"),
                          options=ansible_options(args), **kw)
    return report(result)


@changing_verb("reindex")
def cmd_reindex(args: argparse.Namespace, prepared: Prepared) -> int:
    cluster, vpf, secrets = prepared
    if not cluster.search_hosts or not cluster.nuxeo_nodes:
        raise NxError("this cluster has no search hosts: Nuxeo keeps no repository index to rebuild",
                      "nothing to do; reindex is for clusters with an opensearch group")
    print("reindex: the repository index is dropped and rebuilt from the database by one Nuxeo node; searches "
          "return partial results until it ends (documents, blobs and the audit log are not touched)")
    return _run(args, "reindex.yml", "reindex", vpf, secrets)


@changing_verb("restart")
def cmd_restart(args: argparse.Namespace, prepared: Prepared) -> int:
    cluster, vpf, secrets = prepared
    groups = {"nuxeo": cluster.nuxeo_nodes, "opensearch": cluster.search_hosts, "kafka": cluster.kafka_brokers,
              "postgresql": cluster.db_hosts if cluster.database == "postgresql" else [],
              "haproxy": cluster.lb_hosts}
    if not groups[args.component]:
        raise NxError(f"this cluster has no {args.component} hosts", "pick a component the inventory has")
    return _run(args, f"restart_{args.component}.yml", f"restart-{args.component}", vpf, secrets)


@changing_verb("add-node", removed_ok=lambda args: tuple(args.hosts))
def cmd_add_node(args: argparse.Namespace, prepared: Prepared) -> int:
    cluster, vpf, secrets = prepared
    unknown = [h for h in args.hosts if h not in cluster.hosts]
    if unknown:
        raise NxError(f"{', '.join(unknown)} not in the inventory",
                      "add the new hosts to their groups in the inventory first, then run add-node")
    from nxprovision.daytwo import add_node_firewall_hosts, add_node_hosts

    new = list(dict.fromkeys(args.hosts))
    firewall_only = add_node_firewall_hosts(cluster, new)
    if firewall_only:
        # first, so that the new hosts' services find their peers open to them when they start
        print(f"add-node: {', '.join(firewall_only)} admit the new hosts in their firewall (that play alone)")
        code = _run(args, "site.yml", "add-node", vpf, secrets, limit=",".join(firewall_only), tags="role::firewall")
        if code != 0:
            return code
    code = _run(args, "site.yml", "add-node", vpf, secrets, limit=",".join(add_node_hosts(cluster, new)),
                extravars=downgrade_vars(args))
    if code == 0:
        from nxprovision import removed

        for h in removed.forget(Path(args.inventory), new):
            print(f"{h} is back in the cluster (it had been removed with remove-node)")
        for h in new:
            comps = cluster.hosts[h].groups
            if "kafka" in comps:
                print(f"note: {h} is a new Kafka broker. Kafka does not move existing partitions by itself: "
                      "to spread them, generate a plan with `kafka-reassign-partitions.sh --generate` on a broker "
                      "and apply it with `--execute`.")
            if "opensearch" in comps:
                print(f"note: {h} joined the search cluster; shards rebalance by themselves.")
    return code


def remove_node_run(host: str, unreachable: bool, force: bool) -> tuple[dict[str, object], str | None]:
    """remove_node.yml's extra vars and --limit: a dead host is left out of the run, never contacted."""
    extravars: dict[str, object] = {"nx_remove_host": host, "nx_remove_unreachable": unreachable,
                                    "nx_remove_force": force}
    return extravars, (f"all:!{host}" if unreachable else None)


@changing_verb("remove-node", removed_ok=lambda args: (args.host,))
def cmd_remove_node(args: argparse.Namespace, prepared: Prepared) -> int:
    from nxprovision.daytwo import check_removal, removal_components

    cluster, vpf, secrets = prepared
    for line in check_removal(cluster, args.host, args.force):
        print(f"WARNING --force: {line}")
    unreachable = bool(getattr(args, "unreachable", False))
    extravars, limit = remove_node_run(args.host, unreachable, args.force)
    code = _run(args, "remove_node.yml", "remove-node", vpf, secrets, extravars=extravars, limit=limit)
    if code == 0:
        from nxprovision import removed

        removed.remember(Path(args.inventory), args.host)
        comps = ", ".join(removal_components(cluster.to_facts(), args.host)) or "no component"
        how = "taken out without contacting it" if unreachable else "drained and stopped"
        print(f"{args.host} ({comps}) is {how}; the other hosts run without it. Now delete it from the inventory "
              f"({args.inventory}); until then a deploy would add it back.")
    return code


def _set_inventory_version(inventory: Path, version: str) -> Path | None:
    """Record the new version where the inventory sets it, keeping the file's comments."""
    import re

    from nxprovision.inventory import inventory_dir

    for f in sorted((inventory_dir(inventory) / "group_vars").rglob("*.yml")):
        text = f.read_text()
        new, n = re.subn(r"(?m)^nuxeo_version:.*$", f"nuxeo_version: '{version}'", text)
        if n:
            f.write_text(new)
            return f
    return None


@changing_verb("upgrade")
def cmd_upgrade(args: argparse.Namespace, prepared: Prepared) -> int:
    import urllib.error
    import urllib.request

    from nxprovision.daytwo import check_upgrade
    from nxprovision.model.artifacts import archive_checksum, artifact_url

    cluster, vpf, secrets = prepared
    current = str(cluster.settings.get("nuxeo_version"))
    mode = check_upgrade(current, args.nuxeo_version, args.full_stop)
    target_vars: dict = {"nuxeo_version": args.nuxeo_version}
    if args.packages:
        target_vars["nuxeo_packages"] = [p.strip() for p in args.packages.split(",") if p.strip()]
    _refuse_invalid_target(args, target_vars)
    base = str(cluster.settings.get("nuxeo_download_base_url") or "")
    url = artifact_url(base, "nuxeo", args.nuxeo_version)
    pinned = str(cluster.settings.get("nuxeo_archive_checksum") or "")
    checksum = archive_checksum(url, pinned)
    if pinned:
        print(f"note: nuxeo_archive_checksum is pinned in the inventory: it must be the checksum of {url}, or every "
              "node refuses the download")
    for what, target in (("distribution", url), ("distribution's checksum", checksum.split(":", 1)[1])):
        if not target.startswith("http"):
            continue
        try:
            urllib.request.urlopen(urllib.request.Request(target, method="HEAD"), timeout=15).close()
        except (urllib.error.URLError, OSError) as exc:
            raise NxError(f"the mirror does not serve Nuxeo {args.nuxeo_version}'s {what} ({target}: "
                          f"{getattr(exc, 'code', None) or getattr(exc, 'reason', exc)})",
                          f"put the {what} on the mirror first; no node was touched") from None
    extravars: dict = dict(target_vars)
    playbook = "upgrade_nuxeo.yml" if mode == "rolling" else "upgrade_nuxeo_full_stop.yml"
    from nxprovision.model.versions import NuxeoVersion

    before, after = NuxeoVersion.parse(current), NuxeoVersion.parse(args.nuxeo_version)
    lts_jump = mode == "full-stop" and before is not None and after is not None and before.lts != after.lts
    if lts_jump and not args.no_backup and not cluster.derived.get("backup", {}).get("enabled"):
        _no_backup_refusal()
    if lts_jump:
        # the new LTS's index settings and mappings apply to a new index only (doc.nuxeo.com, upgrade notes)
        extravars["nx_upgrade_reindex"] = True
        print(f"upgrade: LTS {before.lts} -> {after.lts}: "
              + ("a full backup first, then " if not args.no_backup else "no backup first (--no-backup), then ")
              + "every node stopped, upgraded and started; once every node serves, the repository is reindexed")
        if not args.no_backup:
            code, backup_id = _take_backup(args, cluster, vpf, secrets, "full")
            if code != 0:
                print(f"upgrade: stopped before touching any Nuxeo node: the backup {backup_id} failed (above)")
                return code
            print(f"upgrade: backup {backup_id} taken; `nxprovision restore --backup {backup_id}` (with the "
                  f"inventory's nuxeo_version back at {current}) goes back to it")
    if current == args.nuxeo_version:
        print(f"upgrade: resuming to {current} ({mode}): nodes that already run it are not rolled again")
    else:
        print(f"upgrade: {current} -> {args.nuxeo_version} ({mode}; nodes that already run it are not rolled again)")
    code = _run(args, playbook, "upgrade", vpf, secrets, extravars=extravars)
    if code == 0:
        where = _set_inventory_version(Path(args.inventory), args.nuxeo_version)
        if where:
            print(f"recorded nuxeo_version {args.nuxeo_version} in {where}")
        else:
            print(f"set nuxeo_version: '{args.nuxeo_version}' in the inventory, or the next deploy goes back")
    return code


def _backup_enabled(cluster) -> dict:
    b = cluster.derived.get("backup", {})
    if not b.get("enabled"):
        raise NxError("this cluster has no backups configured: they need a PostgreSQL database, an S3 endpoint and "
                      "pgbackrest_enabled (the default)", "deploy the pgbackrest role (nxprovision deploy) first")
    return b


@changing_verb("backup", mid_rotation_ok=True)
def cmd_backup(args: argparse.Namespace, prepared: Prepared) -> int:
    cluster, vpf, secrets = prepared
    return _take_backup(args, cluster, vpf, secrets, args.type)[0]


def _take_backup(args: argparse.Namespace, cluster, vpf, secrets, kind: str) -> tuple[int, str]:
    """Run backup.yml (the database, then the binaries, then the audit index); its exit code and backup id."""
    import json
    import time as _time

    b = _backup_enabled(cluster)
    backup_id = _time.strftime("%Y%m%dT%H%M%SZ", _time.gmtime())
    records = _records(args)
    records.mkdir(mode=0o700, parents=True, exist_ok=True)
    print(f"backup {backup_id}: database ({b['tool']} {kind}, stanza {b['stanza']}), then binaries "
          f"({b['source_bucket']} -> {b['bucket']}/{b['binaries_prefix']}), then the audit index")
    code = _run(args, "backup.yml", "backup", vpf, secrets,
                extravars={"nx_backup_id": backup_id, "nx_backup_type": kind,
                           "nx_backup_record_dir": str(records.resolve())})
    record = records / f"{backup_id}.json"
    if code == 0 and record.exists():
        m = json.loads(record.read_text())
        audit = m.get("audit", {})
        print(f"backup {backup_id}: database {m['database']['type']} {m['database']['label']}; binaries "
              f"{m['binaries']['count']} objects, {m['binaries']['bytes']} bytes; audit {audit.get('status')}"
              + (f" ({audit.get('reason')})" if audit.get("status") == "skipped" else ""))
        print(f"manifest: {record} (and {b['bucket']}/{b['manifests_prefix']}{backup_id}.json)")
    return code, backup_id


def _no_backup_refusal() -> None:
    raise NxError("an upgrade to another LTS starts with a full backup, and this cluster has none configured "
                  "(backups need a PostgreSQL database, an S3 endpoint and pgbackrest_enabled); no host was touched",
                  "configure backups and deploy, or pass --no-backup if you hold a backup of your own")


def _refuse_invalid_target(args: argparse.Namespace, extravars: dict) -> None:
    """The inventory as it will be after the upgrade (the new version and packages) must pass every rule (Java and
    OS of each node, search and audit packages, Kafka mode, ...): refused before any host is touched."""
    from nxprovision.rules import run_rules

    errors = [f for f in run_rules(_cluster_as_run(args, extravars)[1]) if f.severity == "error"]
    for f in errors:
        sys.stderr.write(f.line() + "\n")
    if errors:
        raise NxError(f"upgrade to Nuxeo {args.nuxeo_version} refused: with it, the inventory breaks "
                      f"{len(errors)} rule(s) above; no host was touched",
                      "fix those settings in the inventory (for Nuxeo's new version), then run the upgrade again")


def _records(args: argparse.Namespace) -> Path:
    """The inventory's backup records, the former folder's moved in first."""
    from nxprovision import backups

    moved = backups.migrate(Path(args.inventory))
    if moved:
        print(f"note: {len(moved)} backup record(s) moved to {backups.records_dir(Path(args.inventory))} (the "
              "former runs/backups folder was read by Ansible as part of the inventory)")
    return backups.records_dir(Path(args.inventory))


def restore_database_steps(cluster) -> str:
    """How playbooks/restore.yml restores this cluster's database, in one line for the operator."""
    db = cluster.derived["db"]
    if db.get("manager") == "patroni":
        return (f"Patroni stops on every database host, the cluster leaves etcd, {db['patroni']['bootstrap_host']} "
                "bootstraps it again from the backup (pgBackRest) and the other members clone it")
    replicas = " and the replicas are cloned again" if db.get("replicas") else ""
    return f"the database is restored on {db['primary']} (pgBackRest){replicas}"


def cmd_restore(args: argparse.Namespace) -> int:
    """The confirmation comes first: without it nothing is read beyond the inventory, and no lock is taken."""
    from nxprovision import backups

    if args.dry_run:
        return _restore_dry_run(args)

    def name() -> str:
        from nxprovision.inventory import load_inventory
        from nxprovision.model.cluster import build_cluster

        return str(build_cluster(load_inventory(Path(args.inventory), args.vault_password_file))
                   .settings.get("nx_cluster_name"))

    backups.confirm_restore(args.yes, name, lambda: args.backup or backups.latest(Path(args.inventory)) or "?")
    return _restore(args)


def _restore_target(args: argparse.Namespace, cluster) -> str:
    from nxprovision import backups

    _backup_enabled(cluster)
    backup_id = args.backup or backups.latest(Path(args.inventory))
    if not backup_id:
        raise NxError(f"no backup recorded in {backups.records_dir(Path(args.inventory))}",
                      "pass --backup ID (a manifests/<ID>.json of the backup bucket)")
    return str(backup_id)


def _restore_dry_run(args: argparse.Namespace) -> int:
    from nxprovision import backups

    cluster, _vpf, _secrets = _validated(args, changing=False)
    backup_id = _restore_target(args, cluster)
    print(f"restore {backup_id} (dry run: nothing is touched); the steps, in order (the run stops at the first "
          "failed check, before any service stops):")
    label = backups.recorded_label(Path(args.inventory), backup_id)
    for i, step in enumerate(backups.restore_steps(cluster, backup_id, "<time of the run>", label), 1):
        print(f"{i}. {step}")
    return 0


@changing_verb("restore")
def _restore(args: argparse.Namespace, prepared: Prepared) -> int:
    import json
    import time as _time

    from nxprovision import backups

    cluster, vpf, secrets = prepared
    records = _records(args)
    backup_id = _restore_target(args, cluster)
    stamp = _time.strftime("%Y%m%dT%H%M%SZ", _time.gmtime())
    print(f"restore {backup_id}: the backup is verified first (manifest, binaries, database set, audit snapshot); "
          f"then every Nuxeo node stops (drained first); {restore_database_steps(cluster)}; then the binaries, then "
          "the audit index (when the backup holds its snapshot) are restored; Nuxeo starts again")
    code = _run(args, "restore.yml", "restore", vpf, secrets,
                extravars={"nx_backup_id": backup_id, "nx_restore_stamp": stamp})
    record = records / f"{backup_id}.json"
    if code == 0:
        print(f"restore {backup_id}: done; Nuxeo serves again")
        if record.exists():
            audit = json.loads(record.read_text()).get("audit", {})
            if audit.get("status") != "snapshot":
                print(f"note: the audit index was not restored: {audit.get('reason', 'not in the backup')}")
        print("note: the search index holds what it held before the restore: reindex the repository "
              "(Elasticsearch.BulkIndex) when searches must see the restored documents")
    print(f"note: {backups.aside_note(cluster, stamp)}" if code == 0 else
          f"note: data directories already moved aside by this run (if it got that far) are "
          f"{backups.aside_name(str(cluster.derived['backup']['data_dir']), stamp)} on the database hosts")
    return code


def cmd_support_bundle(args: argparse.Namespace) -> int:
    import shutil
    import time as _time

    from nxprovision import bundle
    from nxprovision.plan import make_plan, plan_to_dict
    from nxprovision.status import as_json, collect

    cluster, vpf, secrets = _validated(args, changing=False)
    work = bundle.workdir()
    try:
        result = run_playbook("support_bundle.yml", Path(args.inventory), verb="support-bundle",
                              vault_password_file=vpf, secrets=secrets, progress=args.progress,
                              extravars={"nx_bundle_dir": str(work / "hosts")}, options=ansible_options(args))
        (work / "hosts").mkdir(exist_ok=True)
        extra = {"status": as_json(collect(cluster)), "plan": plan_to_dict(make_plan(cluster)),
                 "run": {"rc": result.rc, "recap": result.recap, "records": str(result.run_dir)}}
        out = Path(args.output or f"nxprovision-support-{_time.strftime('%Y%m%d-%H%M%S')}.tar.gz")
        bundle.build(work / "hosts", extra, secrets, out)
        if result.rc == 0:
            print(f"support bundle: {out} (secrets redacted)")
            return 0
        print(f"support bundle: {out} (secrets redacted), incomplete: some hosts could not be read "
              f"(records in {result.run_dir})")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cmd_status(args: argparse.Namespace) -> int:
    from nxprovision.inventory import find_vault_password_file
    from nxprovision.output import dump_json, table
    from nxprovision.status import apply_probes, as_json, collect, collect_via_hosts, probe_hosts

    view, cluster = _cluster_as_run(args)
    if getattr(args, "from_prometheus", False):
        from nxprovision import promstatus

        rows = promstatus.collect(cluster)
    elif args.quick and not args.via_hosts:
        rows = collect(cluster)
    else:
        from concurrent.futures import ThreadPoolExecutor

        secrets = [str(v) for h in view.hostvars.values() for k, v in h.items() if k in masked_names()]
        vpf = find_vault_password_file(Path(args.inventory), args.vault_password_file)
        if args.via_hosts:
            rows = collect_via_hosts(cluster, Path(args.inventory), vpf, secrets, ansible_options(args), args.quick)
        else:
            # the SSH probe (a playbook run, seconds) and the outside probes run side by side
            with ThreadPoolExecutor(max_workers=1) as pool:
                probed = pool.submit(probe_hosts, cluster, Path(args.inventory), vpf, secrets, ansible_options(args))
                rows = collect(cluster)
                found = probed.result()
            apply_probes(cluster, rows, found)
    unhealthy = [r for r in rows if not r.healthy]
    from nxprovision import removed

    gone = removed.still_listed(Path(args.inventory), set(cluster.hosts))
    if args.json:
        dump_json({"url": cluster.settings.get("nx_public_url"), "healthy": not unhealthy, "components": as_json(rows),
                   "removed_hosts": gone})
    else:
        print(f"Cluster {cluster.settings.get('nx_cluster_name')} ({cluster.architecture}) at "
              f"{cluster.settings.get('nx_public_url')}")
        table(["host", "component", "address", "health", "version", "LB", "detail"],
              [[r.host, r.component, r.address, r.health.upper(), r.version, r.lb_state,
                r.detail + (f" [{r.notice}]" if r.notice else "")] for r in rows])
        print(f"{len(rows) - len(unhealthy)}/{len(rows)} healthy")
        for h, when in sorted(gone.items()):
            print(f"note: {h} was removed with remove-node ({when}); delete it from the inventory")
    return 1 if unhealthy else 0


def cmd_runs(args: argparse.Namespace) -> int:
    from nxprovision.output import dump_json, table
    from nxprovision.runner import runs_dir
    from nxprovision.runrecords import read_runs

    base = runs_dir()
    runs = read_runs(base)
    rows = [r.to_dict() for r in runs]
    if args.json:
        dump_json(rows)
    elif not rows:
        print(f"no runs recorded in {base}")
    else:
        table(["run", "verb", "status", "hosts", "changed", "failed", "inventory"],
              [[r["id"], r["verb"], r["status"], r["hosts"], r["changed"], ",".join(r["failed_hosts"]),
                r["inventory"]] for r in rows])
        print(f"records in {base}")
    for problem in (p for r in runs for p in r.problems):
        sys.stderr.write(f"nxprovision: warning: {problem}; its row shows what could be read\n")
    return 0


@changing_verb("secrets rotate", mid_rotation_ok=True)
def cmd_secrets_rotate(args: argparse.Namespace, prepared: Prepared) -> int:
    from nxprovision import rotation as rot
    from nxprovision.secrets import load_secrets_file, read_vault_password

    cluster, vpf, secrets = prepared
    rotation = rot.resolve(args.name, cluster)
    inv = Path(args.inventory)
    if vpf is None:
        raise NxError(f"{inv}: no vault password file", "pass --vault-password-file (the vault is rewritten)")
    path = rot.secrets_path(inv)
    password = read_vault_password(vpf)
    was_pending = rot.pending(load_secrets_file(path, password), rotation)
    steps = rot.plan(rotation, cluster)
    if args.plan:
        print(f"rotation of {rotation.title}" + (" (pending: a run resumes it)" if was_pending else ""))
        for i, s in enumerate(steps, 1):
            print(f"{i}. [{s.where}{': ' + ', '.join(s.hosts) if s.hosts else ''}] {s.what}")
        return 0
    if args.rollback:
        rot.rollback(path, password, rotation)
        print(f"rollback of {rotation.title}: the previous value is current again in {path}; applying it")
    else:
        state = rot.begin(path, password, rotation)
        if state == "resumed":
            print(f"resuming the pending rotation of {rotation.title} with the new value already in {path}")
        else:
            print(f"new {', '.join(rotation.names)} written to {path} (vault-encrypted); the previous value is kept "
                  "until the rotation is applied")
    # the mask learns the values written just now
    values = load_secrets_file(path, password)
    names = rot.masked_names()
    secrets = secrets + [str(v) for k, v in values.items() if k in names]
    for step in rotation.steps:
        code = _run(args, rot.PLAYBOOK, f"rotate-{rotation.key}", vpf, secrets,
                    extravars={"nx_rotate_secret": rotation.key, "nx_rotate_step": step})
        if code != 0:
            kept = ", ".join(rot.previous_name(n) for n in rotation.names)
            print(f"nxprovision: the rotation of {rotation.title} is PENDING: the vault holds the new value and the "
                  f"previous one ({kept}). Fix the cause above, then run the same command again to resume with the "
                  f"same new value, or add --rollback to go back to the previous value.")
            return code
    rot.finish(path, password, rotation)
    print(f"rotation of {rotation.title} done: every Nuxeo node uses the new value; the previous value is no longer "
          f"accepted and left the vault")
    return 0


def cmd_trust_hosts(args: argparse.Namespace) -> int:
    """Record the hosts' SSH keys beside the inventory after the operator compared their fingerprints."""
    from nxprovision import hostkeys
    from nxprovision.inventory import load_inventory

    inv = Path(args.inventory)
    view = load_inventory(inv, args.vault_password_file)
    everyone = list(view.groups.get("all") or view.hostvars)
    unknown = [h for h in args.hosts if h not in everyone]
    if unknown:
        raise NxError(f"{', '.join(unknown)} not in the inventory {inv}",
                      f"name hosts of the inventory ({', '.join(everyone)}), or none for all of them")
    path = hostkeys.known_hosts_path(inv)
    targets = hostkeys.targets_of(view.hostvars, list(dict.fromkeys(args.hosts)) or everyone)
    plan = hostkeys.plan_trust(path, targets, hostkeys.scan_all(targets))
    for t in plan.already:
        print(f"{t.host} ({t.where}): already trusted in {path}")
    for t, (known, offered) in plan.changed.items():
        print(f"{t.host} ({t.where}): NOT trusted: {hostkeys.changed_message(path, inv, t, known, offered)}",
              file=sys.stderr)
    for t in plan.silent:
        print(f"{t.host} ({t.where}): no SSH answer (is the host up, is sshd listening on port {t.port}?)",
              file=sys.stderr)
    if plan.new:
        print("Compare these fingerprints with the hosts' own (on each host's console: "
              "`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`):")
        for t, keys in plan.new.items():
            for k in keys:
                print(f"  {t.host} ({t.where})  {k.kind}  {k.fingerprint}")
        if not args.yes:
            if not sys.stdin.isatty():
                raise NxError("no terminal to confirm the fingerprints above; nothing was recorded",
                              "compare them with the hosts' own, then run again with --yes")
            answer = input(f"Trust these {len(plan.new)} host(s) and record their keys in {path}? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing recorded")
                return 1
        for t, keys in plan.new.items():
            hostkeys.append(path, t, keys)
            print(f"{t.host} ({t.where}): trusted, {len(keys)} key(s) recorded in {path}")
    return 1 if plan.changed or plan.silent else 0


ALLOW_DOWNGRADE_HELP = ("install the inventory's nuxeo_version even on nodes that run a newer one (refused otherwise, "
                        "naming them)")


def cmd_prechecks(args: argparse.Namespace) -> int:
    """Read every host (nothing changes) and print one table of what it offers against what it needs."""
    import contextlib
    import io

    from nxprovision import hostkeys, prechecks
    from nxprovision.output import dump_json, table

    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        cluster, vpf, secrets = _validated(args, changing=False)
    inv = Path(args.inventory)
    rows = prechecks.placeholder_rows(cluster)
    hosts = list(cluster.hosts)
    known = hostkeys.known_hosts_path(inv)
    over_ssh = [h for h in hosts if str((cluster.view.hostvars.get(h) or {}).get("ansible_connection") or "ssh")
                in ("ssh", "smart", "ansible.builtin.ssh")]
    untrusted = {t.host for t in hostkeys.targets_of(cluster.view.hostvars, over_ssh)
                 if not hostkeys.recorded(known, t).keys}
    for h in sorted(untrusted):
        rows.append(prechecks.Row(h, "ssh", prechecks.ERROR, f"no SSH host key recorded in {known}: not connected",
                                  f"nxprovision trust-hosts -i {args.inventory} {h}"))
    reached = [h for h in hosts if h not in untrusted]
    found: dict[str, list[prechecks.Row]] = {}

    def collect(event: dict) -> None:
        data = event.get("event_data") or {}
        host = str(data.get("host") or "")
        kind = event.get("event")
        if kind == "runner_on_unreachable":
            found.setdefault(host, prechecks.failed_host_rows(host, str((data.get("res") or {}).get("msg") or ""),
                                                              unreachable=True))
        elif kind in ("runner_on_ok", "runner_on_failed") and data.get("task") == "Read and judge the host":
            res = data.get("res") or {}
            if res.get("rows"):
                found[host] = [prechecks.Row(**r) for r in res["rows"]]
            else:
                found[host] = prechecks.failed_host_rows(host, str(res.get("msg") or ""), unreachable=False)

    run_dir = None
    if reached:
        if not args.json:
            print(f"prechecks: reading {len(reached)} host(s) (nothing is changed) ...", flush=True)
        # check mode: nothing may change, and a failed check is no failed service whose logs to fetch
        result = run_playbook("prechecks.yml", inv, verb="prechecks", vault_password_file=vpf, secrets=secrets,
                              limit=",".join(reached), check=True, display=collect, out=io.StringIO(),
                              options=ansible_options(args))
        run_dir = result.run_dir
        for h in reached:
            rows += found.get(h) or [prechecks.Row(h, "ssh", prechecks.ERROR, "no answer from the run",
                                                   f"see the run's records in {run_dir}")]
    code = prechecks.exit_code(rows)
    if args.json:
        dump_json({"inventory": args.inventory, "ok": code == 0, "rows": [r.to_dict() for r in rows],
                   "records": str(run_dir) if run_dir else None})
        return code
    shown = rows if args.all else [r for r in rows if r.status != prechecks.OK]
    if shown:
        table(["host", "check", "status", "detail", "fix"],
              [[r.host, r.check, r.status.upper(), r.detail, r.fix] for r in shown])
    errors = sum(r.status == prechecks.ERROR for r in rows)
    warnings = sum(r.status == prechecks.WARN for r in rows)
    print(f"prechecks: {len(hosts)} host(s), {len(rows)} check(s): {errors} error(s), {warnings} warning(s)"
          + ("" if args.all else " (OK rows hidden: --all shows them)")
          + (f"; records in {run_dir}" if run_dir else ""))
    return code


def expected_conf(cluster) -> dict[str, dict[str, str]]:
    """Per Nuxeo node, the nuxeo.conf keys the model writes, secret values masked as nx_conf_read masks them."""
    from nxprovision.drift import MASK, SECRET_KEY

    return {n.host: {c.key: MASK if c.value and (c.secret or SECRET_KEY.search(c.key)) else c.value
                     for c in n.conf} for n in cluster.nuxeo_nodes}


def cmd_drift(args: argparse.Namespace) -> int:
    """What a deploy would change on each host (check mode with diff: nothing is written) and what differs
    between the Nuxeo nodes. Exit 0 clean, 1 drift, 2 invalid inventory."""
    import contextlib
    import io

    from nxprovision import drift
    from nxprovision.output import dump_json

    try:
        with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
            cluster, vpf, secrets = _validated(args, changing=False)
    except NxError as exc:
        sys.stderr.write(f"nxprovision: error: {exc}\n")
        if args.json:
            dump_json({"inventory": args.inventory, "clean": False, "error": exc.message})
        return EXIT_INVALID
    collector = drift.Collector()
    if not args.json:
        print(f"drift: reading {len(cluster.hosts)} host(s) in check mode (nothing is changed) ...", flush=True)
    result = run_playbook("drift.yml", Path(args.inventory), verb="drift", vault_password_file=vpf, secrets=secrets,
                          limit=args.limit, check=True, diff=True, display=collector, out=io.StringIO(),
                          verbosity=args.verbose)
    findings = collector.findings
    nodes = drift.compare_nodes(collector.readings, expected_conf(cluster))
    if result.rc != 0 and not any(f.kind in ("failed", "unreachable") for f in findings):
        findings.append(drift.Finding("(run)", "failed", "", detail=f"the check run failed (rc={result.rc})"))
    code = drift.exit_code(findings, nodes)
    if args.json:
        dump_json({"inventory": args.inventory, "clean": code == 0,
                   "hosts": {h: [f.to_dict() for f in findings if f.host == h] for h in sorted({f.host for f in
                                                                                                 findings})},
                   "nodes": [n.to_dict() for n in nodes], "records": str(result.run_dir)})
        return code
    for line in drift.report_lines(findings, nodes):
        print(line)
    if code:
        hosts = sorted({f.host for f in findings} | {h for n in nodes for h in n.values})
        print(f"drift: {len(findings)} difference(s) from the model on {len({f.host for f in findings})} host(s), "
              f"{len(nodes)} between Nuxeo nodes ({', '.join(hosts)}); `nxprovision deploy` converges them; "
              f"records in {result.run_dir}")
    else:
        print(f"drift: none, every host is as the model writes it; records in {result.run_dir}")
    return code


LOCK_TASK = "Read the packages and their versions"


def cmd_lock(args: argparse.Namespace) -> int:
    """Write the version lock from what the hosts run (nothing on them changes). Exit 0 written or up to date,
    1 when the hosts differ from an existing lock and --update was not given (the differences are printed)."""
    import io

    from nxprovision import versionlock
    from nxprovision.inventory import inventory_dir
    from nxprovision.model.cluster import components_of

    cluster, vpf, secrets = _validated(args, changing=False)
    inv = Path(args.inventory)
    path = versionlock.path_of(inventory_dir(inv))
    old = versionlock.load(path)
    readings: dict[str, versionlock.Reading] = {}
    failed: dict[str, str] = {}

    def collect(event: dict) -> None:
        data = event.get("event_data") or {}
        host, res = str(data.get("host") or ""), data.get("res") or {}
        kind = event.get("event")
        if kind in ("runner_on_unreachable", "runner_on_failed"):
            failed[host] = str(res.get("msg") or "failed").splitlines()[0]
        elif kind == "runner_on_ok" and data.get("task") == LOCK_TASK and host in cluster.hosts:
            readings[host] = versionlock.Reading(host, str(res.get("release") or ""),
                                                 versionlock.profile(components_of(cluster, host)),
                                                 {str(k): str(v) for k, v in (res.get("packages") or {}).items()})

    print(f"lock: reading the packages of {len(cluster.hosts)} host(s) (nothing is changed) ...", flush=True)
    result = run_playbook("lock.yml", inv, verb="lock", vault_password_file=vpf, secrets=secrets, check=True,
                          display=collect, out=io.StringIO(), options=ansible_options(args))
    unread = sorted(set(cluster.hosts) - set(readings))
    if unread:
        why = "; ".join(f"{h}: {failed.get(h, 'no answer')}" for h in unread)
        raise NxError(f"could not read {len(unread)} host(s), so no lock was written: {why}",
                      f"make them reachable (`nxprovision prechecks -i {args.inventory}`), then run lock again; "
                      f"records in {result.run_dir}")
    lock, conflicts = versionlock.build(readings.values())
    if conflicts:
        shown = "; ".join(c.text() for c in conflicts[:8]) + (" ..." if len(conflicts) > 8 else "")
        raise NxError(f"hosts with the same components run different versions of {len(conflicts)} package(s), "
                      f"which one lock cannot hold; nothing written: {shown}",
                      "bring them to one version (upgrade the older hosts' packages, or rebuild one), then run "
                      "lock again")
    count = len(versionlock.flat(lock))
    what = (f"{count} package version(s) of {len(readings)} host(s), {len(lock['releases'])} Debian release(s)")
    if old is None:
        versionlock.write(path, lock)
        print(f"lock: wrote {path}: {what}. Commit it with the inventory: every deploy now holds the hosts to "
              "these versions and refuses, naming them, versions a host cannot get.")
        return 0
    diff = versionlock.changes(old, lock)
    if not diff:
        print(f"lock: {path} is up to date ({what})")
        return 0
    for line in diff:
        print(f"  {line}")
    if not args.update:
        print(f"lock: the hosts differ from {path} in {len(diff)} place(s) (above); nothing written. "
              f"`nxprovision lock -i {args.inventory} --update` takes what the hosts run.")
        return 1
    versionlock.write(path, lock)
    print(f"lock: updated {path}: {len(diff)} change(s) (above), {what}. Commit it with the inventory.")
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    from nxprovision.adoption.command import register as register_adopt

    register_adopt(sub)
    sec = sub.add_parser("secrets", help="secret operations (rotate)")
    sec_sub = sec.add_subparsers(dest="secrets_command", metavar="ACTION", required=True)
    rt = sec_sub.add_parser("rotate", help="new value for a secret, applied without stopping users (db_password, "
                                           "s3_keys: a rolling restart; nuxeo_admin_password: no restart)")
    run_args(rt)
    rt.add_argument("name", metavar="NAME", help="db_password | s3_keys | nuxeo_admin_password (or "
                                                 "nx_secret_db_password, nx_secret_s3_access_key, "
                                                 "nx_secret_s3_secret_key, nx_secret_nuxeo_admin_password)")
    rt.add_argument("--rollback", action="store_true", help="go back to the previous value of a pending rotation")
    rt.add_argument("--plan", action="store_true", help="print the steps only; touch nothing")
    rt.set_defaults(func=cmd_secrets_rotate)

    r = sub.add_parser("restart", help="rolling restart of one component, one node at a time, health-gated")
    run_args(r)
    r.add_argument("--component", default="nuxeo", choices=["nuxeo", "opensearch", "kafka", "postgresql", "haproxy"])
    r.set_defaults(func=cmd_restart)

    ri = sub.add_parser("reindex", help="rebuild the repository's search index from the database (Nuxeo's "
                                        "management API, one node, with its progress)")
    run_args(ri)
    ri.set_defaults(func=cmd_reindex)

    a = sub.add_parser("add-node", help="provision hosts newly added to the inventory, touching no other node")
    run_args(a)
    a.add_argument("hosts", nargs="+", metavar="HOST")
    a.add_argument("--allow-downgrade", action="store_true", help=ALLOW_DOWNGRADE_HELP)
    a.set_defaults(func=cmd_add_node)

    rm = sub.add_parser("remove-node", help="drain, stop and take a host out of the cluster")
    run_args(rm)
    rm.add_argument("host", metavar="HOST")
    rm.add_argument("--force", action="store_true",
                    help="go below the architecture's minimums (never past the last copy of data or a quorum)")
    rm.add_argument("--unreachable", action="store_true",
                    help="the host is dead: reconfigure the others without contacting it")
    rm.set_defaults(func=cmd_remove_node)

    u = sub.add_parser("upgrade", help="rolling upgrade of the Nuxeo nodes to another version")
    run_args(u)
    u.add_argument("--nuxeo-version", required=True)
    u.add_argument("--packages", help="comma-separated package list to install with the new version")
    u.add_argument("--full-stop", action="store_true", help="stop every node, upgrade, start (LTS jumps)")
    u.add_argument("--no-backup", action="store_true",
                   help="to another LTS: skip the full backup taken first (you hold one of your own)")
    u.set_defaults(func=cmd_upgrade)

    bk = sub.add_parser("backup", help="back up the database, then the binaries, then the audit index")
    run_args(bk)
    bk.add_argument("--type", choices=["incr", "full", "diff"], default="incr",
                    help="pgBackRest backup type (incr becomes full when there is no full backup yet)")
    bk.set_defaults(func=cmd_backup)

    rt = sub.add_parser("restore", help="verify a backup, stop Nuxeo, restore the database (the former data moved "
                                        "aside), the binaries and the audit index, start (asks first, or --yes)")
    run_args(rt)
    rt.add_argument("--backup", metavar="ID", help="backup id (default: the latest recorded beside the inventory)")
    from nxprovision.backups import add_restore_args

    add_restore_args(rt)
    rt.set_defaults(func=cmd_restore)

    sb = sub.add_parser("support-bundle", help="logs, configs and status of every host in one redacted archive")
    run_args(sb)
    sb.add_argument("-o", "--output", help="archive path (default nxprovision-support-<time>.tar.gz)")
    sb.set_defaults(func=cmd_support_bundle)

    rs = sub.add_parser("runs", help="list the recorded runs (command, events, summary per run)")
    rs.add_argument("--json", action="store_true")
    rs.set_defaults(func=cmd_runs)

    st = sub.add_parser("status", help="live health of every component (exit 1 when something is unhealthy)")
    inventory_args(st)
    ansible_args(st)
    st.add_argument("--json", action="store_true")
    st.add_argument(
        "--quick",
        action="store_true",
        help="outside probes only (HTTP/TCP); skip the SSH probe of database roles, replica lag and "
        "Kafka under-replicated partitions",
    )
    where = st.add_mutually_exclusive_group()
    where.add_argument("--via-hosts", action="store_true",
                       help="run the same probes from the cluster's own hosts, over SSH (the inventory's bastion or "
                       "--ssh-common-args apply), for a cluster the controller reaches only through SSH; with "
                       "--quick, only those probes")
    where.add_argument("--from-prometheus", action="store_true",
                       help="read the fleet from the monitoring host's Prometheus (HTTP API, TLS, basic auth): "
                       "no SSH, no probe per host")
    st.set_defaults(func=cmd_status)

    th = sub.add_parser("trust-hosts", help="record the hosts' SSH keys beside the inventory, after showing their "
                                            "fingerprints (once per host; every run checks them)")
    inventory_args(th)
    th.add_argument("hosts", nargs="*", metavar="HOST", help="hosts to trust (default: every host of the inventory)")
    th.add_argument("--yes", action="store_true", help="record without asking (after checking the fingerprints)")
    th.set_defaults(func=cmd_trust_hosts)

    d = sub.add_parser("deploy", help="validate, then converge the whole cluster (playbooks/site.yml)")
    run_args(d)
    d.add_argument("--limit", help="Ansible host pattern (refused if it cuts a quorum group, unless --force)")
    d.add_argument("--force", action="store_true", help="accept a --limit that selects part of a quorum group")
    d.add_argument("--tags")
    d.add_argument("--skip-tags")
    d.add_argument("--check", action="store_true", help="dry run (Ansible check mode)")
    d.add_argument("--diff", action="store_true", help="show file differences")
    d.add_argument("--allow-downgrade", action="store_true", help=ALLOW_DOWNGRADE_HELP)
    d.set_defaults(func=cmd_deploy)

    dr = sub.add_parser("drift", help="what a deploy would change on each host (unified diffs, secrets masked) and "
                                      "what differs between Nuxeo nodes, changing nothing; exit 1 on drift")
    inventory_args(dr)
    dr.add_argument("--json", action="store_true")
    dr.add_argument("--limit", help="Ansible host pattern")
    dr.add_argument("-v", "--verbose", action="count", default=0, help="pass verbosity to Ansible")
    dr.set_defaults(func=cmd_drift)

    pc = sub.add_parser("prechecks", help="read every host (changing nothing): SSH, become, OS, CPU, memory, disk, "
                                          "ports, clock, name resolution, mirror; exit 1 on errors")
    inventory_args(pc)
    ansible_args(pc)
    pc.add_argument("--json", action="store_true")
    pc.add_argument("--all", action="store_true", help="show the passing checks too")
    pc.set_defaults(func=cmd_prechecks)

    lk = sub.add_parser("lock", help="write the version lock beside the inventory from what the hosts run (apt "
                                     "pins every deploy holds them to); exit 1 when they differ from it")
    inventory_args(lk)
    ansible_args(lk)
    lk.add_argument("--update", action="store_true", help="rewrite an existing lock with what the hosts run now "
                                                          "(the changes are shown either way)")
    lk.set_defaults(func=cmd_lock)
