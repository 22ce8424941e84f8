"""Secret rotation: which secrets rotate, the order of the steps, and the pending state in the vault file.

A rotation is pending while the vault file holds `<name>_previous` beside `<name>`: the new value is the
current one (what every template renders from now on) and the previous one is kept, so that a failed run can be
resumed with the same new value, or rolled back to the previous one. The previous value leaves the vault only
once the new one is applied everywhere (`finish`). The values never leave this module's callers: the CLI prints
secret names only; the playbook reads the values from the vault.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nxprovision.errors import NxError
from nxprovision.secrets import SECRET_NAMES, SECRETS_RELPATH, load_secrets_file, spec, write_secrets_file

if TYPE_CHECKING:
    from nxprovision.model.cluster import Cluster

PREVIOUS_SUFFIX = "_previous"
PLAYBOOK = "rotate_secret.yml"
SETTLE_S = 10  # nx_rotate_settle_s default in playbooks/tasks/db_password_set*.yml


@dataclass(frozen=True)
class Rotation:
    key: str  # what the playbook is told (nx_rotate_secret)
    names: tuple[str, ...]  # the secrets that change together
    title: str
    steps: tuple[str, ...]  # playbook steps, in order (nx_rotate_step)


ROTATIONS: dict[str, Rotation] = {
    "db_password": Rotation("db_password", ("nx_secret_db_password",), "the Nuxeo database password", ("apply",)),
    "s3_keys": Rotation(
        "s3_keys", ("nx_secret_s3_access_key", "nx_secret_s3_secret_key"), "the S3 key pair", ("apply", "retire")
    ),
    "nuxeo_admin_password": Rotation(
        "nuxeo_admin_password", ("nx_secret_nuxeo_admin_password",), "the Nuxeo Administrator password", ("apply",)
    ),
}

ALIASES: dict[str, str] = {
    "nx_secret_db_password": "db_password",
    "db_password": "db_password",
    "db-password": "db_password",
    "nx_secret_s3_access_key": "s3_keys",
    "nx_secret_s3_secret_key": "s3_keys",
    "s3_keys": "s3_keys",
    "s3-keys": "s3_keys",
    "nx_secret_nuxeo_admin_password": "nuxeo_admin_password",
    "nuxeo_admin_password": "nuxeo_admin_password",
    "nuxeo-admin-password": "nuxeo_admin_password",
}

# Every other secret, and why `rotate` does not do it (a unit test keeps this list complete).
REFUSED: dict[str, str] = {
    "nx_secret_db_replication_password": (
        "the replicas read it from primary_conninfo, which PostgreSQL applies only at a restart of each replica; "
        "change it with `ansible-vault edit`, deploy, then `nxprovision restart --component postgresql`"
    ),
    "nx_secret_db_admin_password": (
        "MongoDB administrator password: not rotated by nxprovision yet; change it with db.updateUser() and "
        "`ansible-vault edit`"
    ),
    "nx_secret_mongodb_keyfile": (
        "a new replica set key file needs MongoDB's transitionToAuth procedure across every member, not a rolling "
        "restart"
    ),
    "nx_secret_nuxeo_jwt_secret": (
        "it must be identical on every Nuxeo node: during a rolling restart nodes would reject each other's "
        "tokens; change it in a maintenance window with `ansible-vault edit`, then deploy"
    ),
    "nx_secret_nuxeo_status_key": (
        "nuxeo.conf values encrypted with it would no longer decrypt; change it with `ansible-vault edit` and deploy"
    ),
    "nx_secret_haproxy_stats_password": (
        "no service impact: change it with `ansible-vault edit`, then `nxprovision deploy` (HAProxy reloads)"
    ),
    "nx_secret_monitoring_password": (
        "no service impact: change it with `ansible-vault edit`, then `nxprovision deploy` (Prometheus, Alertmanager "
        "and the node exporters read the new hash, the search cluster's `monitoring` user gets it and its exporters "
        "restart with it; Prometheus scrapes with the new password)"
    ),
    "nx_secret_search_admin_password": (
        "change it with `ansible-vault edit`, then `nxprovision deploy`: the opensearch role writes the new bcrypt "
        "hash and applies it with securityadmin (its admin certificate needs no password)"
    ),
    "nx_secret_search_nuxeo_password": (
        "Nuxeo reads it from nuxeo.conf at start: change it with `ansible-vault edit`, `nxprovision deploy` (the "
        "search user changes at once), then `nxprovision restart --component nuxeo`; Nuxeo's search calls fail "
        "between the two"
    ),
    "nx_secret_search_backup_password": (
        "only the backup and restore runs use it: change it with `ansible-vault edit`, then `nxprovision deploy`"
    ),
    "nx_secret_kafka_keystore_password": (
        "it guards the Nuxeo nodes' key store files: change it with `ansible-vault edit` and `nxprovision deploy` "
        "(the key stores are written again and the Nuxeo nodes restart)"
    ),
    "nx_secret_backup_cipher_pass": (
        "it encrypts the pgBackRest repository: the backups taken so far can only be read with it; a new pass "
        "means a new repository (a new stanza and a full backup), not a rotation"
    ),
    "nx_secret_keepalived_password": (
        "both load balancers must change it at the same moment (VRRP rejects a peer with another password and "
        "both would take the virtual IP); change it with `ansible-vault edit` and deploy the load balancers together"
    ),
    "nx_secret_patroni_rest_password": (
        "no service impact: Patroni members only read each other's safe (GET) endpoints; change it with "
        "`ansible-vault edit`, then `nxprovision deploy` (each member reloads its configuration)"
    ),
}
# SeaweedFS's token signing keys: only its own servers and S3 gateway hold them, in one process per host.
REFUSED.update(dict.fromkeys(
    ("nx_secret_seaweedfs_jwt_write_key", "nx_secret_seaweedfs_jwt_read_key", "nx_secret_seaweedfs_filer_jwt_write_key",
     "nx_secret_seaweedfs_filer_jwt_read_key"),
    "only SeaweedFS itself signs and checks these tokens (they live 10 s): change it with `ansible-vault edit`, then "
    "`nxprovision deploy`, which restarts SeaweedFS (S3 requests fail for the few seconds of the restart)",
))


def previous_name(name: str) -> str:
    return name + PREVIOUS_SUFFIX


def masked_names() -> frozenset[str]:
    """Every variable name whose value is a secret: the secrets and their kept previous values."""
    return SECRET_NAMES | {previous_name(n) for r in ROTATIONS.values() for n in r.names}


def resolve(name: str, cluster: Cluster | None = None) -> Rotation:
    """The rotation NAME asks for, or an NxError saying why not."""
    key = ALIASES.get(name)
    if key is None:
        if name in REFUSED:
            raise NxError(f"{name} is not rotated by `secrets rotate`: {REFUSED[name]}",
                          "rotate one of: " + ", ".join(sorted(ROTATIONS)))
        raise NxError(f"unknown secret '{name}'",
                      "name one of: " + ", ".join(sorted(ROTATIONS)) + " (or a nx_secret_... name)")
    rotation = ROTATIONS[key]
    if cluster is not None:
        if key == "db_password" and cluster.database not in ("postgresql", "mongodb"):
            raise NxError(f"this cluster has no database ({cluster.database or 'none'}): `secrets rotate db_password` "
                          "changes the password of the Nuxeo user of PostgreSQL or MongoDB",
                          "add a postgresql or mongodb group to the inventory")
        if key == "nuxeo_admin_password" and not cluster.nuxeo_nodes:
            raise NxError("this cluster has no Nuxeo node: `secrets rotate nuxeo_admin_password` changes the "
                          "password of Nuxeo's Administrator through a running node",
                          "add a nuxeo group to the inventory")
        if key == "s3_keys":
            mode = cluster.derived.get("s3", {}).get("mode")
            if mode != "seaweedfs":
                raise NxError(f"the S3 store is {mode or 'not used'}: only the SeaweedFS store deployed by nxprovision "
                              "can hold two keys during the rotation",
                              "create a second key at your S3 provider, put it in the vault, deploy (rolling restart "
                              "with `nxprovision restart`), then delete the old key there")
    return rotation


def secrets_path(inventory: Path) -> Path:
    from nxprovision.inventory import inventory_dir

    return inventory_dir(inventory) / SECRETS_RELPATH


def pending(values: dict[str, object], rotation: Rotation) -> bool:
    """True while the vault keeps the previous value(s); an incomplete set is an error the operator must see."""
    kept = [n for n in rotation.names if values.get(previous_name(n)) not in (None, "")]
    if kept and len(kept) != len(rotation.names):
        missing = [previous_name(n) for n in rotation.names if n not in kept]
        raise NxError(f"the vault keeps only part of a pending rotation of {rotation.title} "
                      f"({', '.join(missing)} missing)",
                      "restore the missing value with `ansible-vault edit` (or remove every *_previous of this "
                      "rotation if the old values are no longer in use)")
    return bool(kept)


def pending_rotations(values: dict[str, object]) -> list[Rotation]:
    out = []
    for r in ROTATIONS.values():
        if any(values.get(previous_name(n)) not in (None, "") for n in r.names):
            out.append(r)
    return out


def begin(path: Path, password: bytes, rotation: Rotation) -> str:
    """Write the new value(s), keeping the current ones as *_previous. 'started', or 'resumed' when a rotation
    was already pending (its new value is kept: a resumed run applies the same value)."""
    values = load_secrets_file(path, password)
    missing = [n for n in rotation.names if values.get(n) in (None, "")]
    if missing:
        raise NxError(f"{path} holds no {', '.join(missing)}",
                      "secrets rotate changes the vault file written by `nxprovision init`; run init first")
    if pending(values, rotation):
        return "resumed"
    for n in rotation.names:
        new = spec(n).generate()
        while new == values[n]:  # a CSPRNG value equal to the old one: never in practice, but never accepted
            new = spec(n).generate()
        values[previous_name(n)] = values[n]
        values[n] = new
    write_secrets_file(path, values, password)
    return "started"


def finish(path: Path, password: bytes, rotation: Rotation) -> None:
    """The new value is applied everywhere: the previous one leaves the vault."""
    values = load_secrets_file(path, password)
    for n in rotation.names:
        values.pop(previous_name(n), None)
    write_secrets_file(path, values, password)


def rollback(path: Path, password: bytes, rotation: Rotation) -> None:
    """Make the previous value current again; the abandoned new value becomes the kept one until the rollback is
    applied (a node already running it keeps working until it restarts with the previous value)."""
    values = load_secrets_file(path, password)
    if not pending(values, rotation):
        raise NxError(f"no rotation of {rotation.title} is pending: nothing to roll back",
                      "rotate again to get a new value")
    for n in rotation.names:
        values[n], values[previous_name(n)] = values[previous_name(n)], values[n]
    write_secrets_file(path, values, password)


@dataclass(frozen=True)
class Step:
    where: str  # "vault" or a playbook step name
    hosts: tuple[str, ...]
    what: str


def plan(rotation: Rotation, cluster: Cluster) -> list[Step]:
    """What a rotation does, in order, on which hosts (printed before it runs, and tested)."""
    nodes = tuple(n.host for n in cluster.nuxeo_nodes)
    fronts = [n.host for n in cluster.nuxeo_nodes if n.role == "front"]
    roll = Step("apply", nodes, "rolling restart of the Nuxeo nodes with the new value, one at a time: drained from "
                f"the load balancers ({', '.join(fronts) or 'no front node'}), nuxeo.conf rewritten, restarted, "
                "health gate, back in the pool")
    names = ", ".join(rotation.names)
    kept = ", ".join(previous_name(n) for n in rotation.names)
    steps = [Step("vault", (), f"new {names} from the CSPRNG into the vault; the current value kept as {kept}")]
    if rotation.key == "nuxeo_admin_password":
        # Nuxeo keeps it in its user directory, in the database every node shares: one call, no restart
        steps.append(Step("apply", nodes[:1], "PUT /nuxeo/api/v1/me/changepassword from the node to its own address "
                          "(old password: the previous value; nothing to do when the new one is already accepted), "
                          "then a login with the new one; every node shares the user directory: no restart"))
    elif rotation.key == "db_password" and cluster.database == "mongodb":
        mdb = cluster.derived["db"]
        where = f"replica set {mdb['replica_set']}" if mdb.get("replica_set") else "the server"
        steps += [
            Step("apply", (mdb["primary"],), f"once the first node is out of the pool and the others had {SETTLE_S} s "
                 f"to open their connections: updateUser {mdb['user']} with the new password on the primary of "
                 f"{where} (from {mdb['primary']}, as the MongoDB administrator when access control is on), then a "
                 "login with it; from here on new connections need the new password, open ones go on"),
            roll,
        ]
    elif rotation.key == "db_password":
        db = tuple(cluster.db_hosts)
        steps += [
            Step("apply", db, "find the PostgreSQL primary (ask each server)"),
            Step("apply", db, f"once the first node is out of the pool and the others had {SETTLE_S} s to open their "
                 f"connections: ALTER ROLE {cluster.derived['db']['user']} PASSWORD on the primary, then a login "
                 "with it; from here on new connections need the new password, open ones go on"),
            roll,
        ]
    else:
        s3 = tuple(cluster.s3_hosts)
        steps.append(Step("apply", s3, "SeaweedFS accepts both key pairs (s3.json, reload without restart); the "
                          "bucket is checked with the new pair"))
        if cluster.derived.get("backup", {}).get("enabled"):
            steps.append(Step("apply", tuple(cluster.derived["backup"]["hosts"]),
                              "pgBackRest takes the new key pair (pgbackrest.conf); the stanza check archives a WAL "
                              "segment with it"))
        audit = cluster.derived.get("backup", {}).get("audit_snapshot") or {}
        if audit.get("enabled"):
            steps.append(Step("apply", tuple(cluster.search_hosts),
                              "the search nodes' keystores take the new key pair (audit index snapshots; secure "
                              "settings reloaded, no restart)"))
        steps += [
            roll,
            Step("retire", s3, "SeaweedFS accepts the new key pair only (s3.json, reload)"),
        ]
    steps.append(Step("vault", (), f"{kept} removed from the vault"))
    return steps
