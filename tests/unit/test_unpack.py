"""nx_unpack: a release is only ever in place whole, from tar and zip archives, whatever cut an earlier run short."""

from __future__ import annotations

import grp
import io
import json
import os
import pwd
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "modules"))
import nx_unpack  # noqa: E402
from nx_unpack import UnpackError, install, unpack_dir  # noqa: E402

TOP = "kafka_2.13-3.9.1"
OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
# name -> (content, mode); a None content is a directory
TREE: dict[str, tuple[bytes | None, int]] = {
    "bin": (None, 0o755),
    "bin/kafka-server-start.sh": (b"#!/bin/sh\nexec java\n", 0o755),
    "config": (None, 0o755),
    "config/server.properties": (b"broker.id=1\n", 0o644),
    "libs": (None, 0o755),
    "libs/kafka.jar": (b"PK" + bytes(range(256)) * 64, 0o644),
}


def _tar(path: Path, top: str = TOP, mode: str = "w:gz", extra: list[tarfile.TarInfo] | None = None,
         tree: dict[str, tuple[bytes | None, int]] | None = None) -> Path:
    with tarfile.open(path, mode) as tar:
        if top:
            ti = tarfile.TarInfo(top)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(ti)
        for name, (data, m) in (TREE if tree is None else tree).items():
            ti = tarfile.TarInfo(f"{top}/{name}" if top else name)
            ti.mode = m
            if data is None:
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            else:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
        for ti in extra or []:
            tar.addfile(ti, io.BytesIO(b"x" * ti.size) if ti.isreg() else None)
    return path


