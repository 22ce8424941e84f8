"""Host keys: what known_hosts holds, what a run refuses, what `trust-hosts` records (issue 14).

The keys are real ones made by ssh-keygen; the hosts' answers are the lines ssh-keyscan prints, fed in
through a stand-in for the scan (no host answers here).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import subprocess
from pathlib import Path

import pytest

from nxprovision import cli, hostkeys
from nxprovision.errors import NxError
from nxprovision.hostkeys import HostKey, Target
from nxprovision.runevents import unreachable_cause
from nxprovision.runner import ssh_args


def _key(tmp: Path, name: str) -> HostKey:
    path = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    kind, blob = path.with_suffix(".pub").read_text().split()[:2]
    return HostKey(kind, blob)


def _ssh_fingerprint(tmp: Path, key: HostKey) -> str:
    pub = tmp / "probe.pub"
    pub.write_text(f"{key.kind} {key.blob}\n")
    return subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True, text=True, check=True).stdout.split()[1]


def test_fingerprint_is_what_ssh_keygen_shows(tmp_path: Path) -> None:
    key = _key(tmp_path, "a")
    assert key.fingerprint == _ssh_fingerprint(tmp_path, key)


def test_recorded_reads_plain_ported_and_hashed_lines(tmp_path: Path) -> None:
    a, b, c = _key(tmp_path, "a"), _key(tmp_path, "b"), _key(tmp_path, "c")
    salt = os.urandom(20)
    digest = hmac.new(salt, b"10.0.0.3", hashlib.sha1).digest()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    kh = tmp_path / "known_hosts"
    kh.write_text(f"# comment\n10.0.0.1,db1 {a.kind} {a.blob}\n[10.0.0.2]:2222 {b.kind} {b.blob}\n"
                  f"@revoked 10.0.0.1 {c.kind} {c.blob}\n{hashed} {c.kind} {c.blob}\n")
    assert hostkeys.recorded(kh, Target("db1", "10.0.0.1")).keys == [a]
    assert hostkeys.recorded(kh, Target("db1", "10.0.0.1")).lines == [2]
    assert hostkeys.recorded(kh, Target("x", "10.0.0.2", 2222)).keys == [b]
    assert hostkeys.recorded(kh, Target("x", "10.0.0.2")).keys == []  # port 22 is another entry
    assert hostkeys.recorded(kh, Target("y", "10.0.0.3")).keys == [c]
    # what we append, OpenSSH finds
    hostkeys.append(kh, Target("z", "10.0.0.4", 2200), [a])
    found = subprocess.run(["ssh-keygen", "-F", "[10.0.0.4]:2200", "-f", str(kh)], capture_output=True, text=True)
    assert found.returncode == 0 and a.blob in found.stdout


def test_parse_scan_ignores_comments() -> None:
    out = "# 10.0.0.1:22 SSH-2.0-OpenSSH_9.2\n10.0.0.1 ssh-ed25519 AAAAC3Nz\n10.0.0.1 ssh-rsa AAAAB3\n"
    assert hostkeys.parse_scan(out) == [HostKey("ssh-ed25519", "AAAAC3Nz"), HostKey("ssh-rsa", "AAAAB3")]


def test_targets_use_ansible_host_and_port() -> None:
    t = hostkeys.targets_of({"a": {"ansible_host": "10.1.1.1", "ansible_port": "2222"}, "b": {}}, ["a", "b"])
    assert t == [Target("a", "10.1.1.1", 2222), Target("b", "b", 22)]
    assert t[0].pattern == "[10.1.1.1]:2222" and t[1].pattern == "b"
    with pytest.raises(NxError, match="not a number"):
        hostkeys.targets_of({"a": {"ansible_port": "ssh"}}, ["a"])


def test_run_hosts_follow_simple_limits_and_count_everyone_otherwise() -> None:
    groups = {"all": ["a", "b", "c"], "nuxeo": ["b", "c"]}
    assert hostkeys.run_hosts(groups, ["a", "b", "c"], None) == ["a", "b", "c"]
    assert hostkeys.run_hosts(groups, ["a", "b", "c"], "a,nuxeo") == ["a", "b", "c"]
    assert hostkeys.run_hosts(groups, ["a", "b", "c"], "nuxeo") == ["b", "c"]
    assert hostkeys.run_hosts(groups, ["a", "b", "c"], "!a") == ["b", "c"]


def _inventory(tmp: Path, hosts: dict[str, str]) -> Path:
    inv = tmp / "inv"
    inv.mkdir()
    lines = ["all:", "  hosts:"] + [f"    {h}:\n      ansible_host: {ip}" for h, ip in hosts.items()]
    (inv / "hosts.yml").write_text("\n".join(lines) + "\n")
    return inv


def test_check_refuses_untrusted_and_changed_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = _inventory(tmp_path, {"n1": "10.0.0.1", "n2": "10.0.0.2"})
    hv = {"n1": {"ansible_host": "10.0.0.1"}, "n2": {"ansible_host": "10.0.0.2"}}
    old, new = _key(tmp_path, "old"), _key(tmp_path, "new")
    with pytest.raises(NxError) as untrusted:
        hostkeys.check(inv, hv, ["n1", "n2"])
    assert "n1 (10.0.0.1), n2 (10.0.0.2): no SSH host key recorded" in str(untrusted.value)
    assert f"nxprovision trust-hosts -i {inv} n1 n2" in str(untrusted.value)

    hostkeys.append(hostkeys.known_hosts_path(inv), Target("n1", "10.0.0.1"), [old])
    hostkeys.append(hostkeys.known_hosts_path(inv), Target("n2", "10.0.0.2"), [old])
    offered = {"10.0.0.1": [old], "10.0.0.2": [new]}
    monkeypatch.setattr(hostkeys, "scan", lambda t, timeout=5: offered[t.address])
    with pytest.raises(NxError) as changed:
        hostkeys.check(inv, hv, ["n1", "n2"])
    text = str(changed.value)
    assert "n2 (10.0.0.2) CHANGED" in text and "line 2" in text
    assert old.fingerprint in text and new.fingerprint in text and "no task ran" in text
    assert f"ssh-keygen -R 10.0.0.2 -f {hostkeys.known_hosts_path(inv)}" in text
    # a host that does not answer now is left to SSH (and reported unreachable by the run)
    offered["10.0.0.2"] = []
    hostkeys.check(inv, hv, ["n1", "n2"])
    # a host behind a jump host is not scanned from here
    offered["10.0.0.2"] = [new]
    hv["n2"]["ansible_ssh_common_args"] = "-o ProxyJump=bastion"
    hostkeys.check(inv, hv, ["n1", "n2"])


def _cli(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "", tty: bool = False) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    fake_in = io.StringIO(stdin)
    fake_in.isatty = lambda: tty  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr("sys.stdin", fake_in)
    code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def test_trust_hosts_shows_fingerprints_asks_and_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = _inventory(tmp_path, {"n1": "10.0.0.1", "n2": "10.0.0.2"})
    k1, k2 = _key(tmp_path, "k1"), _key(tmp_path, "k2")
    offered = {"10.0.0.1": [k1], "10.0.0.2": [k2]}
    monkeypatch.setattr(hostkeys, "scan", lambda t, timeout=5: offered[t.address])
    kh = hostkeys.known_hosts_path(inv)

    code, out, err = _cli(["trust-hosts", "-i", str(inv), "nope"], monkeypatch)
    assert code == 2 and "nope not in the inventory" in err and "Traceback" not in err

    code, out, err = _cli(["trust-hosts", "-i", str(inv)], monkeypatch)  # no terminal, no --yes
    assert code == 2 and "no terminal to confirm" in err and k1.fingerprint in out and not kh.exists()

    code, out, err = _cli(["trust-hosts", "-i", str(inv), "n1"], monkeypatch, stdin="n\n", tty=True)
    assert code == 1 and "nothing recorded" in out and not kh.exists()

    code, out, err = _cli(["trust-hosts", "-i", str(inv), "n1"], monkeypatch, stdin="yes\n", tty=True)
    assert code == 0 and "n1 (10.0.0.1): trusted" in out
    assert kh.read_text() == f"10.0.0.1 {k1.kind} {k1.blob}\n"

    code, out, err = _cli(["trust-hosts", "-i", str(inv), "--yes"], monkeypatch)
    assert code == 0 and "n1 (10.0.0.1): already trusted" in out and "n2 (10.0.0.2): trusted" in out
    assert k2.fingerprint in out

    offered["10.0.0.1"] = [k2]  # n1 answers with another key: never replaced silently
    code, out, err = _cli(["trust-hosts", "-i", str(inv), "--yes"], monkeypatch)
    assert code == 1 and "n1 (10.0.0.1): NOT trusted" in err and "CHANGED" in err
    assert hostkeys.recorded(kh, Target("n1", "10.0.0.1")).keys == [k1]

    offered["10.0.0.2"] = []
    code, out, err = _cli(["trust-hosts", "-i", str(inv), "n2"], monkeypatch)
    assert code == 1 and "no SSH answer" in err


def test_runner_points_ssh_at_the_inventory_known_hosts_first(tmp_path: Path) -> None:
    cfg = Path(__file__).resolve().parents[2] / "ansible.cfg"
    (tmp_path / "inv").mkdir()
    args = ssh_args(cfg, tmp_path / "inv")
    assert "StrictHostKeyChecking=yes" in args
    assert args.endswith(f"-o UserKnownHostsFile={(tmp_path / 'inv').resolve()}/.known_hosts")
    text = cfg.read_text()
    assert "host_key_checking = True" in text and "host_key_checking = False" not in text


SSH_CHANGED = """@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
{offered}.
Please contact your system administrator.
Add correct host key in {path} to get rid of this message.
Offending ED25519 key in {path}:2
  remove with:
  ssh-keygen -f '{path}' -R '10.0.0.2'
