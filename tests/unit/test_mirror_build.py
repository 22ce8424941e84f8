"""The mirror builder's caching, checksums, index, atomicity and locking, on small fake archives."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from nxprovision.errors import NxError
from nxprovision_lab.standins import mirror, packing
from nxprovision_lab.standins.spec import ArchiveSpec


class Fake:
    """Two small archives whose builds are counted in a file (so forked processes count too)."""

    def __init__(self, root: Path) -> None:
        self.src = root / "src" / "fake_builder.py"
        self.src.parent.mkdir(parents=True)
        self.src.write_text("version 1\n")
        self.log = root / "builds.log"
        self.delay = 0.0
        self.fail = False

    def _build(self, name: str, dest: Path) -> None:
        with open(self.log, "a") as fh:
            fh.write(name + "\n")
        time.sleep(self.delay)
        if self.fail:
            dest.write_bytes(b"partial")
            raise RuntimeError("boom")
        tree = dest.parent / f"{dest.name}.tree"
        (tree / "bin").mkdir(parents=True)
        (tree / "bin" / "run").write_text("#!/bin/sh\n")
        (tree / "bin" / "run").chmod(0o755)
        (tree / "data.txt").write_text(self.src.read_text())
        packing.write_targz(tree, dest, top=f"{name}-top")
        shutil.rmtree(tree)

    def specs(self) -> list[ArchiveSpec]:
        return [
            ArchiveSpec("kafka", "9.9.9", lambda d: self._build("kafka", d), [self.src], ("dep==1",)),
            ArchiveSpec("seaweedfs", "1.0", lambda d: self._build("weed", d), [self.src], standin=False, backend="b"),
        ]

    def builds(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    f = Fake(tmp_path)
    monkeypatch.setattr(mirror, "all_specs", f.specs)
    monkeypatch.setattr(mirror, "ARCHIVE_CACHE", tmp_path / "archive-cache")
    return f


def test_build_writes_archives_checksums_and_index(tmp_path: Path, fake: Fake) -> None:
    out = mirror.build_mirror(tmp_path / "m")
    rel = sorted(p.relative_to(tmp_path / "m").as_posix() for p in out)
    assert rel == ["kafka/9.9.9/kafka_2.13-9.9.9.tgz", "seaweedfs/1.0/linux_amd64.tar.gz"]
    for p in out:
        # the vendor-style .sha512 and the folder's SHA256SUMS both verify with coreutils
        subprocess.run(["sha512sum", "-c", p.name + ".sha512"], cwd=p.parent, check=True, capture_output=True)
        subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=p.parent, check=True, capture_output=True)
    index = (tmp_path / "m" / "INDEX.txt").read_text().splitlines()
    rows = [line.split("\t") for line in index if not line.startswith("#")]
    assert [(r[0], r[3]) for r in rows] == [
        ("kafka/9.9.9/kafka_2.13-9.9.9.tgz", "stand-in"),
        ("seaweedfs/1.0/linux_amd64.tar.gz", "real"),
    ]
    with tarfile.open(out[0]) as tf:
        member = tf.getmember("kafka-top/bin/run")
        assert member.mode & 0o111 and member.uid == 0
    assert not list((tmp_path / "m").rglob("*.tmp-*"))


def test_unchanged_inputs_skip_and_changed_inputs_rebuild(tmp_path: Path, fake: Fake) -> None:
    m = tmp_path / "m"
    first = mirror.build_mirror(m)
    before = {p: p.stat().st_mtime_ns for p in first}
    mirror.build_mirror(m)
    assert fake.builds() == ["kafka", "weed"]
    assert {p: p.stat().st_mtime_ns for p in first} == before
    fake.src.write_text("version 2\n")
    mirror.build_mirror(m)
    assert fake.builds() == ["kafka", "weed", "kafka", "weed"]
    mirror.build_mirror(m, force=True)
    assert len(fake.builds()) == 6


def test_a_new_mirror_is_filled_from_the_archive_cache(tmp_path: Path, fake: Fake) -> None:
    a = mirror.build_mirror(tmp_path / "a")
    b = mirror.build_mirror(tmp_path / "b")
    assert fake.builds() == ["kafka", "weed"]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    # a damaged cache entry is detected by its checksum and rebuilt, not served
    cached = next((tmp_path / "archive-cache").rglob("kafka_2.13-9.9.9.tgz"))
    cached.unlink()
    cached.write_bytes(b"garbage")
    c = mirror.build_mirror(tmp_path / "c")
    assert fake.builds() == ["kafka", "weed", "kafka"]
    assert c[0].read_bytes() == a[0].read_bytes()


def test_archives_are_reproducible(tmp_path: Path, fake: Fake) -> None:
    a = mirror.build_mirror(tmp_path / "a", force=True)
    b = mirror.build_mirror(tmp_path / "b", force=True)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]


def test_failed_build_leaves_nothing_behind(tmp_path: Path, fake: Fake) -> None:
    fake.fail = True
    with pytest.raises(NxError, match=r"kafka_2\.13-9\.9\.9\.tgz failed: boom"):
        mirror.build_mirror(tmp_path / "m")
    left = [p for p in (tmp_path / "m").rglob("*") if p.is_file() and p.name != mirror.LOCK_FILE]
    assert left == []


def _build_in_child(m: str) -> None:
    mirror.build_mirror(Path(m))


def test_concurrent_builds_take_turns(tmp_path: Path, fake: Fake) -> None:
    fake.delay = 0.5
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_build_in_child, args=(str(tmp_path / "m"),)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert sorted(fake.builds()) == ["kafka", "weed"]


def test_zip_keeps_executable_bits(tmp_path: Path) -> None:
    src = tmp_path / "tree"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "nuxeoctl").write_text("#!/bin/sh\necho hi\n")
    (src / "bin" / "nuxeoctl").chmod(0o755)
    (src / "bin" / "nuxeo.conf").write_text("a=b\n")
    dest = tmp_path / "x.zip"
    packing.write_zip(src, dest, top="nuxeo-server-1-tomcat")
    with zipfile.ZipFile(dest) as zf:
        assert zf.namelist()[0] == "nuxeo-server-1-tomcat/"
    if shutil.which("unzip") is None:
        pytest.skip("unzip is not installed")
    out = tmp_path / "out"
    subprocess.run(["unzip", "-q", str(dest), "-d", str(out)], check=True)
    ctl = out / "nuxeo-server-1-tomcat" / "bin" / "nuxeoctl"
    assert os.access(ctl, os.X_OK)
    assert not os.access(out / "nuxeo-server-1-tomcat" / "bin" / "nuxeo.conf", os.X_OK)
    assert subprocess.run([str(ctl)], capture_output=True, text=True).stdout == "hi\n"


@pytest.mark.parametrize("release", ["debian12", "debian13"])
def test_the_mirror_serves_the_names_the_model_gives_lab_hosts(make_inv, release: str) -> None:
    """Each archive a lab host of either release downloads (x86_64, the lab's hosts) is one the mirror builds."""
    from nxprovision.inventory import load_inventory
    from nxprovision.model.cluster import build_cluster
    from nxprovision_lab.releases import RELEASES

    assert release in RELEASES
    base = "http://mirror.lab:8090"
    settings = {f"{p}_download_base_url": f"{base}/{p}" for p in ("kafka", "opensearch", "mongodb", "seaweedfs",
                                                                  "java", "nuxeo")}
    settings.update(nx_os_release=release, java_version="21.0.5+11")
    inv = make_inv("compact", database="mongodb", set=settings)
    d = build_cluster(load_inventory(inv)).derived
    wanted = {a["url"] for part in ("db", "search", "s3") for a in d[part]["archives"].values()}
    wanted |= {d["kafka"]["archive_url"]} | {j["archive"]["url"] for j in d["java"].values() if j["archive"]}
    served = {s.mirror_path for s in mirror.all_specs()}
    assert {u.removeprefix(base + "/") for u in wanted} <= served
    assert any("mongodb-linux-x86_64-" in u for u in wanted)
