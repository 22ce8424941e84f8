"""How `nxprovision deploy` fails: one line that names the host, the task and the cause, and the records.

One single-architecture lab (one host) for the whole file, in this order: a download URL that answers 404
on the first deploy; a tampered archive on the mirror (issue 14); a deploy interrupted by a hard power-off of
the host, then the same deploy after the host boots again; a partitioned (unreachable) host; a wrong SSH key
(issue 5); a host whose SSH host key changed after it was trusted, and trusting it again (issue 14).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import STATE_ROOT, Lab, bring_up, lab, lab_name, pin_lts2023, require_lab_machine

from nxprovision.model.defaults import DEFAULTS
from nxprovision_lab.standins.spec import mirror_path

pytestmark = pytest.mark.lab

NXP = [sys.executable, "-m", "nxprovision.cli"]
NAME = lab_name("nxfail")
HOST = "nuxeo1"
RECORDS_RE = re.compile(r"records in (/\S+)")


def deploy(inventory: Path, timeout: float = 600, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NXP, "deploy", "-i", str(inventory), "--progress", "plain", *extra], capture_output=True, text=True,
        timeout=timeout,
    )


def lines_about(text: str, host: str, what: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("nxprovision: ") and host in ln and what in ln]


def copy_inventory(lab_: Lab, dest: Path, main: dict | None = None, connection: dict | None = None) -> Path:
    """A copy of the lab's inventory with some settings changed (group_vars/all/main.yml and lab.yml)."""
    shutil.copytree(lab_.inventory, dest)
    for name, changes in (("main.yml", main), ("lab.yml", connection)):
        if changes:
            path = dest / "group_vars" / "all" / name
            data = yaml.safe_load(path.read_text()) or {}
            data.update(changes)
            path.write_text(yaml.safe_dump(data, default_flow_style=False, sort_keys=False))
    return dest


def assert_records(text: str) -> None:
    found = RECORDS_RE.findall(text)
    assert found and all(Path(p).is_dir() for p in found), text[-3000:]
    assert "Traceback" not in text


@pytest.fixture(scope="module")
def single() -> Iterator[Lab]:
    require_lab_machine()
    try:
        # LTS 2023 on Debian 12 (still in service): the CI labs cover both lines, this one and the 2025 of the others
        lab_ = bring_up(NAME, "--architecture", "single", "--os", "debian12")
        pin_lts2023(lab_.inventory)
        yield lab_
    finally:
        lab("down", "--name", NAME, check=False)


def test_download_404_names_the_url_and_the_host(single: Lab, tmp_path: Path) -> None:
    # first deploy: nothing downloaded yet, so the role really fetches the archive
    base = single.status["mirror_url"] + "/no-such-folder"
    inv = copy_inventory(single, tmp_path / "inv", main={"kafka_download_base_url": base})
    r = deploy(inv)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    cause = lines_about(out, HOST, "HTTP 404 for " + base + "/")
    assert cause and "failed at task 'kafka : " in cause[-1], out[-3000:]
    assert len(cause[-1]) < 400, cause[-1]
    assert_records(out)


def test_tampered_archive_stops_before_anything_is_unpacked(single: Lab) -> None:
    # nothing of Kafka is on the host yet (the first test's deploy stopped at its download)
    version = str(DEFAULTS["kafka_version"])
    rel = mirror_path("kafka", version)
    archive = STATE_ROOT / NAME / "mirror" / rel
    published = (archive.parent / (archive.name + ".sha512")).read_text().split()[0]
    forged = b"not the release archive\n" * 1000
    release_dir = f"/opt/kafka_2.13-{version}"
    cached = f"/var/cache/nxprovision/{archive.name}"
    assert single.ssh(HOST, f"test ! -e {release_dir} && test ! -e {cached}").returncode == 0
    # The mirror's files are hard links into the machine-wide archive cache: the forgery gets its own inode, and
    # the genuine file is put back by a rename, never rewritten in place.
    genuine = archive.with_name(f".{archive.name}.genuine")
    os.link(archive, genuine)
    tmp = archive.with_name(f".{archive.name}.forged")
    tmp.write_bytes(forged)
    tmp.replace(archive)
    try:
        # only the play that downloads it: the rest of the deploy does not touch this archive
        r = deploy(single.inventory, 900, "--tags", "role::kafka")
    finally:
        genuine.replace(archive)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    url = f"{single.status['mirror_url']}/{rel}"
    said = lines_about(out, HOST, f"checksum MISMATCH for {url}")
    assert said and "failed at task 'kafka : Download the Kafka release archive'" in said[-1], out[-3000:]
    assert f"expected sha512 {published}" in said[-1], said[-1]
    assert f"got {hashlib.sha512(forged).hexdigest()}" in said[-1], said[-1]
    assert "nothing was unpacked" in said[-1]
    # neither the download nor any of its files reached the host's disk
    check = single.ssh(HOST, f"test ! -e {release_dir} && test ! -e {cached} && echo clean")
    assert check.stdout.strip() == "clean", check.stdout + check.stderr
    assert_records(out)


