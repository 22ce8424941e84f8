"""Restore of a Patroni cluster (distributed architecture): Patroni's custom bootstrap from a pgBackRest backup,
rendered for the restore only; the idempotent post_bootstrap; the CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from tests.unit.test_backup import render_pg

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
PATRONI_CONF = "etc/patroni/config.yml.j2"
DATA_DIR = "/var/lib/postgresql/17/patroni"


def cluster(inv: Path):
    return build_cluster(load_inventory(inv))


def patroni_conf(c, **extra) -> dict:
    text = render_pg(c, "patroni", PATRONI_CONF, _patroni_data_dir=DATA_DIR, **extra)
    return yaml.safe_load(text)


def test_the_usual_configuration_bootstraps_with_initdb(make_inv):
    conf = patroni_conf(cluster(make_inv("distributed")))
    assert "method" not in conf["bootstrap"] and "pgbackrest" not in conf["bootstrap"]
    assert conf["bootstrap"]["initdb"]
    # the role's default: never a restore from an inventory
    assert patroni_conf(cluster(make_inv("distributed")), patroni_restore_set="") == conf


def test_restore_configuration_bootstraps_from_the_backup(make_inv):
    c = cluster(make_inv("distributed"))
    label = "20261126-033000F_20261126-034500I"
    conf = patroni_conf(c, patroni_restore_set=label)
    boot = conf["bootstrap"]
    assert boot["method"] == "pgbackrest"
    method = boot["pgbackrest"]
    # the same restore as the compact path's, into Patroni's data directory (pgBackRest's pg1-path)
    assert method["command"] == (f"pgbackrest --stanza=nuxeo --set={label} --type=immediate --target-action=promote "
                                 "restore")
    assert method["no_params"] is True  # pgBackRest refuses Patroni's --scope/--datadir arguments
    assert method["recovery_conf"] == {
        "restore_command": 'pgbackrest --stanza=nuxeo archive-get %f "%p"',
        "recovery_target": "immediate",
        "recovery_target_action": "promote",
        # the backup's own timeline: a later timeline of the archive must not be followed
        "recovery_target_timeline": "current",
    }
    # everything else is the usual configuration: the new cluster gets the same dcs settings and post_bootstrap
    usual = patroni_conf(c)
    for key in ("dcs", "initdb", "post_bootstrap"):
        assert boot[key] == usual["bootstrap"][key]
    assert {k: v for k, v in conf.items() if k != "bootstrap"} == {k: v for k, v in usual.items() if k != "bootstrap"}
    pg1 = [ln for ln in render_pg(c, "pgbackrest", "etc/pgbackrest/pgbackrest.conf.j2").splitlines()
           if ln.startswith("pg1-path=")]
    assert pg1 == [f"pg1-path={DATA_DIR}"] == [f"pg1-path={c.derived['backup']['data_dir']}"]


def test_restore_command_follows_the_stanza(make_inv):
    c = cluster(make_inv("distributed", set={"pgbackrest_stanza": "prod"}))
    assert c.derived["backup"]["archive_get_command"] == 'pgbackrest --stanza=prod archive-get %f "%p"'
    method = patroni_conf(c, patroni_restore_set="L")["bootstrap"]["pgbackrest"]
    assert method["command"].startswith("pgbackrest --stanza=prod --set=L ")


def test_post_bootstrap_holds_on_a_restored_database(make_inv):
    """Patroni runs post_bootstrap after a custom bootstrap too, and cancels the bootstrap when it fails: the role and
    database may exist already (restored), the password is this inventory's either way."""
    c = cluster(make_inv("distributed"))
    text = render_pg(c, "patroni", "etc/patroni/post_bootstrap.sh.j2", patroni_auth_method="scram-sha-256",
                     patroni_db_locale="C.UTF-8")
    sql = [ln for ln in text.splitlines() if ln.startswith(("SET ", "SELECT ", "ALTER ", "CREATE "))]
    assert not [ln for ln in sql if ln.startswith("CREATE ")], "an unguarded CREATE fails on a restored database"
    role, password, database = sql[1], sql[2], sql[3]
    assert role.startswith("SELECT 'CREATE ROLE \"nuxeo\" LOGIN' WHERE NOT EXISTS") and role.endswith("\\gexec")
    assert "rolname = 'nuxeo'" in role
    pw = c.settings["nx_secret_db_password"].replace("'", "''")
    assert password == f"ALTER ROLE \"nuxeo\" LOGIN PASSWORD '{pw}';"
    assert database.startswith("SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0")
    assert "WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'nuxeo')" in database
    assert database.endswith("\\gexec")
    assert sql[0] == "SET password_encryption = 'scram-sha-256';"


def test_restore_playbook_passes_syntax_check(make_inv):
    inv = make_inv("distributed")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(inv), "--vault-password-file",
                           str(inv / ".vault-pass"), str(ROOT / "playbooks" / "restore.yml")],
                          capture_output=True, text=True, env=env, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("arch", ["distributed", "compact"])
def test_cli_restores_both_architectures(make_inv, run_cli, monkeypatch, arch):
    import nxprovision.commands as commands

    calls = []
    monkeypatch.setattr(commands, "_run", lambda args, playbook, verb, vpf, secrets, extravars=None:
                        calls.append((playbook, verb, extravars)) or 0)
    inv = make_inv(arch)
    code, out, err = run_cli("restore", "-i", str(inv), "--backup", "20261126T033000Z", "--yes")
    assert code == 0, out + err
    assert [c[:2] for c in calls] == [("restore.yml", "restore")]
    assert calls[0][2]["nx_backup_id"] == "20261126T033000Z"
    c = cluster(inv)
    if arch == "distributed":
        assert f"{c.derived['db']['patroni']['bootstrap_host']} bootstraps it again from the backup" in out
    else:
        assert f"the database is restored on {c.derived['db']['primary']} (pgBackRest)" in out
    assert "restore 20261126T033000Z: done" in out


def test_restore_set_refused_in_an_inventory(make_inv):
    from nxprovision.rules import run_rules

    found = run_rules(cluster(make_inv("distributed", set={"patroni_restore_set": "20261126-033000F"})))
    assert [f.rule for f in found if f.severity == "error"] == ["settings.restore_only"]
    assert not [f for f in run_rules(cluster(make_inv("distributed"))) if f.rule == "settings.restore_only"]
