"""The tls role's configure fast path: a self-checking stamp on the host, a stamp of the inputs on the controller and
the decision between them. Every real difference must take the full path; nothing secret is recorded."""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "tls"
sys.path.insert(0, str(ROOT / "plugins" / "modules"))
from nx_configure_stamp import build  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def _cert(tmp: Path, name: str, days: int) -> tuple[Path, Path]:
    key, cert = tmp / f"{name}.key", tmp / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", str(days), "-subj", f"/CN={name}"],
                   check=True, capture_output=True)
    key.chmod(0o600)
    return key, cert


def _answer(fact: Path) -> dict[str, Any]:
    return json.loads(subprocess.run(["sh", str(fact)], capture_output=True, text=True, check=True).stdout)


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Any]:
    """A host's tls files as the full path leaves them, and the fact recorded over them."""
    d = tmp_path / "tls"
    d.mkdir()
    key, cert = _cert(d, "h1", 200)
    ckey, ccert = _cert(d, "admin", 100)
    ca = d / "ca.crt"
    shutil.copy(cert, ca)
    store = d / "truststore.jks"
    store.write_bytes(b"\xfe\xed\xfe\xed store")
    files = [str(ca), str(store), str(cert), str(ccert)]
    text, earliest = build("abc123", files, [str(key), str(ckey)], [str(d)], [str(cert), str(ccert)])
    fact = tmp_path / "nx_configure_tls.fact"
    fact.write_text(text)
    return {"dir": d, "key": key, "cert": cert, "ckey": ckey, "ccert": ccert, "ca": ca, "store": store,
            "fact": fact, "text": text, "earliest": earliest}


def test_fact_answers_the_stamp_checksums_and_earliest_end(host: dict[str, Any]) -> None:
    got = _answer(host["fact"])
    assert got["stamp"] == "abc123"
    # the client certificate (100 days) ends first
    assert abs(got["not_after"] - (time.time() + 100 * 86400)) < 3600
    assert got["not_after"] == host["earliest"] == got["certificates"][str(host["ccert"])]["not_after"]
    assert len(got["certificates"][str(host["cert"])]["sha256"]) == 64
    assert str(host["store"]) in got["files"]


@pytest.mark.parametrize("change", [
    "edit the certificate", "delete the certificate", "delete the key", "another key", "key mode",
    "edit the CA", "edit the trust store", "delete the client key", "directory mode",
])
def test_any_change_on_the_host_withdraws_the_stamp(host: dict[str, Any], change: str) -> None:
    if change == "edit the certificate":
        host["cert"].write_text(host["cert"].read_text() + "\n")
    elif change == "delete the certificate":
        host["cert"].unlink()
    elif change == "delete the key":
        host["key"].unlink()
    elif change == "another key":
        other, _ = _cert(host["dir"], "other", 10)
        shutil.copy(other, host["key"])
    elif change == "key mode":
        host["key"].chmod(0o644)
    elif change == "edit the CA":
        host["ca"].write_text("-----BEGIN CERTIFICATE-----\nedited\n-----END CERTIFICATE-----\n")
    elif change == "edit the trust store":
        host["store"].write_bytes(b"\xfe\xed\xfe\xed edited")
    elif change == "delete the client key":
        host["ckey"].unlink()
    elif change == "directory mode":
        host["dir"].chmod(0o700)
    assert _answer(host["fact"]) == {"stamp": "", "not_after": 0}


def test_an_untouched_key_rewritten_with_the_same_content_keeps_the_stamp(host: dict[str, Any]) -> None:
    # a key copied again (operator's key, same content) is the same key pair: no reason to run the full path
    data = host["key"].read_bytes()
    host["key"].unlink()
    host["key"].write_bytes(data)
    host["key"].chmod(0o600)
    assert _answer(host["fact"])["stamp"] == "abc123"


def test_no_key_material_in_the_fact(host: dict[str, Any]) -> None:
    for key in (host["key"], host["ckey"]):
        body = [line for line in key.read_text().splitlines() if line and not line.startswith("-----")]
        assert body and not any(line in host["text"] for line in body)
    assert "PRIVATE" not in host["text"]


def test_recording_refuses_missing_files_and_unreadable_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing"):
        build("s1", [str(tmp_path / "nope.crt")], [], [], [])
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(ValueError, match="private key"):
        build("s1", [], [str(bad)], [], [])


# -- the controller side: the stamp of the inputs and the decision (rendered by Ansible's own templating) -------

@functools.cache
def _plugins() -> None:
    from ansible.plugins.loader import init_plugin_loader

    init_plugin_loader()


def _templar(variables: dict[str, Any]):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    _plugins()
    return Templar(loader=DataLoader(), variables=variables)


def _role_vars() -> dict[str, Any]:
    from ansible.template import trust_as_template

    out: dict[str, Any] = {}
    for f in (ROLE / "defaults" / "main.yml", ROLE / "vars" / "main.yml"):
        for k, v in yaml.safe_load(f.read_text()).items():
            out[k] = trust_as_template(v) if isinstance(v, str) else v
    return out


