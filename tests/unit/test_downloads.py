"""Verified downloads: every archive URL has a checksum, validate refuses the unusable ones, and a real get_url
mismatch is reported with the file and both sums, the download discarded (issue 14)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from nxprovision.commands import report
from nxprovision.inventory import load_inventory
from nxprovision.model.artifacts import archive_checksum, checksum_problem
from nxprovision.model.cluster import build_cluster
from nxprovision.runner import run_playbook

SHA512 = hashlib.sha512(b"x").hexdigest()


def test_archive_checksum_is_the_pin_or_the_published_file() -> None:
    url = "http://10.0.0.1:8090/kafka/3.6.2/kafka_2.13-3.6.2.tgz"
    assert archive_checksum(url) == f"sha512:{url}.sha512"
    assert archive_checksum(url, f"SHA512:{SHA512.upper()}") == f"sha512:{SHA512}"
    assert archive_checksum(url, "sha256:https://mirror.example.com/SHA256SUMS") == \
        "sha256:https://mirror.example.com/SHA256SUMS"


@pytest.mark.parametrize(("value", "problem"), [
    (f"sha512:{SHA512}", ""),
    (f"sha256:{hashlib.sha256(b'x').hexdigest()}", ""),
    ("sha256:https://mirror.example.com/SHA256SUMS", ""),
    (SHA512, "not <algorithm>:<hex digest>"),
    (f"md5:{hashlib.md5(b'x').hexdigest()}", "algorithm 'md5'"),
    (f"sha512:{SHA512[:-1]}", "128 hexadecimal"),
    ("sha512:" + "z" * 128, "128 hexadecimal"),
    ("sha512:http://mirror.example.com/x.sha512", "must come over https"),
])
def test_checksum_problem(value: str, problem: str) -> None:
    found = checksum_problem(value)
    assert (problem in found and found) if problem else found == ""


def test_model_gives_every_download_a_checksum(make_inv) -> None:
    inv = make_inv("compact", database="mongodb", set={
        "kafka_archive_checksum": f"sha512:{SHA512}",
        "nuxeo_package_checksums": {"nuxeo-web-ui": f"sha512:{SHA512}"},
        "nuxeo_download_base_url": "http://10.0.0.1:8090/nuxeo",
    })
    d = build_cluster(load_inventory(inv)).derived
    assert d["kafka"]["archive_checksum"] == f"sha512:{SHA512}"
    assert d["nuxeo"]["distribution_checksum"] == f"sha512:{d['nuxeo']['distribution_url']}.sha512"
    # LTS 2025 (the default) adds the search client and audit packages, each checked like the others
    assert d["nuxeo"]["package_checksums"] == {
        "nuxeo-web-ui": f"sha512:{SHA512}",
        **{p: f"sha512:{d['nuxeo']['package_urls'][p]}.sha512"
           for p in ("amazon-s3-online-storage", "nuxeo-search-client-opensearch1", "nuxeo-audit-opensearch1")},
    }
    for part in ("search", "db", "s3"):
        assert d[part]["archives"], part
        for archive in d[part]["archives"].values():
            assert archive["checksum"] == f"sha512:{archive['url']}.sha512", part


def _lines(out: str, rule: str) -> list[str]:
    return [ln for ln in out.splitlines() if f"[{rule}]" in ln]


def test_validate_refuses_a_malformed_pin(make_inv, run_cli) -> None:
    inv = make_inv(set={"opensearch_archive_checksum": "sha512:abc",
                        "nuxeo_package_checksums": {"nuxeo-web-ui": "deadbeef", "other": f"sha512:{SHA512}"}})
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 2
    lines = _lines(out, "downloads.checksum")
    assert any(ln.startswith("ERROR") and "opensearch_archive_checksum" in ln and "128 hexadecimal" in ln
               for ln in lines), out
    assert any(ln.startswith("ERROR") and "nuxeo_package_checksums.nuxeo-web-ui" in ln for ln in lines), out
    assert any(ln.startswith("WARNING") and "nuxeo_package_checksums.other" in ln for ln in lines), out


def test_http_mirror_with_published_checksums_is_valid(make_inv, run_cli) -> None:
    # the lab's mirror: plain http on a private bridge, every archive with its .sha512 beside it
    base = "http://10.213.0.1:8090"
    inv = make_inv(set={f"{p}_download_base_url": f"{base}/{p}"
                        for p in ("nuxeo", "kafka", "opensearch", "mongodb", "seaweedfs")})
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 0, out
    assert not _lines(out, "downloads.checksum"), out


def test_vendor_sites_without_a_usable_published_sum_ask_for_a_pin(make_inv, run_cli) -> None:
    code, out, _ = run_cli("validate", "-i", str(make_inv()))
    assert code == 0
    warned = " ".join(_lines(out, "downloads.checksum"))
    assert "kafka_archive_checksum" in warned and "seaweedfs_archive_checksum" in warned
    assert "opensearch_archive_checksum" not in warned
    code, out, _ = run_cli("validate", "-i", str(make_inv(set={"kafka_archive_checksum": f"sha512:{SHA512}"})))
    assert "kafka_archive_checksum" not in " ".join(_lines(out, "downloads.checksum"))


@pytest.fixture
def download_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "playbooks").mkdir(parents=True)
    (home / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = False\n")
    (home / "playbooks" / "get.yml").write_text(
        "- name: Download\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Download the release archive\n      ansible.builtin.get_url:\n"
        "        url: \"{{ archive_url }}\"\n        dest: \"{{ dest }}\"\n        mode: '0644'\n"
        "        checksum: \"sha512:{{ archive_url }}.sha512\"\n"
    )
    monkeypatch.setenv("NXPROVISION_HOME", str(home))
    monkeypatch.setenv("NXPROVISION_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def _inventory(tmp: Path, url: str, dest: Path) -> Path:
    inv = tmp / "inv.yml"
    inv.write_text("all:\n  vars:\n    ansible_connection: local\n"
                   "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
                   f"    archive_url: '{url}'\n    dest: '{dest}'\n  hosts:\n    a:\n")
    return inv


def test_a_tampered_archive_is_named_with_both_sums_and_discarded(download_home: Path) -> None:
    mirror = download_home / "mirror"
    mirror.mkdir()
    genuine, forged = b"the release\n" * 100, b"something else\n" * 100
    (mirror / "app-1.0.tgz").write_bytes(forged)
    (mirror / "app-1.0.tgz.sha512").write_text(f"{hashlib.sha512(genuine).hexdigest()}  app-1.0.tgz\n")
    url, dest = f"file://{mirror}/app-1.0.tgz", download_home / "cache" / "app-1.0.tgz"
    dest.parent.mkdir()
    out = io.StringIO()
    result = run_playbook("get.yml", _inventory(download_home, url, dest), verb="test", vault_password_file=None,
                          secrets=[], out=out)
    assert report(result, out) == 1
    line = next(ln for ln in out.getvalue().splitlines() if ln.startswith("nxprovision: a failed"))
    assert f"checksum MISMATCH for {url}: expected sha512 {hashlib.sha512(genuine).hexdigest()}, got " \
           f"{hashlib.sha512(forged).hexdigest()}" in line
    assert not dest.exists() and list(dest.parent.iterdir()) == []

    (mirror / "app-1.0.tgz").write_bytes(genuine)
    again = run_playbook("get.yml", _inventory(download_home, url, dest), verb="test", vault_password_file=None,
                         secrets=[], out=io.StringIO())
    assert again.rc == 0 and dest.read_bytes() == genuine and again.changed_total == 1
    # the next run finds the verified file in place: no download, no change (a second deploy changes nothing)
    third = run_playbook("get.yml", _inventory(download_home, url, dest), verb="test", vault_password_file=None,
                         secrets=[], out=io.StringIO())
    assert third.rc == 0 and third.changed_total == 0
