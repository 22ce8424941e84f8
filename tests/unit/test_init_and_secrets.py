"""`init` writes a commented inventory and CSPRNG secrets, vault-encrypted, never overwriting one."""

from __future__ import annotations

import stat
from pathlib import Path

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