Host key for 10.0.0.2 has changed and you have requested strict checking.
Host key verification failed."""


def test_unreachable_cause_says_which_key_changed(tmp_path: Path) -> None:
    old, new = _key(tmp_path, "old"), _key(tmp_path, "new")
    kh = tmp_path / "known_hosts"
    hostkeys.append(kh, Target("n1", "10.0.0.1"), [new])
    hostkeys.append(kh, Target("n2", "10.0.0.2"), [old])
    msg = "Failed to connect to the host via ssh: " + SSH_CHANGED.format(offered=new.fingerprint, path=kh)
    cause = unreachable_cause(msg)
    assert cause.startswith("SSH host key CHANGED") and "\n" not in cause
    assert f"offered {new.fingerprint}, expected {old.fingerprint} ({kh}:2)" in cause
    assert "trust-hosts" in cause
    unknown = ("Failed to connect to the host via ssh: No ED25519 host key is known for 10.0.0.9 and you have "
               "requested strict checking.\r\nHost key verification failed.")
    assert "not trusted yet" in unreachable_cause(unknown)


def test_add_node_of_an_untrusted_host_says_how_to_trust_it(
    make_inv, run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inv = make_inv("compact")
    key = _key(tmp_path, "k")
    monkeypatch.setattr(hostkeys, "scan", lambda t, timeout=5: [])  # nothing answers here
    monkeypatch.setenv("NXPROVISION_RUNS_DIR", str(tmp_path / "runs"))
    from nxprovision.inventory import load_inventory

    view = load_inventory(inv)
    for t in hostkeys.targets_of(view.hostvars, [h for h in view.hostvars if h != "front2"]):
        hostkeys.append(hostkeys.known_hosts_path(inv), t, [key])
    code, out, err = run_cli("add-node", "-i", str(inv), "front2")
    assert code == 2, out + err
    assert "front2 (front2): no SSH host key recorded" in err and f"trust-hosts -i {inv} front2`" in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unreachable_cause_names_a_refused_key_in_ssh_and_mitogen_words() -> None:
    ssh = "Failed to connect to the host via ssh: ops@10.0.0.5: Permission denied (publickey,password)."
    mitogen = "Task failed: SSH password was requested, but none specified"
    for message in (ssh, mitogen):
        assert unreachable_cause(message).startswith("SSH refused the key ("), message
    assert unreachable_cause("Task failed: EOF on stream; last 100 lines received: ssh: connect to host 10.0.0.5 "
                             "port 22: No route to host").startswith("no answer over SSH")
