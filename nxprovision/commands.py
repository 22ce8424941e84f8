"""Verbs that run playbooks: deploy (and, as they land, the day-2 operations)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nxprovision.cliargs import inventory_args, run_args
from nxprovision.errors import NxError
from nxprovision.runner import format_recap, run_playbook, unreachable_cause
from nxprovision.secrets import SECRET_NAMES


def _validated(args: argparse.Namespace):
    from nxprovision.inventory import find_vault_password_file, load_inventory
    from nxprovision.model.cluster import build_cluster
    from nxprovision.rules import run_rules

    inv = Path(args.inventory)
    view = load_inventory(inv, args.vault_password_file)
    cluster = build_cluster(view)
    findings = run_rules(cluster)
    for f in findings:
        (sys.stderr if f.severity == "error" else sys.stdout).write(f.line() + "\n")
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise NxError(f"{inv}: invalid inventory ({len(errors)} error(s)); no host was touched",
                      "fix the lines above and run again")
    secrets = [str(v) for h in view.hostvars.values() for k, v in h.items() if k in SECRET_NAMES]
    return cluster, find_vault_password_file(inv, args.vault_password_file), secrets


def report(result, out=sys.stdout) -> int:
    if result.recap:
        out.write(format_recap(result.recap) + "\n")
    if result.rc != 0:
        seen = set()
        for f in result.failures:
            if (f.host, f.task) in seen:
                continue
            seen.add((f.host, f.task))
            what = "unreachable" if f.unreachable else "failed"
            role = f"{f.role} : " if f.role else ""
            first = unreachable_cause(f.message) if f.unreachable else (f.message.splitlines() or [""])[0]
            out.write(f"nxprovision: {f.host} {what} at task '{role}{f.task}': {first}\n")
        out.write(f"nxprovision: run failed (rc={result.rc}); records in {result.run_dir}\n")
        return 1
    out.write(f"nxprovision: run ok, {result.changed_total} change(s); records in {result.run_dir}\n")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from nxprovision.limits import check_limit

    cluster, vpf, secrets = _validated(args)
    for problem in check_limit(cluster, Path(args.inventory), args.limit, args.force):
        print(f"WARNING --force: {problem}")
    db = cluster.derived.get("db", {})
    if db.get("standin_single_node"):
        others = ", ".join(h for h in db.get("hosts", []) if h not in db.get("servers", []))
        print(f"note: MongoDB stand-in: single node, no replication: mongod runs on {db['primary']} only "
              f"(replica set {db.get('replica_set')} of one member); {others} run no MongoDB")
    result = run_playbook(
        "site.yml", Path(args.inventory), verb="deploy", vault_password_file=vpf, secrets=secrets,
        limit=args.limit, tags=args.tags, skip_tags=args.skip_tags, check=args.check, diff=args.diff,
        verbosity=args.verbose, progress=args.progress,
    )
    return report(result)


def _run(args: argparse.Namespace, playbook: str, verb: str, vpf, secrets, **kw) -> int:
    result = run_playbook(playbook, Path(args.inventory), verb=verb, vault_password_file=vpf, secrets=secrets,
                          verbosity=getattr(args, "verbose", 0), progress=getattr(args, "progress", "auto"), **kw)
    return report(result)


def cmd_restart(args: argparse.Namespace) -> int:
    cluster, vpf, secrets = _validated(args)
    groups = {"nuxeo": cluster.nuxeo_nodes, "opensearch": cluster.search_hosts, "kafka": cluster.kafka_brokers,
              "postgresql": cluster.db_hosts if cluster.database == "postgresql" else [],
              "haproxy": cluster.lb_hosts}
    if not groups[args.component]:
        raise NxError(f"this cluster has no {args.component} hosts", "pick a component the inventory has")
    return _run(args, f"restart_{args.component}.yml", f"restart-{args.component}", vpf, secrets)


def cmd_add_node(args: argparse.Namespace) -> int:
    cluster, vpf, secrets = _validated(args)
    unknown = [h for h in args.hosts if h not in cluster.hosts]
    if unknown:
        raise NxError(f"{', '.join(unknown)} not in the inventory",
                      "add the new hosts to their groups in the inventory first, then run add-node")
    from nxprovision.daytwo import add_node_limit

    new = list(dict.fromkeys(args.hosts))
    limit = add_node_limit(cluster, new)
    code = _run(args, "site.yml", "add-node", vpf, secrets, limit=",".join(limit))
    if code == 0:
        for h in new:
            comps = cluster.hosts[h].groups
            if "kafka" in comps:
                print(f"note: {h} is a new Kafka broker. Kafka does not move existing partitions by itself: "
                      "to spread them, generate a plan with `kafka-reassign-partitions.sh --generate` on a broker "
                      "and apply it with `--execute`.")
            if "opensearch" in comps:
                print(f"note: {h} joined the search cluster; shards rebalance by themselves.")
    return code


def cmd_remove_node(args: argparse.Namespace) -> int:
    from nxprovision.daytwo import check_removal

    cluster, vpf, secrets = _validated(args)
    for line in check_removal(cluster, args.host, args.force):
        print(f"WARNING --force: {line}")
    code = _run(args, "remove_node.yml", "remove-node", vpf, secrets, extravars={"nx_remove_host": args.host})
    if code == 0:
        print(f"{args.host} is drained, stopped and out of the load balancers. Now delete it from the inventory "
              f"({args.inventory}); until then a deploy would add it back.")
    return code


def _set_inventory_version(inventory: Path, version: str) -> Path | None:
    """Record the new version where the inventory sets it, keeping the file's comments."""
    import re

    base = inventory if inventory.is_dir() else inventory.parent
    for f in sorted((base / "group_vars").rglob("*.yml")):
        text = f.read_text()
        new, n = re.subn(r"(?m)^nuxeo_version:.*$", f"nuxeo_version: '{version}'", text)
        if n:
            f.write_text(new)
            return f
    return None


