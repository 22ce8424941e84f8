"""`nxprovision certs init | check | renew`: the cluster CA, every certificate's expiry, re-issue and apply."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from nxprovision.ansibleopts import ansible_options
from nxprovision.cliargs import inventory_args, run_args
from nxprovision.commands import Prepared, changing_verb
from nxprovision.errors import NxError
from nxprovision.inventory import inventory_dir


def _cluster(args: argparse.Namespace):
    from nxprovision.inventory import load_inventory
    from nxprovision.model.cluster import build_cluster

    return build_cluster(load_inventory(Path(args.inventory), getattr(args, "vault_password_file", None)))


def cmd_init(args: argparse.Namespace) -> int:
    from nxprovision import pki
    from nxprovision.inventory import find_vault_password_file
    from nxprovision.secrets import read_vault_password

    inv = Path(args.inventory)
    cluster = _cluster(args)
    tls = cluster.derived["tls"]
    vpf = find_vault_password_file(inv, args.vault_password_file)
    if vpf is None:
        raise NxError(f"{inv}: no vault password file", "pass --vault-password-file (the CA key is vault-encrypted)")
    base = inventory_dir(args.inventory)
    created = pki.ensure_ca(base, read_vault_password(vpf), str(cluster.settings.get("nx_cluster_name") or "nuxeo"),
                            tls["ca_cert_file"], tls["ca_key_file"])
    cert = pki.resolve(base, tls["ca_cert_file"])
    key = pki.resolve(base, tls["ca_key_file"])
    if created:
        print(f"created the cluster CA: {cert} (certificate), {key} (key, vault-encrypted with {vpf})")
    else:
        print(f"kept the existing CA {cert}" + ("" if not key.exists() else f" and its key {key}"))
    if not tls["enabled"]:
        print("note: nx_tls_enabled is false in this inventory: set it to true (and nx_public_url to https://...) "
              "to use the CA")
    return 0


def _host_certs(args: argparse.Namespace, cluster: Any) -> tuple[list[Any], int]:
    """Fetch every host and service certificate with an ad-hoc playbook and read them here."""
    import contextlib

    from nxprovision import pki
    from nxprovision.commands import _validated
    from nxprovision.runner import run_playbook

    # --json: stdout carries the JSON document only (validation warnings go to stderr)
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        _c, vpf, secrets = _validated(args, changing=False)
    work = Path(tempfile.mkdtemp(prefix="nxprovision-certs-"))
    try:
        result = run_playbook("certs_check.yml", Path(args.inventory), verb="certs-check", vault_password_file=vpf,
                              secrets=secrets, progress="plain" if args.json else args.progress,
                              extravars={"nx_certs_dir": str(work)},
                              out=sys.stderr if args.json else None, options=ansible_options(args))
        infos = []
        for host, cert in cluster.derived["tls"]["certs"].items():
            wanted = [("host", cert["cert"])] + [(svc, p["cert"]) for svc, p in cert["paths"].items() if "cert" in p]
            wanted += [(client["name"], client["cert"]) for client in cert.get("clients", [])]
            for kind, path in wanted:
                f = work / host / f"{kind}.crt"
                if f.exists():
                    infos.append(pki.read_pem(f.read_bytes(), host, kind, path))
                else:
                    infos.append(pki.CertInfo(host, kind, path, error="not found on the host (or host unreachable)"))
        return infos, result.rc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cmd_check(args: argparse.Namespace) -> int:
    from nxprovision import pki
    from nxprovision.output import dump_json, table

    cluster = _cluster(args)
    tls = cluster.derived["tls"]
    if not tls["enabled"]:
        raise NxError(f"{args.inventory}: nx_tls_enabled is false: no certificate to check",
                      "set nx_tls_enabled: true and deploy")
    days = args.days if args.days is not None else tls["renew_days"]
    base = inventory_dir(args.inventory)
    infos: list[pki.CertInfo] = []
    ca = pki.resolve(base, tls["ca_cert_file"])
    infos.append(pki.read_pem(ca.read_bytes(), "inventory", "ca", str(ca)) if ca.exists()
                 else pki.CertInfo("inventory", "ca", str(ca), error="missing"))
    for host, cert in tls["certs"].items():
        if cert["source_cert"]:
            src = pki.resolve(base, cert["source_cert"])
            infos.append(pki.read_pem(src.read_bytes(), "inventory", f"operator:{host}", str(src)) if src.exists()
                         else pki.CertInfo("inventory", f"operator:{host}", str(src), error="missing"))
    rc = 0
    if not args.local:
        host_infos, rc = _host_certs(args, cluster)
        infos += host_infos
    expiring = [i for i in infos if not i.error and i.days_left < days]
    broken = [i for i in infos if i.error]
    if args.json:
        dump_json({"threshold_days": days, "ok": not expiring and not broken and rc == 0,
                   "certificates": [i.to_dict() for i in infos]})
    else:
        table(["where", "certificate", "subject", "SANs", "expires", "days", "state"],
              [[i.where, i.kind, i.subject, ",".join(i.sans), i.not_after, "" if i.error else i.days_left,
                i.error or ("EXPIRES SOON" if i.days_left < days else "ok")] for i in infos])
        print(f"{len(infos)} certificate(s); {len(expiring)} expire within {days} days; {len(broken)} unreadable")
        operator = sorted({i.kind.split(":", 1)[1] for i in expiring if i.kind.startswith("operator:")})
        if operator:
            print(f"replace the files of {', '.join(operator)} (nx_tls_cert_file / nx_tls_key_file), then:")
        if expiring:
            print(f"renew with: nxprovision certs renew -i {args.inventory}")
    return 1 if expiring or broken or rc != 0 else 0


@changing_verb("certs renew", mid_rotation_ok=True)
def cmd_renew(args: argparse.Namespace, prepared: Prepared) -> int:
    from nxprovision.commands import report
    from nxprovision.runner import run_playbook

    cluster, vpf, secrets = prepared
    if not cluster.derived["tls"]["enabled"]:
        raise NxError(f"{args.inventory}: nx_tls_enabled is false: no certificate to renew",
                      "set nx_tls_enabled: true and deploy")
    extravars: dict[str, Any] = {"tls_force_renew": bool(args.all)}
    result = run_playbook("certs_renew.yml", Path(args.inventory), verb="certs-renew", vault_password_file=vpf,
                          secrets=secrets, extravars=extravars, verbosity=args.verbose, progress=args.progress,
                          options=ansible_options(args))
    return report(result)


def register(sub: argparse._SubParsersAction) -> None:
    c = sub.add_parser("certs", help="TLS certificates: create the cluster CA, check expiry, renew")
    csub = c.add_subparsers(dest="certs_command", metavar="ACTION", required=True)

    i = csub.add_parser("init", help="create the cluster CA in the inventory folder (key vault-encrypted)")
    inventory_args(i)
    i.set_defaults(func=cmd_init)

    ch = csub.add_parser("check", help="every certificate (CA, per host, per service) with its expiry; "
                                       "exit 1 when one expires within the threshold")
    run_args(ch)
    ch.add_argument("--days", type=int, help="threshold in days (default nx_tls_renew_days)")
    ch.add_argument("--local", action="store_true", help="only the certificates in the inventory folder")
    ch.add_argument("--json", action="store_true")
    ch.set_defaults(func=cmd_check)

    r = csub.add_parser("renew", help="re-issue certificates expiring within nx_tls_renew_days and apply them "
                                      "(PostgreSQL and HAProxy reload; Nuxeo rolls only if the CA changed)")
    run_args(r)
    r.add_argument("--all", action="store_true", help="re-issue every CA-signed certificate whatever its expiry")
    r.set_defaults(func=cmd_renew)