def _zip(path: Path, top: str = TOP, extra: list[str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, (data, m) in TREE.items():
            zi = zipfile.ZipInfo(f"{top}/{name}" + ("/" if data is None else ""), date_time=(2024, 1, 1, 0, 0, 0))
            zi.create_system = 3
            zi.external_attr = ((stat.S_IFDIR if data is None else stat.S_IFREG) | m) << 16
            zf.writestr(zi, data or b"")
        for name in extra or []:
            zf.writestr(name, b"x")
    return path


def _link(name: str, target: str, hard: bool = False) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname = (tarfile.LNKTYPE if hard else tarfile.SYMTYPE), target
    return ti


def _file(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size = 1
    return ti


def _whole(dest: Path) -> None:
    for name, (data, m) in TREE.items():
        p = dest / name
        if data is None:
            assert p.is_dir(), p
        else:
            assert p.read_bytes() == data, p
        assert stat.S_IMODE(p.stat().st_mode) == m, (p, oct(p.stat().st_mode))
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert got == sorted(TREE), got


@pytest.fixture(params=["data filter", "own checks"])
def python(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Debian 13's Python has tarfile's data filter; Debian 12's first 3.11 did not: both paths are run."""
    if request.param == "own checks":
        monkeypatch.delattr(tarfile, "data_filter")
    return str(request.param)


@pytest.mark.parametrize("mode,suffix", [("w:gz", "tgz"), ("w:xz", "tar.xz"), ("w:bz2", "tar.bz2"), ("w", "tar")])
def test_whole_release_in_place_and_nothing_beside_it(tmp_path: Path, python: str, mode: str, suffix: str) -> None:
    archive = _tar(tmp_path / f"kafka.{suffix}", mode=mode)
    dest = tmp_path / "opt" / TOP
    r = install(str(archive), str(dest), TOP, OWNER, GROUP)
    assert r["changed"] is True
    _whole(dest)
    assert sorted(p.name for p in (tmp_path / "opt").iterdir()) == [TOP]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755


def test_second_call_changes_and_reads_nothing(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "kafka.tgz")
    dest = tmp_path / TOP
    install(str(archive), str(dest), TOP)
    archive.unlink()
    assert install(str(archive), str(dest), TOP)["changed"] is False
    _whole(dest)


def test_owner_and_group_given_to_the_whole_tree(tmp_path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("giving files away needs root")
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrgid(nobody.pw_gid).gr_name
    dest = tmp_path / TOP
    install(str(_tar(tmp_path / "kafka.tgz")), str(dest), TOP, "nobody", nogroup)
    for p in [dest, *dest.rglob("*")]:
        assert (p.lstat().st_uid, p.lstat().st_gid) == (nobody.pw_uid, nobody.pw_gid), p


def test_a_half_unpack_left_by_an_earlier_run_is_cleared(tmp_path: Path) -> None:
    dest = tmp_path / TOP
    half = Path(unpack_dir(str(dest)))
    (half / TOP / "bin").mkdir(parents=True)
    (half / TOP / "bin" / "kafka-server-start.sh").write_text("#!/bin/sh\n")
    (half / TOP / "stale.jar").write_text("old")
    install(str(_tar(tmp_path / "kafka.tgz")), str(dest), TOP)
    _whole(dest)
    assert not half.exists()


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_run_cut_short_leaves_no_release_and_the_next_installs_it_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    archive = _tar(tmp_path / "kafka.tgz") if kind == "tar" else _zip(tmp_path / "kafka.zip")
    dest = tmp_path / TOP

    def power_off(*args: object, **kwargs: object) -> None:
        folder = Path(unpack_dir(str(dest)))
        (folder / TOP / "bin").mkdir(parents=True)
        (folder / TOP / "bin" / "kafka-server-start.sh").write_text("#!/bin/sh\n")
        raise OSError("host powered off")

    monkeypatch.setattr(nx_unpack, "_extract_tar" if kind == "tar" else "_extract_zip", power_off)
    with pytest.raises(OSError, match="powered off"):
        install(str(archive), str(dest), TOP)
    assert not dest.exists()
    monkeypatch.undo()
    assert install(str(archive), str(dest), TOP)["changed"] is True
    _whole(dest)
    assert not Path(unpack_dir(str(dest))).exists()


@pytest.mark.parametrize("extra,why", [
    ([_file("../evil")], "climbs out"),
    ([_file("/tmp/nx-unpack-evil")], "absolute path"),
    ([_file(f"{TOP}/../../evil")], "climbs out"),
    ([_link(f"{TOP}/lib", "/etc")], "absolute path"),
    ([_link(f"{TOP}/lib", "../../etc")], "outside the release"),
    ([_link(f"{TOP}/here", "."), _file(f"{TOP}/here/x")], "through the link"),
    ([_link(f"{TOP}/up", "up2/.."), _link(f"{TOP}/up2", ".")], "through the link"),
    ([_link(f"{TOP}/passwd", "../../etc/passwd", hard=True)], "climbs out"),
])
def test_members_escaping_the_folder_are_refused_before_anything_is_written(
        tmp_path: Path, python: str, extra: list[tarfile.TarInfo], why: str) -> None:
    archive = _tar(tmp_path / "evil.tgz", extra=extra)
    opt = tmp_path / "opt"
    opt.mkdir()
    with pytest.raises(UnpackError, match=why):
        install(str(archive), str(opt / TOP), TOP)
    assert list(opt.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not Path("/tmp/nx-unpack-evil").exists()


def test_links_inside_the_release_are_kept(tmp_path: Path, python: str) -> None:
    extra = [_link(f"{TOP}/bin/start", "kafka-server-start.sh"), _link(f"{TOP}/libs/conf", "../config"),
             _link(f"{TOP}/bin/start2", "kafka-server-start.sh", hard=True)]
    extra[2].linkname = f"{TOP}/bin/kafka-server-start.sh"
    dest = tmp_path / TOP
    install(str(_tar(tmp_path / "kafka.tgz", extra=extra)), str(dest), TOP)
    assert os.readlink(dest / "bin" / "start") == "kafka-server-start.sh"
    assert (dest / "libs" / "conf" / "server.properties").read_bytes() == b"broker.id=1\n"
    assert (dest / "bin" / "start2").read_bytes() == TREE["bin/kafka-server-start.sh"][0]


@pytest.mark.parametrize("name,why", [("../evil", "climbs out"), ("/tmp/nx-unpack-evil", "absolute path")])
def test_zip_members_escaping_the_folder_are_refused(tmp_path: Path, name: str, why: str) -> None:
    archive = _zip(tmp_path / "evil.zip")
    with zipfile.ZipFile(archive, "a") as zf:  # writestr would drop the leading "/" and the ".."
        zi = zipfile.ZipInfo("placeholder")
        zi.filename = name
        zf.writestr(zi, b"x")
    with pytest.raises(UnpackError, match=why):
        install(str(archive), str(tmp_path / "opt" / TOP), TOP)
    assert not (tmp_path / "opt" / TOP).exists() and not (tmp_path / "evil").exists()


def test_zip_keeps_the_executable_bits(tmp_path: Path) -> None:
    dest = tmp_path / "nuxeo"
    install(str(_zip(tmp_path / "nuxeo.zip")), str(dest), TOP)
    _whole(dest)
    assert os.access(dest / "bin" / "kafka-server-start.sh", os.X_OK)


def test_archive_without_a_top_directory_is_the_release(tmp_path: Path) -> None:
    weed = {"weed": (b"\x7fELF", 0o755)}
    archive = _tar(tmp_path / "seaweedfs.tgz", top="", tree=weed)
    dest = tmp_path / "opt" / "seaweedfs-3.80"
    install(str(archive), str(dest), "")
    assert (dest / "weed").read_bytes() == b"\x7fELF" and os.access(dest / "weed", os.X_OK)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert sorted(p.name for p in dest.parent.iterdir()) == ["seaweedfs-3.80"]


def test_an_empty_release_folder_left_by_the_former_role_is_replaced(tmp_path: Path) -> None:
    """The SeaweedFS role created its release folder, then unpacked weed into it: a power-off in between left it
    empty, and an empty folder is no release."""
    archive = _tar(tmp_path / "seaweedfs.tgz", top="", tree={"weed": (b"\x7fELF", 0o755)})
    dest = tmp_path / "opt" / "seaweedfs-3.80"
    dest.mkdir(parents=True)
    assert install(str(archive), str(dest), "", check_mode=True)["changed"] is True and not os.listdir(dest)
    assert install(str(archive), str(dest), "")["changed"] is True
    assert (dest / "weed").read_bytes() == b"\x7fELF"
    assert install(str(archive), str(dest), "")["changed"] is False


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_missing_top_directory_is_named_with_what_the_archive_has(tmp_path: Path, kind: str) -> None:
    archive = _tar(tmp_path / "kafka.tgz") if kind == "tar" else _zip(tmp_path / "kafka.zip")
    with pytest.raises(UnpackError) as e:
        install(str(archive), str(tmp_path / "opt" / "kafka_2.13-4.0.0"), "kafka_2.13-4.0.0")
    assert str(archive) in str(e.value) and "'kafka_2.13-4.0.0'" in str(e.value) and TOP in str(e.value)
    assert not (tmp_path / "opt").exists() or list((tmp_path / "opt").iterdir()) == []


def test_check_mode_touches_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "opt" / TOP
    half = Path(unpack_dir(str(dest)))
    half.mkdir(parents=True)
    (half / "x").write_text("left")
    r = install(str(tmp_path / "not-downloaded-yet.tgz"), str(dest), TOP, check_mode=True)
    assert r["changed"] is True
    assert not dest.exists() and (half / "x").read_text() == "left"
    (dest / "bin").mkdir(parents=True)  # a release in place
    assert install(str(tmp_path / "none.tgz"), str(dest), TOP, check_mode=True)["changed"] is False


def test_a_file_where_the_release_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / TOP).write_text("")
    with pytest.raises(UnpackError, match="not a directory"):
        install(str(_tar(tmp_path / "kafka.tgz")), str(tmp_path / TOP), TOP)


def test_the_module_answers_through_ansible(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "kafka.tgz")
    dest = tmp_path / TOP
    args = tmp_path / "args.json"
    for changed in (True, False):
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"src": str(archive), "dest": str(dest), "top": TOP,
                                                            "owner": OWNER, "group": GROUP}}))
        out = subprocess.run([sys.executable, str(ROOT / "plugins" / "modules" / "nx_unpack.py"), str(args)],
                             capture_output=True, text=True)
        answer = json.loads(out.stdout)
        assert answer["changed"] is changed and answer["dest"] == str(dest), out
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"src": str(archive), "dest": str(tmp_path / "other"),
                                                        "top": "nope"}}))
    out = subprocess.run([sys.executable, str(ROOT / "plugins" / "modules" / "nx_unpack.py"), str(args)],
                         capture_output=True, text=True)
    answer = json.loads(out.stdout)
    assert answer["failed"] is True and "no top-level directory 'nope'" in answer["msg"], answer


def _tasks(tasks: list[dict]) -> list[dict]:
    out = []
    for t in tasks:
        out.append(t)
        for key in ("block", "rescue", "always"):
            out += _tasks(t.get(key) or [])
    return out


UNPACKS = {"common": "__common_java_archive.dir", "kafka": "nx.kafka.archive_dir",
           "mongodb": "__mongodb_archive_src.dir", "nuxeo": "nx.nuxeo.archive_dir",
           "opensearch": "__opensearch_archive_src.dir", "seaweedfs": "__seaweedfs_archive_src.dir"}


@pytest.mark.parametrize("role", sorted(UNPACKS))
def test_every_archive_goes_through_nx_unpack(role: str) -> None:
    tasks = _tasks(yaml.safe_load((ROOT / "roles" / role / "tasks" / "install.yml").read_text()))
    assert not [t for t in tasks if "ansible.builtin.unarchive" in t or "unarchive" in t], role
    unpack = [t for t in tasks if "nx_unpack" in t]
    assert len(unpack) == 1, role
    assert UNPACKS[role] in unpack[0]["nx_unpack"]["top"]
    if role != "common":  # the JRE is no service of its own: nothing to restart
        assert unpack[0]["notify"] == f"Restart {role}"