def cmd_upgrade(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    from nxprovision.daytwo import check_upgrade
    from nxprovision.model.artifacts import artifact_url

    cluster, vpf, secrets = _validated(args)
    current = str(cluster.settings.get("nuxeo_version"))
    mode = check_upgrade(current, args.nuxeo_version, args.full_stop)
    base = str(cluster.settings.get("nuxeo_download_base_url") or "")
    url = artifact_url(base, "nuxeo", args.nuxeo_version)
    if url.startswith("http"):
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15).close()
        except (urllib.error.URLError, OSError) as exc:
            raise NxError(f"the mirror does not serve Nuxeo {args.nuxeo_version} ({url}: "
                          f"{getattr(exc, 'code', None) or getattr(exc, 'reason', exc)})",
                          "put the distribution on the mirror first; no node was touched") from None
    extravars: dict = {"nuxeo_version": args.nuxeo_version}
    if args.packages:
        extravars["nuxeo_packages"] = [p.strip() for p in args.packages.split(",") if p.strip()]
    playbook = "upgrade_nuxeo.yml" if mode == "rolling" else "upgrade_nuxeo_full_stop.yml"
    print(f"upgrade: {current} -> {args.nuxeo_version} ({mode})")
    code = _run(args, playbook, "upgrade", vpf, secrets, extravars=extravars)
    if code == 0:
        where = _set_inventory_version(Path(args.inventory), args.nuxeo_version)
        if where:
            print(f"recorded nuxeo_version {args.nuxeo_version} in {where}")
        else:
            print(f"set nuxeo_version: '{args.nuxeo_version}' in the inventory, or the next deploy goes back")
    return code


def cmd_support_bundle(args: argparse.Namespace) -> int:
    import shutil
    import time as _time

    from nxprovision import bundle
    from nxprovision.plan import make_plan, plan_to_dict
    from nxprovision.status import as_json, collect

    cluster, vpf, secrets = _validated(args)
    work = bundle.workdir()
    try:
        result = run_playbook("support_bundle.yml", Path(args.inventory), verb="support-bundle",
                              vault_password_file=vpf, secrets=secrets, progress=args.progress,
                              extravars={"nx_bundle_dir": str(work / "hosts")})
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
    from nxprovision.inventory import find_vault_password_file, load_inventory
    from nxprovision.model.cluster import build_cluster
    from nxprovision.output import dump_json, table
    from nxprovision.status import apply_probes, as_json, collect, probe_hosts

    view = load_inventory(Path(args.inventory), args.vault_password_file)
    cluster = build_cluster(view)
    rows = collect(cluster)
    if not args.quick:
        secrets = [str(v) for h in view.hostvars.values() for k, v in h.items() if k in SECRET_NAMES]
        vpf = find_vault_password_file(Path(args.inventory), args.vault_password_file)
        apply_probes(cluster, rows, probe_hosts(cluster, Path(args.inventory), vpf, secrets))
    unhealthy = [r for r in rows if not r.healthy]
    if args.json:
        dump_json({"url": cluster.settings.get("nx_public_url"), "healthy": not unhealthy, "components": as_json(rows)})
    else:
        print(f"Cluster {cluster.settings.get('nx_cluster_name')} ({cluster.architecture}) at "
              f"{cluster.settings.get('nx_public_url')}")
        table(["host", "component", "address", "health", "version", "LB", "stand-in", "detail"],
              [[r.host, r.component, r.address, r.health.upper(), r.version, r.lb_state,
                "yes" if r.standin else "", r.detail] for r in rows])
        print(f"{len(rows) - len(unhealthy)}/{len(rows)} healthy")
    return 1 if unhealthy else 0


