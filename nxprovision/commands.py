"""Verbs that run playbooks: deploy (and, as they land, the day-2 operations)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nxprovision.errors import NxError
from nxprovision.runner import format_recap, run_playbook
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
            first = f.message.splitlines()[0] if f.message else ''
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
    result = run_playbook(
        "site.yml", Path(args.inventory), verb="deploy", vault_password_file=vpf, secrets=secrets,
        limit=args.limit, tags=args.tags, skip_tags=args.skip_tags, check=args.check, diff=args.diff,
        verbosity=args.verbose, progress=args.progress,
    )
    return report(result)


def cmd_status(args: argparse.Namespace) -> int:
    from nxprovision.inventory import load_inventory
    from nxprovision.model.cluster import build_cluster
    from nxprovision.output import dump_json, table
    from nxprovision.status import as_json, collect

    cluster = build_cluster(load_inventory(Path(args.inventory), args.vault_password_file))
    rows = collect(cluster)
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
    rs = sub.add_parser("runs", help="list the recorded runs (command, events, summary per run)")
    rs.add_argument("--json", action="store_true")
    rs.set_defaults(func=cmd_runs)

    st = sub.add_parser("status", help="live health of every component (exit 1 when something is unhealthy)")
    st.add_argument("-i", "--inventory", required=True)
    st.add_argument("--vault-password-file")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    d = sub.add_parser("deploy", help="validate, then converge the whole cluster (playbooks/site.yml)")
    d.add_argument("-i", "--inventory", required=True)
    d.add_argument("--vault-password-file")
    d.add_argument("--limit", help="Ansible host pattern (refused if it cuts a quorum group, unless --force)")
    d.add_argument("--force", action="store_true", help="accept a --limit that selects part of a quorum group")
    d.add_argument("--tags")
    d.add_argument("--skip-tags")
    d.add_argument("--check", action="store_true", help="dry run (Ansible check mode)")
    d.add_argument("--diff", action="store_true", help="show file differences")
    d.add_argument("-v", "--verbose", action="count", default=0, help="pass verbosity to Ansible")
    d.add_argument("--progress", choices=("auto", "rich", "plain", "json"), default="auto",
                   help="live display on a terminal, plain lines otherwise; json = one event per line")
    d.set_defaults(func=cmd_deploy)