def test_power_off_mid_deploy_then_the_same_deploy_completes(single: Lab) -> None:
    proc = subprocess.Popen(
        [*NXP, "deploy", "-i", str(single.inventory), "--progress", "plain"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    killed = threading.Event()
    timer = threading.Timer(900, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            # the Nuxeo archive is downloaded: power the host off while the next tasks unpack it
            if not killed.is_set() and f"changed  {HOST}  nuxeo : Download the Nuxeo distribution" in line:
                lab("kill", "--name", NAME, HOST)
                killed.set()
        proc.wait()
    finally:
        timer.cancel()
    out = "\n".join(seen)
    assert killed.is_set(), out[-3000:]
    assert proc.returncode != 0, out[-3000:]
    named = [ln for ln in seen if ln.startswith("nxprovision: ") and HOST in ln and " at task 'nuxeo : " in ln]
    assert named, out[-3000:]
    assert_records(out)

    lab("start", "--name", NAME, HOST)
    again = deploy(single.inventory, timeout=900)
    assert again.returncode == 0, again.stdout[-5000:] + again.stderr[-2000:]


def test_unreachable_host_is_named_on_one_line(single: Lab) -> None:
    lab("partition", "--name", NAME, HOST)
    try:
        started = time.monotonic()
        r = deploy(single.inventory, timeout=300)
        took = time.monotonic() - started
    finally:
        lab("heal", "--name", NAME, HOST)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    said = lines_about(out, HOST, "is UNREACHABLE at task ")
    assert len(said) == 1, out[-3000:]
    assert "records in /" in said[0] and "no answer over SSH" in said[0], said[0]
    # said when it happened, not only in the final report
    assert out.index(said[0]) < out.index("PLAY RECAP"), out[-3000:]
    assert took < 180, took
    assert_records(out)


def test_wrong_ssh_key_says_so(single: Lab, tmp_path: Path) -> None:
    key = tmp_path / "wrong_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    inv = copy_inventory(
        single,
        tmp_path / "inv",
        connection={
            "ansible_ssh_private_key_file": str(key),
            # no shared master connection of an earlier run, no other key than this one
            "ansible_ssh_args": "-o ControlMaster=no -o IdentitiesOnly=yes",
        },
    )
    r = deploy(inv, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    said = lines_about(out, HOST, "is UNREACHABLE at task ")
    assert len(said) == 1 and "SSH refused the key" in said[0], out[-3000:]
    assert_records(out)


def _fingerprint(single: Lab) -> str:
    r = single.ssh(HOST, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[1]


def test_changed_host_key_is_refused_before_any_task_and_trust_hosts_records_the_new_one(
    single: Lab, tmp_path: Path
) -> None:
    trusted = _fingerprint(single)
    known = single.inventory / ".known_hosts"
    assert single.ip(HOST) in known.read_text()
    regen = (
        "set -e; mkdir -p /root/hostkey-kept; cp -a /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub "
        "/root/hostkey-kept/; rm -f /etc/ssh/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key.pub; "
        "ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key; systemctl restart ssh"
    )
    assert single.ssh(HOST, regen).returncode == 0
    try:
        offered = _fingerprint(single)
        assert offered != trusted
        runs = tmp_path / "runs"
        r = subprocess.run(
            [*NXP, "deploy", "-i", str(single.inventory), "--progress", "plain"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "NXPROVISION_RUNS_DIR": str(runs)},
        )
        out = r.stdout + r.stderr
        assert r.returncode == 2, out[-3000:]
        said = [ln for ln in out.splitlines() if "CHANGED" in ln]
        assert said, out[-3000:]
        assert f"{HOST} ({single.ip(HOST)})" in said[0] and trusted in said[0] and offered in said[0], said[0]
        assert "no task ran" in said[0] and "trust-hosts" in said[0] and "ssh-keygen -R" in said[0], said[0]
        # refused before Ansible started: no play, no run record
        assert "PLAY" not in out and "Traceback" not in out, out[-3000:]
        assert not runs.exists() or not any(runs.iterdir())

        # SSH itself refuses it too (a plain ansible run), and the cause is said plainly. No shared connection: one
        # the last run left open (ControlPersist) would never look at the key again, which is why the runner scans.
        ping = subprocess.run(
            [str(Path(sys.executable).parent / "ansible"), HOST, "-i", str(single.inventory), "--vault-password-file",
             str(single.inventory / ".vault-pass"), "-m", "ansible.builtin.ping"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPath=none", "ANSIBLE_NOCOLOR": "1"},
        )
        assert ping.returncode != 0 and "UNREACHABLE" in ping.stdout, ping.stdout + ping.stderr
        from nxprovision.runevents import unreachable_cause

        cause = unreachable_cause(json.loads(ping.stdout.split("=>", 1)[1])["msg"])
        assert "SSH host key CHANGED" in cause and offered in cause and trusted in cause, cause

        # trusting it again: only after the old line is removed, only with a confirmation
        inv = copy_inventory(single, tmp_path / "inv")
        again = subprocess.run([*NXP, "trust-hosts", "-i", str(inv), HOST, "--yes"], capture_output=True, text=True,
                               timeout=120, stdin=subprocess.DEVNULL)
        assert again.returncode == 1 and "NOT trusted" in again.stderr and offered in again.stderr, again
        subprocess.run(["ssh-keygen", "-R", single.ip(HOST), "-f", str(inv / ".known_hosts")], check=True,
                       capture_output=True)
        ask = subprocess.run([*NXP, "trust-hosts", "-i", str(inv), HOST], capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
        assert ask.returncode == 2 and "no terminal to confirm" in ask.stderr, ask
        assert offered in ask.stdout and single.ip(HOST) not in (inv / ".known_hosts").read_text()
        yes = subprocess.run([*NXP, "trust-hosts", "-i", str(inv), HOST, "--yes"], capture_output=True, text=True,
                             timeout=120, stdin=subprocess.DEVNULL)
        assert yes.returncode == 0 and "trusted" in yes.stdout, yes
        assert single.ip(HOST) in (inv / ".known_hosts").read_text()
        ok = subprocess.run([*NXP, "trust-hosts", "-i", str(inv)], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
        assert ok.returncode == 0 and "already trusted" in ok.stdout, ok
    finally:
        restore = ("cp -a /root/hostkey-kept/ssh_host_ed25519_key /root/hostkey-kept/ssh_host_ed25519_key.pub "
                   "/etc/ssh/ && systemctl restart ssh")
        assert single.ssh(HOST, restore).returncode == 0
    assert _fingerprint(single) == trusted


def test_untrusted_host_is_refused_and_trust_hosts_records_the_key_the_lab_made(single: Lab, tmp_path: Path) -> None:
    inv = copy_inventory(single, tmp_path / "inv")
    (inv / ".known_hosts").unlink()
    r = deploy(inv, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 2 and "no SSH host key recorded" in out and f"trust-hosts -i {inv} {HOST}" in out, out
    assert "PLAY" not in out
    yes = subprocess.run([*NXP, "trust-hosts", "-i", str(inv), "--yes"], capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL)
    assert yes.returncode == 0, yes
    assert _fingerprint(single) in yes.stdout
    recorded = {tuple(ln.split()[:3]) for ln in (inv / ".known_hosts").read_text().splitlines()}
    lab_made = {tuple(ln.split()[:3]) for ln in (single.inventory / ".known_hosts").read_text().splitlines()}
    assert lab_made <= recorded, (recorded, lab_made)
