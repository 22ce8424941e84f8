"""Hosts removed with remove-node but still in the inventory: every later run names them before touching a host."""

from __future__ import annotations

from nxprovision import removed


def test_record_lives_beside_the_inventory_hidden_from_ansible(make_inv) -> None:
    inv = make_inv()
    removed.remember(inv, "front2", now=0)
    path = removed.record_path(inv)
    assert path.parent == inv and path.name.startswith(".")
    assert removed.load(inv) == {"front2": "1970-01-01T00:00:00Z"}
    # the inventory file's own path leads to the same record
    assert removed.load(inv / "hosts.yml") == {"front2": "1970-01-01T00:00:00Z"}


def test_runs_are_refused_while_a_removed_host_is_listed(make_inv, run_cli) -> None:
    inv = make_inv()
    removed.remember(inv, "front2")
    for argv in (["deploy"], ["restart", "--component", "nuxeo"], ["upgrade", "--nuxeo-version", "2023.35"], ["backup"],
                 ["secrets", "rotate", "db_password"], ["certs", "renew"]):
        code, out, err = run_cli(*argv, "-i", str(inv))
        assert code == 2, (argv, out, err)
        assert "front2 (removed " in err and "still in the inventory" in err and "no host was touched" in err, argv
        assert "delete front2 from every group" in err and "add-node" in err, argv
        assert "Traceback" not in out + err


def test_validate_and_plan_warn_and_status_json_names_the_host(make_inv, run_cli) -> None:
    inv = make_inv()
    removed.remember(inv, "front2")
    code, out, _ = run_cli("validate", "-i", str(inv))
    assert code == 0 and "[inventory.removed_host]" in out and "host front2" in out
    assert removed.RECORD_NAME in out  # where: the record's path


def test_a_host_that_left_the_inventory_leaves_the_record(make_inv) -> None:
    inv = make_inv()
    removed.remember(inv, "front2")
    removed.remember(inv, "gone9")
    assert removed.still_listed(inv, {"front1", "front2"}) == {"front2": removed.load(inv)["front2"]}
    assert set(removed.load(inv)) == {"front2"}
    removed.refuse(inv, {"front1"}, "deploy")  # front2 left the inventory: nothing to refuse
    assert not removed.record_path(inv).exists()


def test_add_node_brings_a_removed_host_back_and_remove_node_may_run_again(make_inv) -> None:
    inv = make_inv()
    removed.remember(inv, "front2")
    removed.refuse(inv, {"front1", "front2"}, "add-node", allowed=("front2",))
    removed.refuse(inv, {"front1", "front2"}, "remove-node", allowed=("front2",))
    assert removed.forget(inv, ["front2", "front1"]) == ["front2"]
    assert removed.load(inv) == {}


def test_a_broken_record_is_an_error_naming_the_file(make_inv) -> None:
    import pytest

    from nxprovision.errors import NxError

    inv = make_inv()
    removed.record_path(inv).write_text("- just\n- a list\n")
    with pytest.raises(NxError) as exc:
        removed.load(inv)
    assert str(removed.record_path(inv)) in exc.value.message and "delete the file" in (exc.value.fix or "")
