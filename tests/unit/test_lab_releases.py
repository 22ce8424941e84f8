"""Lab hosts on Debian 12 and 13: release choice per host, one cached image per release, apt sources per release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nxprovision.errors import NxError
from nxprovision.model.defaults import SAMPLE_GROUP_VARS
from nxprovision_lab import cli, image, releases
from nxprovision_lab.aptsources import DebianMirrors, host_sources_list
from nxprovision_lab.state import LabHost, LabState

MIRRORS = DebianMirrors(archive="http://mirror.example.org/debian", security="http://mirror.example.org/debian-security")


def test_releases_know_their_codename_and_version() -> None:
    assert releases.get("debian12").suite == "bookworm"
    assert (releases.get("debian13").suite, releases.get("debian13").version) == ("trixie", "13")
    # a lab boots what `init` describes by default
    assert releases.DEFAULT_OS == "debian13" == SAMPLE_GROUP_VARS["nx_os_release"][0]


def test_an_unknown_release_is_one_line_with_the_choices() -> None:
    with pytest.raises(NxError, match=r"unknown lab OS 'debian11'.*debian12, debian13"):
        releases.get("debian11")


@pytest.mark.parametrize(("values", "expected"), [
    (None, ("debian13", {})),
    (["debian12"], ("debian12", {})),
    (["debian13"], ("debian13", {})),
    (["host2=debian12"], ("debian13", {"host2": "debian12"})),
    (["debian13", "db1=debian12", "app1=debian12"], ("debian13", {"db1": "debian12", "app1": "debian12"})),
    (["debian13", "debian13"], ("debian13", {})),
])
def test_os_options(values: list[str] | None, expected: tuple[str, dict[str, str]]) -> None:
    assert releases.parse_os_options(values) == expected


@pytest.mark.parametrize(("values", "message"), [
    (["debian12", "debian13"], "two releases for the whole lab"),
    (["=debian13"], "names no host"),
    (["h=debian13", "h=debian12"], "gives host h two releases"),
    (["h=ubuntu"], "unknown lab OS 'ubuntu'"),
])
def test_bad_os_options_are_refused(values: list[str], message: str) -> None:
    with pytest.raises(NxError, match=message):
        releases.parse_os_options(values)


def test_plan_os_refuses_a_host_the_lab_does_not_have() -> None:
    assert releases.plan_os(["host1", "host2"], "debian12", {"host2": "debian13"}) == {
        "host1": "debian12", "host2": "debian13",
    }
    with pytest.raises(NxError, match="does not have: host9"):
        releases.plan_os(["host1"], "debian12", {"host9": "debian13"})


def test_each_release_has_its_own_image_and_build_log() -> None:
    bookworm, trixie = image.image_path("bookworm"), image.image_path("trixie")
    assert bookworm != trixie
    assert bookworm.name.startswith("bookworm-") and trixie.name.startswith("trixie-")
    # the same recipe and packages: only the release differs
    assert bookworm.name.split("-", 1)[1] == trixie.name.split("-", 1)[1]
    assert image.image_path() == bookworm  # Debian 12 stays the default
    assert image.build_log("bookworm") == image.BUILD_LOG
    assert image.build_log("trixie") != image.BUILD_LOG


def test_building_one_release_keeps_the_other_releases_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(image, "BASE_ROOT", tmp_path)
    monkeypatch.setattr(image, "in_use", lambda _p: False)
    for name in ("bookworm-aaaaaaaaaaaa", "bookworm-bbbbbbbbbbbb", "trixie-cccccccccccc", "trixie-dddddddddddd"):
        (tmp_path / name).mkdir()
    image._remove_unused_images(keep=tmp_path / "trixie-dddddddddddd")
    # an older trixie image goes; every bookworm image stays
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bookworm-aaaaaaaaaaaa", "bookworm-bbbbbbbbbbbb", "trixie-dddddddddddd",
    ]


def test_debootstrap_fetches_the_asked_release_through_the_proxy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}

    class Done:
        returncode = 0

    def run(cmd: list[str], **kw: object) -> Done:
        seen["cmd"], seen["env"] = cmd, kw.get("env")
        return Done()

    monkeypatch.setattr(image.subprocess, "run", run)
    image._debootstrap(tmp_path / "t", "trixie", "http://mirror.example.org/debian", None, 0,
                       "http://10.213.0.1:3142")
    cmd = seen["cmd"]
    assert isinstance(cmd, list) and cmd[-3:] == ["trixie", str(tmp_path / "t"), "http://mirror.example.org/debian"]
    env = seen["env"]
    assert isinstance(env, dict) and env["http_proxy"] == "http://10.213.0.1:3142"


@pytest.mark.parametrize("suite", ["bookworm", "trixie"])
def test_host_sources_name_the_hosts_release(suite: str) -> None:
    text = host_sources_list(MIRRORS, suite)
    lines = [line for line in text.splitlines() if line.startswith("deb ")]
    assert lines == [
        f"deb http://mirror.example.org/debian {suite} main",
        f"deb http://mirror.example.org/debian {suite}-updates main",
        f"deb http://mirror.example.org/debian-security {suite}-security main",
    ]


def test_a_state_written_before_releases_loads_as_debian12(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nxprovision_lab import naming, state

    monkeypatch.setattr(naming, "STATE_ROOT", tmp_path)
    monkeypatch.setattr(state, "STATE_ROOT", tmp_path)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "state.json").write_text(json.dumps({
        "name": "old", "subnet": "10.213.0.0/24", "bridge_ip": "10.213.0.1", "architecture": "single",
        "database": "postgresql", "base_image": "/cache/bookworm-x",
        "hosts": [{"name": "host1", "index": 1, "ip": "10.213.0.2", "groups": ["lab"], "net_admin": False}],
    }))
    st = LabState.load("old")
    assert st is not None and st.hosts[0].os == "debian12"
    assert st.base_for("debian12") == "/cache/bookworm-x" and st.base_for("debian13") == ""


def test_a_mixed_lab_records_each_hosts_release() -> None:
    st = LabState(
        name="mix", subnet="10.213.0.0/24", bridge_ip="10.213.0.1", architecture="single", database="postgresql",
        hosts=[LabHost("host1", 1, "10.213.0.2", ["lab"]), LabHost("host2", 2, "10.213.0.3", ["lab"], os="debian13")],
        base_images={"debian12": "/cache/bookworm-x", "debian13": "/cache/trixie-y"},
    )
    assert [h.os for h in st.hosts] == ["debian12", "debian13"]
    assert st.base_for("debian13") == "/cache/trixie-y"


def test_cli_os_options() -> None:
    parser = cli.argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lab", "up", "--hosts", "2", "--os", "debian13", "--os", "host1=debian12"])
    assert args.os == ["debian13", "host1=debian12"]
    assert parser.parse_args(["lab", "up"]).os is None
    args = parser.parse_args(["lab", "add-host", "new1", "--group", "lab", "--os", "debian13"])
    assert args.os == "debian13"


def test_up_refuses_a_per_host_release_for_a_host_outside_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    from nxprovision_lab import manager

    # refused before anything on the machine is touched (no root needed)
    monkeypatch.setattr(manager.preflight, "check_all", lambda: pytest.fail("touched the machine"))
    with pytest.raises(NxError, match="does not have: host5"):
        manager.up("nxtest", count=2, host_os={"host5": "debian13"})
