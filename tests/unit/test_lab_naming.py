"""Names of a lab's kernel objects: short enough for the kernel, distinct between labs."""

from __future__ import annotations

import pytest

from nxprovision.errors import NxError
from nxprovision_lab.naming import IFNAMSIZ, LabNames, check_host, check_name, short_id


@pytest.mark.parametrize("name", ["nxlab", "a", "molsmoke", "x" * 20, "lab2"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "Lab", "my-lab", "2lab", "x" * 21, "a/b", "a b"])
def test_invalid_names_are_refused_with_a_fix(name: str) -> None:
    with pytest.raises(NxError) as err:
        check_name(name)
    assert err.value.fix


def test_interface_names_fit_the_kernel_limit_for_the_largest_lab() -> None:
    n = LabNames("x" * 20)
    assert len(n.bridge) <= IFNAMSIZ
    assert len(n.veth(240)) <= IFNAMSIZ


def test_two_labs_share_no_prefix() -> None:
    a, b = LabNames("nxlab"), LabNames("nxtest")
    assert a.sid != b.sid
    assert not a.veth(1).startswith(b.veth_prefix) and not b.veth(1).startswith(a.veth_prefix)
    assert a.bridge != b.bridge
    assert not a.netns("host1").startswith(b.netns_prefix)
    assert a.state_dir != b.state_dir


def test_netns_names_are_unambiguous_with_dashed_host_names() -> None:
    # lab names hold no dash, so "nx-<lab>-<host>" splits back into the same lab whatever the host is
    assert LabNames("lab").netns("s3-1") == "nx-lab-s3-1"
    assert LabNames("lab").netns("s3-1")[3:].split("-", 1)[0] == "lab"


def test_short_id_is_stable() -> None:
    assert short_id("nxlab") == short_id("nxlab")
    assert len(short_id("nxlab")) == 5


def test_host_names() -> None:
    assert check_host("s3-1") == "s3-1"
    with pytest.raises(NxError):
        check_host("Bad_Host")