def _nx(tmp_path: Path) -> dict[str, Any]:
    tls_dir = "/etc/nxprovision/tls"
    return {"tls": {
        "ca_cert_file": ".pki/ca.crt", "ca_key_file": ".pki/ca.key", "dir": tls_dir, "ca_path": f"{tls_dir}/ca.crt",
        "cert_days": 365, "renew_days": 30,
        "truststore": {"path": f"{tls_dir}/truststore.jks", "password": "s3cret-store", "hosts": ["h1"]},
        "certs": {"h1": {
            "common_name": "h1", "dns": ["h1"], "ips": ["10.0.0.1"], "services": ["opensearch"],
            "cert": f"{tls_dir}/h1.crt", "key": f"{tls_dir}/h1.key", "source_cert": "", "source_key": "",
            "paths": {}, "usages": ["serverAuth", "clientAuth"],
            "clients": [{"name": "opensearch-admin", "common_name": "c-search-admin",
                         "cert": f"{tls_dir}/opensearch-admin.crt", "key": f"{tls_dir}/opensearch-admin.key"}]}}}}


def _render(tmp_path: Path, nx: dict[str, Any], expr: str, **extra: Any) -> Any:
    from ansible.template import trust_as_template

    inv = tmp_path / "inv"
    (inv / ".pki").mkdir(parents=True, exist_ok=True)
    if not (inv / ".pki" / "ca.crt").exists():
        (inv / ".pki" / "ca.crt").write_text("CA one\n")
    variables = {**_role_vars(), "nx": nx, "role_path": str(ROLE), "inventory_dir": str(inv),
                 "inventory_hostname": "h1", "ansible_run_tags": ["all"], "ansible_local": {}, **extra}
    return _templar(variables).template(trust_as_template("{{ " + expr + " }}"))


def _stamp(tmp_path: Path, nx: dict[str, Any]) -> str:
    return str(_render(tmp_path, nx, "__tls_configure_stamp"))


