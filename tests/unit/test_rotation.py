"""`secrets rotate`: what rotates and what is refused (and why), the pending state in the real vault file,
resume and rollback, the plan of steps, and masking of the kept previous values."""

from __future__ import annotations

from pathlib import Path

import pytest

from nxprovision import rotation as rot
from nxprovision import secrets
from nxprovision.errors import NxError
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.plan import make_plan


def _vault(inv: Path) -> tuple[Path, bytes]:
    return inv / secrets.SECRETS_RELPATH, secrets.read_vault_password(inv / ".vault-pass")


def test_every_secret_is_either_rotated_or_refused_with_a_reason() -> None:
    rotated = {n for r in rot.ROTATIONS.values() for n in r.names}
    assert rotated | set(rot.REFUSED) == secrets.SECRET_NAMES
    assert not rotated & set(rot.REFUSED)
    assert {"nx_secret_db_password", "nx_secret_s3_access_key", "nx_secret_s3_secret_key"} <= rotated
    for name, why in rot.REFUSED.items():
        with pytest.raises(NxError) as exc:
            rot.resolve(name)
        assert why in str(exc.value) and "db_password" in str(exc.value)


@pytest.mark.parametrize(("name", "key"), [
    ("db_password", "db_password"), ("nx_secret_db_password", "db_password"), ("db-password", "db_password"),
    ("s3_keys", "s3_keys"), ("nx_secret_s3_access_key", "s3_keys"), ("nx_secret_s3_secret_key", "s3_keys"),
    ("nuxeo_admin_password", "nuxeo_admin_password"), ("nx_secret_nuxeo_admin_password", "nuxeo_admin_password"),
    ("nuxeo-admin-password", "nuxeo_admin_password"),
])
def test_names_and_aliases(name: str, key: str) -> None:
    assert rot.resolve(name).key == key


def test_refused_where_the_cluster_cannot_hold_two_values(make_inv) -> None:
    external = build_cluster(load_inventory(make_inv("compact", set={"s3_mode": "external",
                                                                     "s3_endpoint": "https://s3.example.test"})))
    with pytest.raises(NxError, match="external"):
        rot.resolve("s3_keys", external)


@pytest.mark.parametrize("key", sorted(rot.ROTATIONS))
def test_begin_resume_finish_keep_the_previous_value_until_applied(make_inv, key: str) -> None:
    inv = make_inv()
    path, pw = _vault(inv)
    r = rot.ROTATIONS[key]
    before = secrets.load_secrets_file(path, pw)
    assert rot.begin(path, pw, r) == "started"
    mid = secrets.load_secrets_file(path, pw)
    for n in r.names:
        assert mid[rot.previous_name(n)] == before[n]
        assert mid[n] != before[n] and len(mid[n]) == len(before[n])
    assert path.read_bytes().startswith(b"$ANSIBLE_VAULT;")
    assert all(str(mid[n]).encode() not in path.read_bytes() for n in r.names)
    untouched = set(before) - set(r.names)
    assert all(mid[n] == before[n] for n in untouched)
    # a failed run is resumed with the same new value, never a third one
    assert rot.begin(path, pw, r) == "resumed"
    assert secrets.load_secrets_file(path, pw) == mid
    assert rot.pending(mid, r) and rot.pending_rotations(mid) == [r]
    rot.finish(path, pw, r)
    done = secrets.load_secrets_file(path, pw)
    assert set(done) == set(before) and all(done[n] == mid[n] for n in r.names)


def test_rollback_makes_the_previous_value_current(make_inv) -> None:
    inv = make_inv()
    path, pw = _vault(inv)
    r = rot.ROTATIONS["s3_keys"]
    with pytest.raises(NxError, match="nothing to roll back"):
        rot.rollback(path, pw, r)
    before = secrets.load_secrets_file(path, pw)
    rot.begin(path, pw, r)
    new = secrets.load_secrets_file(path, pw)
    rot.rollback(path, pw, r)
    back = secrets.load_secrets_file(path, pw)
    for n in r.names:
        assert back[n] == before[n] and back[rot.previous_name(n)] == new[n]
    rot.finish(path, pw, r)
    assert secrets.load_secrets_file(path, pw) == before


