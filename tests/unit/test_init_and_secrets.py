"""`init` writes a commented inventory and CSPRNG secrets, vault-encrypted, never overwriting one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from nxprovision import secrets
from nxprovision.inventory import load_inventory


def test_init_writes_encrypted_secrets_and_private_password(run_cli, tmp_path: Path) -> None:
    d = tmp_path / "prod"
    code, out, _ = run_cli("init", "--architecture", "compact", str(d))
    assert code == 0 and "generated" in out
    vault_pass = d / ".vault-pass"
    assert stat.S_IMODE(vault_pass.stat().st_mode) == 0o600
    raw = (d / secrets.SECRETS_RELPATH).read_bytes()
    assert raw.startswith(b"$ANSIBLE_VAULT;")
    values = secrets.load_secrets_file(d / secrets.SECRETS_RELPATH, secrets.read_vault_password(vault_pass))
    assert set(values) == secrets.SECRET_NAMES
    assert all(len(str(v)) >= 8 for v in values.values())
    for v in values.values():
        assert str(v).encode() not in raw
    assert "# Reference architecture" in (d / "group_vars/all/main.yml").read_text()


def test_init_again_keeps_every_secret_and_adds_missing_ones(run_cli, tmp_path: Path) -> None:
    d = tmp_path / "prod"
    run_cli("init", str(d))
    pw = secrets.read_vault_password(d / ".vault-pass")
    path = d / secrets.SECRETS_RELPATH
    before = secrets.load_secrets_file(path, pw)
    trimmed = dict(before)
    del trimmed["nx_secret_s3_secret_key"]
    secrets.write_secrets_file(path, trimmed, pw)
    (d / "hosts.yml").write_text((d / "hosts.yml").read_text() + "# operator edit\n")
    code, out, _ = run_cli("init", str(d))
    assert code == 0 and "1 generated" in out
    after = secrets.load_secrets_file(path, pw)
    for k, v in trimmed.items():
        assert after[k] == v
    assert after["nx_secret_s3_secret_key"] and after["nx_secret_s3_secret_key"] != before["nx_secret_s3_secret_key"]
    assert (d / "hosts.yml").read_text().endswith("# operator edit\n")


def test_secrets_are_random(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        secrets.ensure_secrets(d, b"pw")
    va = secrets.load_secrets_file(a / secrets.SECRETS_RELPATH, b"pw")
    vb = secrets.load_secrets_file(b / secrets.SECRETS_RELPATH, b"pw")
    assert all(va[k] != vb[k] for k in va)


def test_operator_vault_password_file_is_used(run_cli, tmp_path: Path) -> None:
    pw = tmp_path / "my-pass"
    pw.write_text("operator-secret\n")
    d = tmp_path / "inv"
    code, _out, _err = run_cli("init", str(d), "--vault-password-file", str(pw))
    assert code == 0
    assert not (d / ".vault-pass").exists()
    view = load_inventory(d, str(pw))
    assert view.hostvars["front1"]["nx_secret_db_password"]


def test_ini_inventory_loads_like_yaml(tmp_path: Path, run_cli) -> None:
    d = tmp_path / "ini"
    run_cli("init", "--architecture", "compact", str(d))
    (d / "hosts.yml").unlink()
    (d / "hosts.ini").write_text(
        "[loadbalancers]\nlb1 ansible_host=10.9.0.10\n\n[nuxeo_front]\nfront1\nfront2\n\n[nuxeo_worker]\nworker1\n\n"
        "[nuxeo:children]\nnuxeo_front\nnuxeo_worker\n\n[postgresql]\ndb1\ndb2\n\n[opensearch]\nsearch[1:3]\n\n"
        "[kafka]\nkafka1\n\n[s3]\ns3-1\n"
    )
    code, out, _ = run_cli("validate", "-i", str(d))
    assert code == 0, out
    view = load_inventory(d)
    assert view.groups["nuxeo"] == ["front1", "front2", "worker1"]
    assert view.groups["opensearch"] == ["search1", "search2", "search3"]
    code, out, _ = run_cli("plan", "-i", str(d))
    assert "lb1      10.9.0.10" in out


# ---------------------------------------------------------------- bad targets: refused before anything is written


def _tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _init_folder(run_cli, d: Path, *argv: str) -> None:
    code, out, err = run_cli("init", str(d), *argv)
    assert code == 0, out + err


def _bad_file_path(run_cli, t: Path) -> list[str]:
    (t / "afile").write_text("x\n")
    return [str(t / "afile" / "inv")]


def _existing_file(run_cli, t: Path) -> list[str]:
    (t / "afile").write_text("x\n")
    return [str(t / "afile")]


def _missing_password_folder(run_cli, t: Path) -> list[str]:
    return [str(t / "inv"), "--vault-password-file", str(t / "nodir" / "pass")]


def _wrong_password(run_cli, t: Path) -> list[str]:
    _init_folder(run_cli, t / "inv")
    (t / "inv" / "hosts.yml").unlink()  # init would write it: it must not, before the refusal
    (t / "wrong").write_text("not-the-password\n")
    return [str(t / "inv"), "--vault-password-file", str(t / "wrong")]


def _lost_password(run_cli, t: Path) -> list[str]:
    _init_folder(run_cli, t / "inv")
    (t / "inv" / ".vault-pass").unlink()
    (t / "inv" / "hosts.yml").unlink()
    return [str(t / "inv")]


def _broken_secrets_yaml(run_cli, t: Path) -> list[str]:
    _init_folder(run_cli, t / "inv")
    (t / "inv" / secrets.SECRETS_RELPATH).write_text("nx_secret_db_password: [unclosed\n")
    return [str(t / "inv")]


def _secrets_a_list(run_cli, t: Path) -> list[str]:
    _init_folder(run_cli, t / "inv")
    (t / "inv" / secrets.SECRETS_RELPATH).write_text("- a\n")
    return [str(t / "inv")]


def _group_vars_a_file(run_cli, t: Path) -> list[str]:
    (t / "inv").mkdir()
    (t / "inv" / "group_vars").write_text("x\n")
    return [str(t / "inv")]


def _other_architecture(run_cli, t: Path) -> list[str]:
    _init_folder(run_cli, t / "inv")
    return [str(t / "inv"), "-a", "distributed"]


def _other_database(run_cli, t: Path) -> list[str]:
    _init_folder(run_cli, t / "inv", "--database", "mongodb")
    return [str(t / "inv"), "--database", "postgresql"]


# id -> (set-up returning init's arguments, words of the one-line error)
BAD_TARGETS = {
    "under-a-file": (_bad_file_path, "is a file, not a folder"),
    "onto-a-file": (_existing_file, "exists and is not a folder"),
    "password-folder-missing": (_missing_password_folder, "nodir does not exist"),
    "wrong-password-for-the-vault": (_wrong_password, "does not open this vault"),
    "vault-without-its-password": (_lost_password, "would create a new password that cannot open it"),
    "secrets-yaml-broken": (_broken_secrets_yaml, "secrets.yml:2:1: YAML syntax error"),
    "secrets-a-list": (_secrets_a_list, "expected a mapping of secret names"),
    "group-vars-a-file": (_group_vars_a_file, "is a file, where init writes a folder"),
    "distributed-onto-compact": (_other_architecture, "is a compact inventory"),
    "postgresql-onto-mongodb": (_other_database, "is a mongodb inventory"),
}


@pytest.mark.parametrize("case", list(BAD_TARGETS), ids=list(BAD_TARGETS))
def test_init_refuses_a_bad_target_before_writing_anything(case: str, run_cli, tmp_path: Path) -> None:
    setup, words = BAD_TARGETS[case]
    t = tmp_path / "t"
    t.mkdir()
    argv = setup(run_cli, t)
    before = _tree(t)
    code, out, err = run_cli("init", *argv)
    assert code == 2, out + err
    assert err.startswith("nxprovision: error: ") and len(err.strip().splitlines()) == 1, err
    assert words in err and "(fix: " in err, err
    assert "Traceback" not in out + err and "internal error" not in err
    assert _tree(t) == before


def test_init_under_proc_is_refused(run_cli) -> None:
    code, _out, err = run_cli("init", "/proc/nxprovision-test-inventory")
    assert code == 2 and "kernel file system" in err and "(fix: " in err, err
    assert not Path("/proc/nxprovision-test-inventory").exists()


def test_an_existing_folder_keeps_its_architecture_and_database(run_cli, tmp_path: Path) -> None:
    d = tmp_path / "inv"
    _init_folder(run_cli, d, "-a", "distributed", "--database", "mongodb")
    (d / "hosts.yml").unlink()
    code, out, err = run_cli("init", str(d))
    assert code == 0, out + err
    assert "distributed architecture, mongodb" in out
    assert "mongo1" in (d / "hosts.yml").read_text()


def test_distributed_mongodb_has_no_etcd_group(run_cli, tmp_path: Path) -> None:
    d = tmp_path / "inv"
    _init_folder(run_cli, d, "-a", "distributed", "--database", "mongodb")
    assert "etcd" not in (d / "hosts.yml").read_text()
    view = load_inventory(d)
    assert "etcd" not in view.groups and not any(h.startswith("db") for h in view.hostvars)
    code, out, _err = run_cli("validate", "-i", str(d))
    assert code == 0, out


def test_distributed_postgresql_keeps_its_etcd_group(run_cli, tmp_path: Path) -> None:
    d = tmp_path / "inv"
    _init_folder(run_cli, d, "-a", "distributed")
    assert load_inventory(d).groups["etcd"] == ["db1", "db2", "db3"]