def cmd_runs(args: argparse.Namespace) -> int:
    import json

    from nxprovision.output import dump_json, table
    from nxprovision.runner import runs_dir

    base = runs_dir()
    runs = sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name) if base.exists() else []
    rows = []
    for run in runs:
        cmd = json.loads((run / "command.json").read_text()) if (run / "command.json").exists() else {}
        summ = json.loads((run / "summary.json").read_text()) if (run / "summary.json").exists() else {}
        recap = summ.get("recap", {})
        rows.append({"id": run.name, "verb": cmd.get("verb", ""), "inventory": cmd.get("inventory", ""),
                     "limit": cmd.get("limit") or "", "status": summ.get("status", "running or killed"),
                     "rc": summ.get("rc"), "hosts": len(recap),
                     "changed": sum(r.get("changed", 0) for r in recap.values()),
                     "failed_hosts": sorted({f["host"] for f in summ.get("failures", [])}), "path": str(run)})
    if args.json:
        dump_json(rows)
    elif not rows:
        print(f"no runs recorded in {base}")
    else:
        table(["run", "verb", "status", "hosts", "changed", "failed", "inventory"],
              [[r["id"], r["verb"], r["status"], r["hosts"], r["changed"], ",".join(r["failed_hosts"]),
                r["inventory"]] for r in rows])
        print(f"records in {base}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("restart", help="rolling restart of one component, one node at a time, health-gated")
    run_args(r)
    r.add_argument("--component", default="nuxeo", choices=["nuxeo", "opensearch", "kafka", "postgresql", "haproxy"])
    r.set_defaults(func=cmd_restart)

    a = sub.add_parser("add-node", help="provision hosts newly added to the inventory, touching no other node")
    run_args(a)
    a.add_argument("hosts", nargs="+", metavar="HOST")
    a.set_defaults(func=cmd_add_node)

    rm = sub.add_parser("remove-node", help="drain, stop and take a host out of the cluster")
    run_args(rm)
    rm.add_argument("host", metavar="HOST")
    rm.add_argument("--force", action="store_true", help="go below the architecture's minimums")
    rm.set_defaults(func=cmd_remove_node)

    u = sub.add_parser("upgrade", help="rolling upgrade of the Nuxeo nodes to another version")
    run_args(u)
    u.add_argument("--nuxeo-version", required=True)
    u.add_argument("--packages", help="comma-separated package list to install with the new version")
    u.add_argument("--full-stop", action="store_true", help="stop every node, upgrade, start (LTS jumps)")
    u.set_defaults(func=cmd_upgrade)

    sb = sub.add_parser("support-bundle", help="logs, configs and status of every host in one redacted archive")
    run_args(sb)
    sb.add_argument("-o", "--output", help="archive path (default nxprovision-support-<time>.tar.gz)")
    sb.set_defaults(func=cmd_support_bundle)

    rs = sub.add_parser("runs", help="list the recorded runs (command, events, summary per run)")
    rs.add_argument("--json", action="store_true")
    rs.set_defaults(func=cmd_runs)

    st = sub.add_parser("status", help="live health of every component (exit 1 when something is unhealthy)")
    inventory_args(st)
    st.add_argument("--json", action="store_true")
    st.add_argument(
        "--quick",
        action="store_true",
        help="outside probes only (HTTP/TCP); skip the SSH probe of database roles, replica lag and "
        "Kafka under-replicated partitions",
    )
    st.set_defaults(func=cmd_status)

    d = sub.add_parser("deploy", help="validate, then converge the whole cluster (playbooks/site.yml)")
    run_args(d)
    d.add_argument("--limit", help="Ansible host pattern (refused if it cuts a quorum group, unless --force)")
    d.add_argument("--force", action="store_true", help="accept a --limit that selects part of a quorum group")
    d.add_argument("--tags")
    d.add_argument("--skip-tags")
    d.add_argument("--check", action="store_true", help="dry run (Ansible check mode)")
    d.add_argument("--diff", action="store_true", help="show file differences")
    d.set_defaults(func=cmd_deploy)