def test_a_half_kept_pair_is_an_error(make_inv) -> None:
    inv = make_inv()
    path, pw = _vault(inv)
    values = secrets.load_secrets_file(path, pw)
    values["nx_secret_s3_access_key_previous"] = "OLDKEYOLDKEY"
    secrets.write_secrets_file(path, values, pw)
    with pytest.raises(NxError, match="nx_secret_s3_secret_key_previous missing"):
        rot.begin(path, pw, rot.ROTATIONS["s3_keys"])


def test_plan_orders_the_steps(make_inv) -> None:
    cluster = build_cluster(load_inventory(make_inv()))
    db = rot.plan(rot.ROTATIONS["db_password"], cluster)
    assert [s.where for s in db] == ["vault", "apply", "apply", "apply", "vault"]
    assert "ALTER ROLE nuxeo" in db[2].what and "first node is out of the pool" in db[2].what
    assert set(db[1].hosts) == set(cluster.db_hosts)
    assert db[3].hosts == ("front1", "front2", "worker1") and "drained" in db[3].what
    s3 = rot.plan(rot.ROTATIONS["s3_keys"], cluster)
    assert [s.where for s in s3] == ["vault", "apply", "apply", "apply", "apply", "retire", "vault"]
    # both keys are accepted before any node (or pgBackRest) moves to the new one, the old one is retired only after
    assert "both key pairs" in s3[1].what and "new key pair only" in s3[5].what
    assert s3[1].hosts == s3[5].hosts == tuple(cluster.s3_hosts)
    # pgBackRest archives WAL with the S3 keys: it takes the new pair before the old one is retired
    assert "pgBackRest takes the new key pair" in s3[2].what and set(s3[2].hosts) == set(cluster.db_hosts)
    # so do the search nodes' keystores (the audit snapshots)
    assert "keystores take the new key pair" in s3[3].what and s3[3].hosts == tuple(cluster.search_hosts)
    no_backups = build_cluster(load_inventory(make_inv(set={"pgbackrest_enabled": False})))
    s3_plain = rot.plan(rot.ROTATIONS["s3_keys"], no_backups)
    assert [s.where for s in s3_plain] == ["vault", "apply", "apply", "retire", "vault"]
    assert not any("pgBackRest" in s.what for s in s3_plain)


def test_nuxeo_admin_password_is_one_call_without_restart(make_inv) -> None:
    cluster = build_cluster(load_inventory(make_inv()))
    steps = rot.plan(rot.resolve("nuxeo_admin_password", cluster), cluster)
    assert [s.where for s in steps] == ["vault", "apply", "vault"]
    # one node, once: the user directory is in the database every node shares
    assert steps[1].hosts == (cluster.nuxeo_nodes[0].host,)
    assert "/api/v1/me/changepassword" in steps[1].what and "no restart" in steps[1].what
    assert not any("rolling restart" in s.what for s in steps)
    # its kept previous value is masked like every secret
    assert "nx_secret_nuxeo_admin_password_previous" in rot.masked_names()


def test_db_password_rotates_on_mongodb_too(make_inv) -> None:
    for database in ("postgresql", "mongodb"):
        cluster = build_cluster(load_inventory(make_inv("compact", database=database)))
        assert rot.resolve("db_password", cluster) is rot.ROTATIONS["db_password"]


def test_plan_on_mongodb_changes_the_user_on_the_primary(make_inv) -> None:
    cluster = build_cluster(load_inventory(make_inv("compact", database="mongodb")))
    db = cluster.derived["db"]
    steps = rot.plan(rot.ROTATIONS["db_password"], cluster)
    assert [s.where for s in steps] == ["vault", "apply", "apply", "vault"]
    change = steps[1]
    # the mongodb role's primary (the first host of the group), not every database host, and no PostgreSQL wording
    assert change.hosts == (db["primary"],) == (cluster.db_hosts[0],)
    assert f"updateUser {db['user']}" in change.what and f"replica set {db['replica_set']}" in change.what
    assert "first node is out of the pool" in change.what and "ALTER ROLE" not in change.what
    assert "PostgreSQL" not in " ".join(s.what for s in steps)
    assert steps[2].hosts == tuple(n.host for n in cluster.nuxeo_nodes) and "drained" in steps[2].what
    assert "nx_secret_db_password_previous removed" in steps[3].what