def _operator(nx: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    nx = copy.deepcopy(nx)
    inv = tmp_path / "inv"
    (inv / ".pki").mkdir(parents=True, exist_ok=True)
    (inv / "op.crt").write_text("operator cert\n")
    (inv / "op.key").write_text("operator key\n")
    nx["tls"]["certs"]["h1"].update(source_cert="op.crt", source_key="op.key")
    return nx


MODEL_CHANGES = {
    "a DNS name": lambda c: c["dns"].append("h1.example"),
    "an IP address": lambda c: c["ips"].append("10.0.0.9"),
    "the usages": lambda c: c.update(usages=["serverAuth"]),
    "a client certificate": lambda c: c["clients"].append({"name": "x", "common_name": "x", "cert": "/x.crt",
                                                           "key": "/x.key"}),
    "the services": lambda c: c["services"].append("kafka"),
}


@pytest.mark.parametrize("change", sorted(MODEL_CHANGES))
def test_stamp_changes_with_what_the_model_computes(tmp_path: Path, change: str) -> None:
    nx = _nx(tmp_path)
    before = _stamp(tmp_path, nx)
    assert _stamp(tmp_path, copy.deepcopy(nx)) == before  # stable for the same inputs
    MODEL_CHANGES[change](nx["tls"]["certs"]["h1"])
    assert _stamp(tmp_path, nx) != before


def test_stamp_changes_with_the_ca_the_trust_store_and_the_validity(tmp_path: Path) -> None:
    nx = _nx(tmp_path)
    seen = {_stamp(tmp_path, nx)}
    (tmp_path / "inv" / ".pki" / "ca.crt").write_text("CA two (rotated)\n")
    seen.add(_stamp(tmp_path, nx))
    nx["tls"]["truststore"]["password"] = "another"
    seen.add(_stamp(tmp_path, nx))
    nx["tls"]["truststore"]["hosts"] = []
    seen.add(_stamp(tmp_path, nx))
    nx["tls"]["cert_days"] = 90
    seen.add(_stamp(tmp_path, nx))
    assert len(seen) == 5
    # the renewal window is compared at run time, not recorded
    nx["tls"]["renew_days"] = 10
    assert _stamp(tmp_path, nx) in seen


def test_stamp_changes_with_the_operators_files(tmp_path: Path) -> None:
    nx = _operator(_nx(tmp_path), tmp_path)
    before = _stamp(tmp_path, nx)
    (tmp_path / "inv" / "op.crt").write_text("operator cert, replaced\n")
    after_cert = _stamp(tmp_path, nx)
    (tmp_path / "inv" / "op.key").write_text("operator key, replaced\n")
    assert len({before, after_cert, _stamp(tmp_path, nx)}) == 3


def test_stamp_and_watched_files_hold_no_secret(tmp_path: Path) -> None:
    nx = _operator(_nx(tmp_path), tmp_path)
    rendered = json.dumps([_render(tmp_path, nx, v) for v in
                           ("__tls_configure_stamp", "__tls_stamp_files", "__tls_stamp_keys", "__tls_stamp_expiring")])
    assert "s3cret-store" not in rendered and "operator key" not in rendered and "CA one" not in rendered
    assert len(_stamp(tmp_path, nx)) == 40


def test_what_the_stamp_watches(tmp_path: Path) -> None:
    nx = _nx(tmp_path)
    d = "/etc/nxprovision/tls"
    assert _render(tmp_path, nx, "__tls_stamp_files") == [
        f"{d}/ca.crt", "/etc/ansible/facts.d/tls.fact", f"{d}/truststore.jks", f"{d}/h1.crt",
        f"{d}/opensearch-admin.crt"]
    assert _render(tmp_path, nx, "__tls_stamp_keys") == [f"{d}/h1.key", f"{d}/opensearch-admin.key"]
    assert _render(tmp_path, nx, "__tls_stamp_expiring") == [f"{d}/h1.crt", f"{d}/opensearch-admin.crt"]
    # operator certificates: watched, not renewed by the role (no expiry gate)
    op = _operator(nx, tmp_path)
    assert _render(tmp_path, op, "__tls_stamp_expiring") == []
    assert _render(tmp_path, op, "__tls_stamp_keys") == [f"{d}/h1.key"]
    # a host with the CA certificate only
    nx["tls"]["certs"] = {}
    nx["tls"]["truststore"]["hosts"] = []
    assert _render(tmp_path, nx, "__tls_stamp_files") == [f"{d}/ca.crt", "/etc/ansible/facts.d/tls.fact"]
    assert _render(tmp_path, nx, "__tls_stamp_keys") == []


def _fast(tmp_path: Path, nx: dict[str, Any], recorded: dict[str, Any] | None, **extra: Any) -> bool:
    local = {"nx_configure_tls": recorded} if recorded is not None else {}
    return bool(_render(tmp_path, nx, "__tls_configure_fast | bool", ansible_local=local, **extra))


def test_decision(tmp_path: Path) -> None:
    nx = _nx(tmp_path)
    stamp = _stamp(tmp_path, nx)
    day = 86400
    far = {"stamp": stamp, "not_after": int(time.time()) + 200 * day}
    assert _fast(tmp_path, nx, far)
    # no fact yet (first run, or a fact gathering that found a file changed)
    assert not _fast(tmp_path, nx, None)
    assert not _fast(tmp_path, nx, {"stamp": "", "not_after": 0})
    # another input
    assert not _fast(tmp_path, nx, {**far, "stamp": "0" * 40})
    # due: within nx_tls_renew_days (30) of its end, or already expired
    assert not _fast(tmp_path, nx, {**far, "not_after": int(time.time()) + 29 * day})
    assert not _fast(tmp_path, nx, {**far, "not_after": int(time.time()) - day})
    assert _fast(tmp_path, nx, {**far, "not_after": int(time.time()) + 31 * day})
    nx["tls"]["renew_days"] = 60
    assert not _fast(tmp_path, nx, {**far, "not_after": int(time.time()) + 31 * day})
    # forced
    assert not _fast(tmp_path, nx, far, tls_force_renew=True)
    assert not _fast(tmp_path, nx, far, tls_force_renew="true")  # as an extra var from the command line
    assert not _fast(tmp_path, nx, far, tls_fast_path=False)
    assert not _fast(tmp_path, nx, far, ansible_run_tags=["tls_configure"])
    assert _fast(tmp_path, nx, far, ansible_run_tags=["role::tls"])


def test_decision_without_issued_certificates_ignores_the_expiry(tmp_path: Path) -> None:
    nx = _operator(_nx(tmp_path), tmp_path)
    stamp = _stamp(tmp_path, nx)
    assert _fast(tmp_path, nx, {"stamp": stamp, "not_after": 0})


# -- the wiring ---------------------------------------------------------------------------------------------

def test_main_dispatches_configure_behind_the_decision() -> None:
    main = yaml.safe_load((ROLE / "tasks" / "main.yml").read_text())
    configure = next(t for t in main if t["name"] == "Configure")
    # an include (its `when` skips the whole phase in one step), gated on the decision only
    assert configure["ansible.builtin.include_tasks"]["file"] == "configure.yml"
    assert configure["when"].strip() == "not __tls_configure_fast | bool"
    last = yaml.safe_load((ROLE / "tasks" / "configure.yml").read_text())[-1]
    assert last["nx_configure_stamp"]["name"] == "tls"
    assert "__tls_configure_stamp" in last["nx_configure_stamp"]["stamp"]
    # the stamp hashes the phase's own task files: a new release of the role runs the phase again
    stamp_expr = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__tls_configure_stamp"]
    assert "tasks/configure.yml" in stamp_expr and "tasks/client.yml" in stamp_expr


def test_certs_renew_takes_the_full_path() -> None:
    plays = yaml.safe_load((ROOT / "playbooks" / "certs_renew.yml").read_text())
    roles = [r for p in plays for r in p.get("roles", []) if isinstance(r, dict) and r.get("role") == "tls"]
    assert roles and all(r["vars"]["tls_fast_path"] is False for r in roles)
