"""Secrets on disk: the samples' public vault password and CA are refused by changing verbs; loose modes warned."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nxprovision import secret_files

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted(p for p in (ROOT / "inventories").iterdir() if p.is_dir())


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_sample_is_known_public(sample: Path) -> None:
    assert secret_files.vault_password_digest(sample / ".vault-pass") in secret_files.PUBLIC_VAULT_PASSWORDS
    assert secret_files.ca_fingerprint(sample / ".pki" / "ca.crt") in secret_files.PUBLIC_CA_FINGERPRINTS


def test_deploy_of_a_sample_copy_is_refused_before_any_run(tmp_path: Path, run_cli, monkeypatch) -> None:
    inv = tmp_path / "prod"
    shutil.copytree(ROOT / "inventories" / "compact", inv)
    runs = tmp_path / "runs"
    monkeypatch.setenv("NXPROVISION_RUNS_DIR", str(runs))
    code, out, err = run_cli("deploy", "-i", str(inv), "--progress", "plain")
    assert code == 2, out + err
    assert "published with nxprovision's samples" in err and "vault password" in err and "cluster CA" in err
    assert "no host was touched" in err and "nxprovision init" in err
    assert "Traceback" not in out + err
    assert not runs.exists() or not any(runs.iterdir())


def test_validate_warns_about_a_sample_and_still_passes(run_cli) -> None:
    code, out, _err = run_cli("validate", "-i", str(ROOT / "inventories" / "single"))
    assert code == 0, out
    public = [ln for ln in out.splitlines() if ln.startswith("WARNING") and "[secrets.public]" in ln]
    assert len(public) == 2, out


def test_fresh_inventory_has_no_such_warning_until_its_password_file_is_opened_up(make_inv, run_cli) -> None:
    inv = make_inv()
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 0 and "[secrets." not in out, out
    (inv / ".vault-pass").chmod(0o644)
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 0
    line = next(ln for ln in out.splitlines() if "[secrets.file_mode]" in ln)
    assert "mode 0644" in line and f"chmod 600 {inv / '.vault-pass'}" in line


def test_a_decrypted_secrets_file_readable_by_others_is_warned(make_inv, run_cli) -> None:
    from nxprovision import secrets

    inv = make_inv()
    path = inv / secrets.SECRETS_RELPATH
    values = secrets.load_secrets_file(path, secrets.read_vault_password(inv / ".vault-pass"))
    import yaml

    path.write_text(yaml.safe_dump(values))
    path.chmod(0o644)
    _code, out, _ = run_cli("validate", "-i", str(inv))
    assert any("[secrets.file_mode]" in ln and "decrypted" in ln for ln in out.splitlines()), out


@pytest.mark.parametrize("path", ["inventories/prod/.vault-pass", "inventories/prod/.pki/ca.key",
                                  "elsewhere/site-a/.vault-pass", "elsewhere/site-a/.pki/ca.key",
                                  "inventories/compact/.nxprovision.lock", "site-b/.nxprovision.lock"])
def test_gitignore_keeps_vault_passwords_ca_keys_and_locks_out(path: str) -> None:
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
    assert r.returncode == 0, f"{path} is not ignored"


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_gitignore_keeps_the_public_sample_files(sample: Path) -> None:
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for rel in (".vault-pass", ".pki/ca.key"):
        path = str((sample / rel).relative_to(ROOT))
        r = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
        assert r.returncode == 1, f"{path} is ignored"
