"""How `nxprovision deploy` fails: one line that names the host, the task and the cause, and the records.

One single-architecture lab (one host) for the whole file, in this order: a download URL that answers 404
on the first deploy; a deploy interrupted by a hard power-off of the host, then the same deploy after the
host boots again; a partitioned (unreachable) host; a wrong SSH key (issue 5).
"""

from __future__ import annotations

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
from conftest import Lab, bring_up, lab, lab_name, require_lab_machine

pytestmark = pytest.mark.lab

NXP = [sys.executable, "-m", "nxprovision.cli"]
NAME = lab_name("nxfail")
HOST = "nuxeo1"
RECORDS_RE = re.compile(r"records in (/\S+)")


def deploy(inventory: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NXP, "deploy", "-i", str(inventory), "--progress", "plain"], capture_output=True, text=True, timeout=timeout
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
        yield bring_up(NAME, "--architecture", "single")
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
