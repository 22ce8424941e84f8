"""The lab's daemons: apt-cacher-ng configuration and the artifact mirror server (run for real)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from nxprovision_lab import services
from nxprovision_lab.aptsources import DebianMirrors
from nxprovision_lab.naming import LabNames


def test_acng_conf_remaps_the_machines_own_mirrors(tmp_path: Path) -> None:
    conf = services.acng_conf(
        DebianMirrors("http://mirror.example.org/debian", "http://mirror.example.org/debian-security"),
        tmp_path / "cache",
        tmp_path / "log",
    )
    assert f"CacheDir: {tmp_path / 'cache'}" in conf
    debrep = next(line for line in conf.splitlines() if line.startswith("Remap-debrep:"))
    assert "mirror.example.org/debian" in debrep and debrep.endswith("file:backends_debian")
    secdeb = next(line for line in conf.splitlines() if line.startswith("Remap-secdeb:"))
    assert secdeb.split(";")[1].strip() == "mirror.example.org/debian-security"


def test_is_lab_daemon_tells_labs_apart() -> None:
    a, b = LabNames("laba"), LabNames("labb")
    acng = ["apt-cacher-ng", "-c", str(a.acng_conf_dir), "ForeGround=1"]
    mirror = [sys.executable, "-m", "nxprovision_lab.mirror_server", "--lab-dir", str(a.state_dir)]
    assert services.is_lab_daemon(acng, a) and not services.is_lab_daemon(acng, b)
    assert services.is_lab_daemon(mirror, a) and not services.is_lab_daemon(mirror, b)
    assert not services.is_lab_daemon(["sleep", str(a.state_dir)], a)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mirror(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "kafka" / "3.6.2").mkdir(parents=True)
    (tmp_path / "kafka" / "3.6.2" / "kafka_2.13-3.6.2.tgz").write_bytes(b"archive-bytes")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nxprovision_lab.mirror_server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--directory",
            str(tmp_path),
            "--lab-dir",
            "/nonexistent/lab",
        ],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(5)


def test_mirror_serves_vendor_paths_and_404s_the_rest(mirror: str) -> None:
    with urllib.request.urlopen(f"{mirror}/kafka/3.6.2/kafka_2.13-3.6.2.tgz", timeout=5) as r:
        assert r.read() == b"archive-bytes"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{mirror}/kafka/9.9.9/kafka_2.13-9.9.9.tgz", timeout=5)
    assert err.value.code == 404