def _tasks(path: Path) -> list[dict]:
    import yaml

    def walk(items: list[dict]) -> list[dict]:
        out = []
        for t in items or []:
            out.append(t)
            for key in ("block", "rescue", "always", "tasks"):
                out += walk(t.get(key))
        return out

    return walk(yaml.safe_load(path.read_text()))


def test_every_rotation_task_that_carries_a_secret_has_no_log() -> None:
    import yaml

    root = Path(__file__).resolve().parents[2] / "playbooks"
    files = [root / "tasks" / "db_password_set.yml", root / "tasks" / "db_password_set_mongodb.yml"]
    tasks = [t for f in files for t in _tasks(f)]
    carrying = [t for t in tasks if "block" not in t and "nx_secret_" in yaml.safe_dump(t)]
    assert carrying and all(t.get("no_log") is True for t in carrying), [t["name"] for t in carrying
                                                                       if t.get("no_log") is not True]
    mongo = _tasks(root / "tasks" / "db_password_set_mongodb.yml")
    update = [t["community.mongodb.mongodb_user"] for t in mongo if "community.mongodb.mongodb_user" in t]
    # always: the new password is sent; the roles again, or updateUser would get an empty role list
    assert len(update) == 1 and update[0]["update_password"] == "always"
    assert update[0]["roles"] == [{"db": "{{ nx.db.name }}", "role": "dbOwner"}]
    # the role itself never updates an existing user's password: a deploy after a rotation leaves it alone
    role = _tasks(root.parent / "roles" / "mongodb" / "tasks" / "service.yml")
    users = [t["community.mongodb.mongodb_user"] for t in role if "community.mongodb.mongodb_user" in t]
    assert users and all(u["update_password"] == "on_create" for u in users)
    # both places: the primary's step within the roll, and the pass after it on the mongodb group
    book = (root / "rotate_secret.yml").read_text()
    assert book.count("tasks/db_password_set_mongodb.yml") == 2


def test_pending_rotation_is_a_warning_and_previous_values_are_masked(make_inv, run_cli) -> None:
    inv = make_inv()
    path, pw = _vault(inv)
    before = secrets.load_secrets_file(path, pw)
    rot.begin(path, pw, rot.ROTATIONS["db_password"])
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 0 and "[secrets.rotation_pending]" in out and "db_password" in out
    assert "nx_secret_db_password_previous" in rot.masked_names()
    # an operator's nuxeo.conf extra that names the kept value stays a reference, and plan masks it
    import yaml

    main_yml = inv / "group_vars" / "all" / "main.yml"
    data = yaml.safe_load(main_yml.read_text())
    data["nuxeo_conf_extra"] = {"my.old.password": "{{ nx_secret_db_password_previous }}"}
    main_yml.write_text(yaml.safe_dump(data))
    plan = make_plan(build_cluster(load_inventory(inv)))
    text = "".join(c for files in plan.files.values() for c in files.values())
    assert "my.old.password=********" in text
    assert before["nx_secret_db_password"] not in text


def test_rotate_verb_refuses_with_the_reason(make_inv, run_cli) -> None:
    code, _, err = run_cli("secrets", "rotate", "-i", str(make_inv()), "nx_secret_keepalived_password")
    assert code == 2 and "VRRP" in err and "Traceback" not in err
    code, out, _ = run_cli("secrets", "rotate", "-i", str(make_inv()), "s3_keys", "--plan")
    assert code == 0 and "retire" in out
    code, out, err = run_cli("secrets", "rotate", "-i", str(make_inv(database="mongodb")), "db_password", "--plan")
    assert code == 0 and "updateUser nuxeo" in out and "[apply: mongo1]" in out, out + err
