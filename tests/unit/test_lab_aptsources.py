"""Reading the machine's Debian mirror from its apt sources (both formats)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nxprovision.errors import NxError
from nxprovision_lab import aptsources
from nxprovision_lab.aptsources import DebianMirrors

DEB822 = """\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGPL
 -----END PGP PUBLIC KEY BLOCK-----

Enabled: no
Types: deb
URIs: http://disabled.example.org/debian
Suites: bookworm
Components: main
"""


def test_deb822_stanzas_with_folded_fields_and_disabled_entries() -> None:
    entries = aptsources.parse_deb822(DEB822)
    assert len(entries) == 2
    assert entries[0].suites == ("bookworm", "bookworm-updates")
    assert entries[1].types == ("deb", "deb-src")
    assert entries[1].uris == ("http://mirror.example.org/debian-security",)


def test_one_line_format_with_options() -> None:
    text = (
        "# comment\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://m.example/debian bookworm main\n"
        "deb-src http://m.example/debian bookworm main\n"
        "deb http://m.example/debian-security bookworm-security main # trailing\n"
        "deb cdrom:[Debian]/ bookworm main\n"
    )
    entries = aptsources.parse_one_line(text)
    assert [e.uris[0] for e in entries] == [
        "http://m.example/debian",
        "http://m.example/debian",
        "http://m.example/debian-security",
        "cdrom:[Debian]/",
    ]
    assert entries[0].components == ("main",)


def test_mirrors_pick_archive_and_security() -> None:
    m = aptsources.debian_mirrors(aptsources.parse_deb822(DEB822), "bookworm")
    assert m == DebianMirrors("http://mirror.example.org/debian", "http://mirror.example.org/debian-security")


def test_entries_of_other_repositories_are_not_taken_for_debian() -> None:
    entries = aptsources.parse_one_line(
        "deb https://deb.example.com/node_20.x nodistro main\ndeb http://m.example/debian/ bookworm main\n"
    )
    m = aptsources.debian_mirrors(entries, "bookworm")
    assert m.archive == "http://m.example/debian" and m.security is None


def test_no_debian_mirror_is_a_clear_error() -> None:
    with pytest.raises(NxError, match="no Debian mirror for 'bookworm'") as err:
        entries = aptsources.parse_one_line("deb http://m.example/debian trixie main\n")
        aptsources.debian_mirrors(entries, "bookworm")
    assert "sources" in (err.value.fix or "")


def test_read_sources_ignores_files_apt_ignores(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    disabled = tmp_path / "sources.list.d" / "other.list.disabled"
    disabled.write_text("deb http://no.example/debian bookworm main\n")
    (tmp_path / "sources.list").write_text("deb http://first.example/debian bookworm main\n")
    entries = aptsources.read_sources(tmp_path)
    assert aptsources.debian_mirrors(entries, "bookworm").archive == "http://first.example/debian"
    assert all("no.example" not in e.uris[0] for e in entries)


def test_codename_from_os_release(tmp_path: Path) -> None:
    f = tmp_path / "os-release"
    f.write_text('NAME="Debian GNU/Linux"\nVERSION_CODENAME=bookworm\n')
    assert aptsources.machine_codename(f) == "bookworm"


def test_host_sources_list_uses_the_machine_mirrors() -> None:
    mirrors = DebianMirrors("http://a.example/debian", "http://a.example/sec")
    text = aptsources.host_sources_list(mirrors, "bookworm")
    lines = [x for x in text.splitlines() if not x.startswith("#")]
    assert lines == [
        "deb http://a.example/debian bookworm main",
        "deb http://a.example/debian bookworm-updates main",
        "deb http://a.example/sec bookworm-security main",
    ]
