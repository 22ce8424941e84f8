"""The controller's side of backups and restores: where the backup records live beside the inventory, the
confirmation a restore needs, and the steps a restore takes (what `restore --dry-run` prints)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from nxprovision.errors import NxError

# A hidden folder: Ansible reads every file of an inventory folder (and of its sub-folders) as an inventory source,
# and took the JSON records of the former runs/backups for groups; it skips names that start with a dot.
RECORDS = ".backups"
FORMER_RECORDS = ("runs", "backups")


def records_dir(inventory: Path) -> Path:
    """Where `backup` keeps its manifests beside the inventory: <inventory dir>/.backups/<id>.json."""
    from nxprovision.inventory import inventory_dir

    return inventory_dir(inventory) / RECORDS


def migrate(inventory: Path) -> list[str]:
    """Move the records of the former <inventory dir>/runs/backups into .backups; the ids moved. A record already
    in .backups is kept as it is (the former copy is dropped)."""
    from nxprovision.inventory import inventory_dir

    folder = inventory_dir(inventory)
    old = folder.joinpath(*FORMER_RECORDS)
    if not old.is_dir():
        return []
    new = records_dir(inventory)
    moved = []
    for record in sorted(old.glob("*.json")):
        new.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = new / record.name
        if target.exists():
            record.unlink()
        else:
            record.replace(target)
            moved.append(record.stem)
    for empty in (old, old.parent):
        try:
            empty.rmdir()
        except OSError:
            break  # not empty: something else lives there
    return moved


def latest(inventory: Path) -> str | None:
    """The id of the latest recorded backup (in .backups, or still in the former folder before its migration)."""
    from nxprovision.inventory import inventory_dir

    folders = (records_dir(inventory), inventory_dir(inventory).joinpath(*FORMER_RECORDS))
    ids = sorted(r.stem for f in folders if f.is_dir() for r in f.glob("*.json"))
    return ids[-1] if ids else None


def recorded_label(inventory: Path, backup_id: str) -> str | None:
    """The pgBackRest set of a backup as its local record says (None: no readable record)."""
    import json

    from nxprovision.inventory import inventory_dir

    for folder in (records_dir(inventory), inventory_dir(inventory).joinpath(*FORMER_RECORDS)):
        try:
            label = json.loads((folder / f"{backup_id}.json").read_text()).get("database", {}).get("label")
        except (OSError, ValueError, AttributeError):
            continue
        if label:
            return str(label)
    return None


def confirm_restore(yes: bool, cluster_name: Callable[[], str], backup_id: Callable[[], str],
                    isatty: Callable[[], bool] | None = None,
                    ask: Callable[[str], str] | None = None) -> None:
    """A restore replaces the whole database: it runs with --yes, or once the operator types the cluster's name on
    a terminal. Without a terminal it refuses before anything else (cluster_name and backup_id are read only when
    there is one to ask)."""
    if yes:
        return
    if not (isatty or sys.stdin.isatty)():
        raise NxError("restore needs a confirmation and there is no terminal to ask; nothing was done",
                      "add --yes to restore without asking")
    name = cluster_name()
    try:
        answer = (ask or input)(f"Restore backup {backup_id()} over cluster {name}? Every node stops and the "
                                f"database goes back to that backup. Type the cluster name ({name}) to go on: ")
    except EOFError:
        answer = ""
    if answer.strip() != name:
        raise NxError(f"restore not confirmed (typed {answer.strip()!r}, not the cluster name {name!r}); nothing was "
                      "done", "type the cluster name exactly, or pass --yes")


def aside_name(data_dir: str, stamp: str) -> str:
    return f"{data_dir}.before-restore-{stamp}"


def restore_steps(cluster, backup_id: str, stamp: str, label: str | None = None) -> list[str]:
    """Every step playbooks/restore.yml takes on this cluster, in order (label: the backup's pgBackRest set, when
    known before the manifest is read)."""
    b = cluster.derived["backup"]
    db = cluster.derived["db"]
    nuxeo = ", ".join(n.host for n in cluster.nuxeo_nodes)
    aside = aside_name(str(b["data_dir"]), stamp)
    steps = [
        f"verify: read manifest {b['manifests_prefix']}{backup_id}.json in bucket {b['bucket']} and check every "
        f"binary it lists in {b['binaries_prefix']} (size and md5), on {b['copy_host']}",
    ]
    info_host = db["patroni"]["bootstrap_host"] if db.get("manager") == "patroni" else db["primary"]
    the_set = label or "<the manifest's set>"
    steps.append(f"verify: `pgbackrest --stanza={b['stanza']} --set={the_set} info` lists the set, on "
                 f"{info_host}")
    snap = b.get("audit_snapshot") or {}
    if snap.get("enabled"):
        steps.append(f"verify: the audit snapshot {backup_id.lower()} of repository {snap.get('repository')} is "
                     f"complete and holds {b['audit_index']} (as the search backup user), on {snap.get('host')}"
                     " (when the manifest lists one)")
    steps.append(f"stop Nuxeo on {nuxeo}, each drained out of the load balancers first")
    hosts = list(db.get("hosts") or [])
    if db.get("manager") == "patroni":
        boot = db["patroni"]["bootstrap_host"]
        others = [h for h in hosts if h != boot]
        steps += [
            f"stop Patroni on {', '.join(hosts)} (replicas first, the leader last)",
            f"remove the cluster {db['patroni']['scope']} from etcd (patronictl remove), on {boot}",
            f"move the data directory aside to {aside}, on {', '.join(hosts)}",
            f"{boot}: bootstrap the cluster again from the backup's set (Patroni's pgBackRest bootstrap) and lead it",
        ]
        if others:
            steps.append(f"start Patroni on {', '.join(others)}: each clones the new leader")
        steps.append(f"check WAL archiving on the new timeline (pgbackrest check), on {boot}")
    else:
        replicas = list(db.get("replicas") or [])
        steps += [
            f"stop PostgreSQL on {', '.join(hosts)}",
            f"move the data directory aside to {aside}, on {', '.join(hosts)}",
            f"{db['primary']}: restore the backup's set with pgBackRest, start, wait for promotion, set the Nuxeo and "
            "replication passwords from this inventory's vault, check WAL archiving",
        ]
        if replicas:
            steps.append(f"clone {', '.join(replicas)} again from the restored primary and wait until each streams")
    steps.append(f"copy back into {b['source_bucket']} every binary of the manifest that is missing or differs, on "
                 f"{b['copy_host']}")
    if snap.get("enabled"):
        steps.append(f"close {b['audit_index']} and restore it from the backup's snapshot, on {snap.get('host')} "
                     "(when the manifest lists one)")
    steps.append(f"start Nuxeo on {nuxeo}, health-gated, each back in the load balancers")
    return steps


def aside_note(cluster, stamp: str) -> str:
    """Where the data of before the restore is kept, how to go back to it and how to free the space."""
    b = cluster.derived["backup"]
    db = cluster.derived["db"]
    data_dir = str(b["data_dir"])
    aside = aside_name(data_dir, stamp)
    hosts = ", ".join(db.get("hosts") or [])
    service = "patroni" if db.get("manager") == "patroni" else f"postgresql@{db.get('version')}-main"
    back = (f"stop {service} on every database host, `mv {data_dir} {data_dir}.restored && mv {aside} {data_dir}`"
            + (", remove the cluster from etcd (patronictl remove) and start Patroni on the former leader first"
               if db.get("manager") == "patroni" else ", then start the primary first"))
    return (f"the data directories of before the restore are kept as {aside} on {hosts}. To go back: {back}. "
            f"Once the restore is checked, free the space: `rm -rf {aside}` on each of them")


def add_restore_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", action="store_true",
                        help="restore without asking (otherwise the cluster name is asked for on a terminal)")
    parser.add_argument("--dry-run", action="store_true", help="list every step the restore would take; touch nothing")
