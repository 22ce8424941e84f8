"""The `nxprovision` command: verbs only (parse, call, print, exit code). No traceback reaches an operator."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from nxprovision import __version__
from nxprovision.cliargs import inventory_args
from nxprovision.errors import NxError
from nxprovision.output import dump_json, table

EXIT_INVALID = 2


def _load(args: argparse.Namespace):
    from nxprovision import removed, secret_files
    from nxprovision.inventory import find_vault_password_file, inventory_dir, load_inventory
    from nxprovision.model.cluster import build_cluster
    from nxprovision.rules import run_rules

    explicit = getattr(args, "vault_password_file", None)
    view = load_inventory(args.inventory, explicit)
    cluster = build_cluster(view)
    inv = Path(args.inventory)
    on_disk = secret_files.findings(cluster, inventory_dir(inv), find_vault_password_file(inv, explicit))
    return view, cluster, run_rules(cluster) + removed.findings(inv, set(cluster.hosts)) + on_disk


def _load_or_report(args: argparse.Namespace):
    """_load, except that with --json an inventory that cannot be loaded still gives JSON on stdout (scripts
    read stdout only), besides the one line on stderr. None when it could not be loaded."""
    try:
        return _load(args)
    except NxError as exc:
        if not getattr(args, "json", False):
            raise
        import re

        from nxprovision.rules.finding import error

        m = re.match(r"(\S+?:\d+(?::\d+)?): (.*)", exc.message)
        where, message = (m.group(1), m.group(2)) if m else ("", exc.message)
        sys.stderr.write(f"nxprovision: error: {exc}\n")
        _invalid_json(args, [error("inventory.load", f"inventory {args.inventory}", message, exc.fix or "",
                                   where).to_dict()], [])
        return None


def _invalid_json(args: argparse.Namespace, errors: list[dict], warnings: list[dict],
                  architecture: str | None = None) -> int:
    dump_json({"inventory": args.inventory, "architecture": architecture, "valid": False, "errors": errors,
               "warnings": warnings})
    return EXIT_INVALID


def _print_findings(findings, out=None) -> None:
    out = out or sys.stdout
    for f in findings:
        out.write(f.line() + "\n")


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = _load_or_report(args)
    if loaded is None:
        return EXIT_INVALID
    _view, cluster, findings = loaded
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    if args.json:
        dump_json({"inventory": args.inventory, "architecture": cluster.architecture, "valid": not errors,
                   "errors": [f.to_dict() for f in errors], "warnings": [f.to_dict() for f in warnings]})
    else:
        _print_findings(findings)
        verdict = "invalid" if errors else "valid"
        print(f"{args.inventory}: {verdict} ({cluster.architecture or 'no'} architecture, "
              f"{len(cluster.hosts)} host(s)): {len(errors)} error(s), {len(warnings)} warning(s)")
    return EXIT_INVALID if errors else 0


def _outside_inventory(path: str, inventory: str, what: str) -> None:
    inv = Path(inventory).resolve()
    target = Path(path).resolve()
    if inv.is_dir() and (target == inv or inv in target.parents):
        raise NxError(
            f"{what} {path} would be inside the inventory folder {inventory}: Ansible reads every file there "
            "as an inventory source",
            f"write it outside, e.g. {inv.parent / Path(path).name}",
        )


def _print_planned(planned) -> None:
    pending = [f for f in planned if f.content is None]
    for f in planned:
        if f.content is not None:
            note = f"; {f.pending}" if f.pending else ""
            print(f"\n--- {f.host}:{f.path} ({f.role}: {f.task}; secrets masked{note})")
            print(f.content.rstrip())
    if pending:
        print("\nFiles that need the host to be rendered (`deploy --check --diff` shows them as each host "
              "would get them)")
        table(["host", "file", "role", "why"], [[f.host, f.path, f.role, f.pending] for f in pending])


def cmd_plan(args: argparse.Namespace) -> int:
    from nxprovision.plan import make_plan, plan_to_dict, write_plan_files

    if args.graph:
        _outside_inventory(args.graph, args.inventory, "the picture")
    if args.output_dir:
        _outside_inventory(args.output_dir, args.inventory, "the plan folder")
    loaded = _load_or_report(args)
    if loaded is None:
        return EXIT_INVALID
    _view, cluster, findings = loaded
    errors = [f for f in findings if f.severity == "error"]
    if errors and args.json:
        sys.stderr.write(f"{args.inventory}: invalid, no plan ({len(errors)} error(s))\n")
        return _invalid_json(args, [f.to_dict() for f in errors],
                             [f.to_dict() for f in findings if f.severity != "error"], cluster.architecture)
    if errors:
        _print_findings(findings, sys.stderr)
        sys.stderr.write(f"{args.inventory}: invalid, no plan ({len(errors)} error(s))\n")
        return EXIT_INVALID
    plan = make_plan(cluster)
    if args.graph:
        from nxprovision.graph import render_svg

        Path(args.graph).write_text(render_svg(cluster))
        if not args.json:
            print(f"wrote {args.graph}")
    planned = None
    if args.files or args.output_dir:
        from nxprovision.planfiles import planned_files

        planned = planned_files(cluster)
    if args.output_dir:
        write_plan_files(plan, Path(args.output_dir), planned)
    if args.json:
        data = plan_to_dict(plan)
        if planned is not None:
            data["planned_files"] = [{"host": f.host, "role": f.role, "task": f.task, "path": f.path,
                                      "content": f.content, "pending": f.pending} for f in planned]
        data["warnings"] = [f.to_dict() for f in findings]
        dump_json(data)
        return 0
    _print_findings(findings)
    print(f"Topology ({cluster.architecture}, {len(cluster.hosts)} hosts)")
    table(["host", "address", "components"], [[t["host"], t["address"], ", ".join(t["components"])]
                                                for t in plan.topology])
    e = plan.endpoints
    print("\nEndpoints")
    db = e["database"]
    db_text = (f"{db.get('flavour')} primary {db.get('primary')} ({db.get('address')}:{db.get('port')}), "
               f"replicas {', '.join(db.get('replicas') or []) or 'none'}") if db.get("flavour") == "postgresql" \
        else f"mongodb {','.join(db.get('members') or [])} replica set {db.get('replica_set') or 'none'}"
    table(["service", "endpoint"], [
        ["public URL", e["public_url"]],
        ["database", db_text],
        ["search", f"{e['search']['distribution']} {', '.join(e['search']['urls'])} index {e['search']['index']}"],
        ["kafka", f"{e['kafka']['mode']} {e['kafka']['bootstrap_servers']} (replication factor "
                  f"{e['kafka']['replication_factor']}, min.insync {e['kafka']['min_insync_replicas']})"],
        ["s3", f"{e['s3']['mode']} {e['s3']['endpoint']} bucket {e['s3']['bucket']}"],
    ])
    tls = e["tls"]
    if tls["enabled"]:
        print(f"\nTLS (CA {tls['ca']}): HTTPS on the load balancers "
              f"{'yes, http:' + str(tls['http_redirect_port']) + ' redirects, HSTS' if tls['https'] else 'no'}; "
              f"Nuxeo -> database {'verify-full TLS' if tls['database'] else 'plain'}")
        table(["host", "certificate for", "names (SANs)", "issued by"],
              [[c["host"], ", ".join(c["services"]), ", ".join(c["names"]), c["source"]]
               for c in tls["certificates"]])
    else:
        print("\nTLS: off (nx_tls_enabled: false)")
    print("\nLoad balancer backends (Nuxeo front nodes only)")
    table(["server", "host", "address", "port"], [[b["name"], b["host"], b["address"], b["port"]]
                                                  for b in plan.lb_backends])
    if planned is not None and args.files:
        _print_planned(planned)
    else:
        for host, files in plan.files.items():
            for target, content in files.items():
                if target.endswith("nuxeo.conf"):
                    print(f"\n--- {host}:{target} (secrets masked)")
                    print(content.rstrip())
    if plan.plays:
        print("\nOrder of plays (playbooks/site.yml)")
        table(["#", "play", "hosts", "roles"], [[i + 1, p["name"], p["hosts"], ", ".join(p["roles"])]
                                                for i, p in enumerate(plan.plays)])
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from nxprovision.init import write_inventory

    result = write_inventory(Path(args.directory), args.architecture, database=args.database,
                             vault_password_file=Path(args.vault_password_file) if args.vault_password_file else None)
    if result.from_existing:
        print(f"existing inventory: {result.architecture} architecture, {result.database} (from its main.yml)")
    for p in result.files_written:
        print(f"wrote {p}")
    for p in result.files_kept:
        print(f"kept  {p} (exists)")
    print(f"secrets: {len(result.secrets_added)} generated, {len(result.secrets_kept)} kept, in "
          f"{result.directory / 'group_vars/all/secrets.yml'} (vault-encrypted with {result.vault_password_file})")
    if result.ca_created:
        print(f"TLS: created the cluster CA in {result.directory / '.pki'} (ca.key vault-encrypted)")
    print(f"next: edit {result.hosts_file} and group_vars/all/main.yml, then "
          f"`nxprovision validate -i {result.directory}`")
    return 0


PLUGIN_GROUP = "nxprovision.commands"


def _register_plugins(sub: Any) -> None:
    """Verbs other distributions add (the lab's `nxprovision lab`), by the entry point group PLUGIN_GROUP: the
    product names none of them. A plugin that cannot load costs its own verbs, with a line saying why, not the CLI."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            register = ep.load()
            register(sub)
        except Exception as exc:  # a broken plugin must not take every verb down with it
            print(f"nxprovision: the verbs of {ep.value} are not available: {exc}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nxprovision", description="Provision and operate production Nuxeo clusters.")
    p.add_argument("--version", action="version", version=f"nxprovision {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    v = sub.add_parser("validate", help="check an inventory against Nuxeo's rules, touching no host")
    inventory_args(v)
    v.add_argument("--json", action="store_true", help="machine-readable findings")
    v.set_defaults(func=cmd_validate)

    pl = sub.add_parser("plan", help="show topology, endpoints, rendered configs and play order, touching no host")
    inventory_args(pl)
    pl.add_argument("--json", action="store_true")
    pl.add_argument("--files", action="store_true",
                    help="print every file the roles would write (from their own templates), not only nuxeo.conf; "
                         "files that need facts of the host are listed with the reason")
    pl.add_argument("--output-dir", help="also write rendered files under DIR/<host>/<path>")
    pl.add_argument("--graph", metavar="FILE.svg", help="also draw the cluster as an SVG picture")
    pl.set_defaults(func=cmd_plan)

    i = sub.add_parser("init", help="write a commented sample inventory and its vault-encrypted secrets")
    i.add_argument("directory")
    i.add_argument("--architecture", "-a", help="single | compact | distributed (default: compact; an existing "
                   "folder keeps its own)")
    i.add_argument("--database", choices=["postgresql", "mongodb"],
                   help="default: postgresql; an existing folder keeps its own")
    i.add_argument("--vault-password-file", help="use this vault password file (default: DIR/.vault-pass, created)")
    i.set_defaults(func=cmd_init)

    _register_plugins(sub)
    from nxprovision.certs import register as register_certs

    register_certs(sub)
    try:
        from nxprovision.commands import register as register_ops
    except ImportError:
        pass
    else:
        register_ops(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INVALID
    try:
        return int(args.func(args) or 0)
    except NxError as exc:
        sys.stderr.write(f"nxprovision: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("nxprovision: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if os.environ.get("NXPROVISION_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"nxprovision: internal error: {exc.__class__.__name__}: {exc} "
                         "(a bug: please report it; NXPROVISION_DEBUG=1 shows the traceback)\n")
        return 70


if __name__ == "__main__":
    sys.exit(main())
