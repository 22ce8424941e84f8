"""Issue 18: the Ansible options of every running verb, how they reach ansible-runner, and what -e may not do."""

from __future__ import annotations

import argparse
import io
import json
import shlex
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nxprovision import runner
from nxprovision.ansibleopts import BECOME_PROMPT, AnsibleOptions, ansible_options, parse_extra_vars
from nxprovision.cli import build_parser
from nxprovision.errors import NxError
from nxprovision.runner import run_playbook

BECOME_PW = "Become-Pw-7f3a9c21"

RUNNING_VERBS = [
    ["deploy"], ["add-node", "h1"], ["remove-node", "h1"], ["restart"], ["upgrade", "--nuxeo-version", "2025.1"],
    ["backup"], ["restore"], ["secrets", "rotate", "db_password"], ["support-bundle"], ["status"], ["prechecks"],
    ["certs", "check"], ["certs", "renew"],
]
OPTIONS = ["-e", "a=1", "--extra-vars", "@vars.yml", "-u", "ops", "--private-key", "~/.ssh/k", "-b", "-K",
           "--forks", "7", "--ssh-common-args=-o ProxyJump=bastion"]


@pytest.mark.parametrize("verb", RUNNING_VERBS, ids=[" ".join(v[:2]) for v in RUNNING_VERBS])
def test_every_running_verb_takes_the_ansible_options(verb: list[str]) -> None:
    args = build_parser().parse_args([*verb, "-i", "inv", *OPTIONS])
    assert args.extra_vars == ["a=1", "@vars.yml"]
    assert (args.user, args.private_key, args.become, args.ask_become_pass, args.forks) == \
        ("ops", "~/.ssh/k", True, True, 7)
    assert args.ssh_common_args == "-o ProxyJump=bastion"


def test_defaults_and_bad_forks(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["deploy", "-i", "inv"])
    assert (args.extra_vars, args.user, args.become, args.ask_become_pass, args.forks) == ([], None, False, False, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["deploy", "-i", "inv", "--forks", "0"])
    assert "--forks" in capsys.readouterr().err


def test_extra_vars_read_like_ansible_playbook(tmp_path: Path) -> None:
    f = tmp_path / "vars.yml"
    f.write_text("nuxeo_java_xmx: 2g\nlist_var: [1, 2]\nb: from-file\n")
    got = parse_extra_vars(["a=1 b=two", '{"c": {"d": true}}', f"@{f}", "e='x y'"])
    assert got == {"a": "1", "b": "from-file", "c": {"d": True}, "nuxeo_java_xmx": "2g", "list_var": [1, 2],
                   "e": "x y"}


@pytest.mark.parametrize("name", ["nx", "nx_secret_db_password", "nx_secret_db_password_previous", "__nx_db_primary",
                                  "ansible_become_password", "ansible_ssh_pass", "ansible_ssh_args",
                                  "ansible_become"])
def test_extra_vars_cannot_override_the_model_secrets_or_guards(name: str) -> None:
    with pytest.raises(NxError) as exc:
        parse_extra_vars([f"{name}=x"])
    assert f"-e {name}: refused" in exc.value.message and "nothing was run" in exc.value.message
    with pytest.raises(NxError):
        parse_extra_vars([json.dumps({"ok": 1, name: {"architecture": "single"}})])


@pytest.mark.parametrize("value,says", [("./vars.yml", "prepend @"), ("[1, 2]", "not a set of variables"),
                                        ("@/nonexistent/vars.yml", "cannot read"), ("{a: [", "not valid YAML")])
def test_bad_extra_vars_are_one_clear_error(value: str, says: str) -> None:
    with pytest.raises(NxError) as exc:
        parse_extra_vars([value])
    assert says in str(exc.value)


def test_a_vault_encrypted_extra_vars_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "secret.yml"
    f.write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    with pytest.raises(NxError, match="vault-encrypted"):
        parse_extra_vars([f"@{f}"])


def test_refused_extra_vars_stop_a_verb_before_any_host(run_cli: Any, make_inv: Any, runs_dir: Path) -> None:
    inv = make_inv("single")
    code, _out, err = run_cli("deploy", "-i", str(inv), "-e", "nx={}")
    assert code == 2 and "-e nx: refused" in err and "Traceback" not in err
    assert not runs_dir.exists() or not any(runs_dir.iterdir())  # no run was even started


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NXPROVISION_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_the_verbs_own_vars_win_and_a_clash_is_refused() -> None:
    opts = AnsibleOptions(extra_vars={"nuxeo_java_xmx": "2g"}, user="ops", private_key="/k", ssh_common_args="-J b")
    assert opts.run_vars({"nx_backup_id": "1"}, "backup") == {
        "nuxeo_java_xmx": "2g", "ansible_user": "ops", "ansible_ssh_private_key_file": "/k",
        "ansible_ssh_common_args": "-J b", "nx_backup_id": "1"}
    with pytest.raises(NxError, match="`backup` sets it itself"):
        AnsibleOptions(extra_vars={"nx_backup_id": "x"}).run_vars({"nx_backup_id": "1"}, "backup")


def test_the_become_password_is_asked_once_per_command() -> None:
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return BECOME_PW

    args = argparse.Namespace(ask_become_pass=True, become=False, extra_vars=["a=1"], user="ops", forks=3,
                              private_key=None, ssh_common_args=None)
    first = ansible_options(args, prompt)
    assert ansible_options(args, prompt) is first and len(asked) == 1
    assert first.become and first.passwords() == {BECOME_PROMPT: BECOME_PW}
    assert first.cmdline() == ["--become", "--ask-become-pass", "--forks", "3"]
    assert BECOME_PW not in repr(first) and BECOME_PW not in json.dumps(first.record())
    assert first.record()["ask_become_pass"] is True


# -- through ansible-runner ---------------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    (h / "playbooks").mkdir(parents=True)
    (h / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = False\n")
    (h / "playbooks" / "show.yml").write_text(
        "- name: Show\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Say\n      ansible.builtin.debug:\n"
        '        msg: "greeting={{ greeting }} user={{ ansible_user }}"\n'
        '    - name: Breaks\n      ansible.builtin.fail:\n        msg: "boom {{ my_secret }}"\n'
        "      when: fail_now | default(false) | bool\n"
    )
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  vars:\n    ansible_connection: local\n    ansible_user: root\n"
                   "    ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
                   f"    my_secret: {BECOME_PW}\n  hosts:\n    a:\n")
    monkeypatch.setenv("NXPROVISION_HOME", str(h))
    monkeypatch.setenv("NXPROVISION_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


@pytest.fixture
def deadline() -> Iterator[None]:
    """An unanswered become prompt would wait forever: fail instead."""
    def expired(*_a: Any) -> None:
        raise TimeoutError("the run did not end: was the BECOME password prompt answered?")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(240)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def test_the_runner_command_line_and_vars(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(_ar: Any, run_dir: Path, _root: Path, _pb: Path, _inv: Path, cmdline: list[str], _limit: Any,
                 _tags: Any, extravars: dict[str, Any], envvars: dict[str, str], _verbosity: int, _on_event: Any,
                 passwords: dict[str, str] | None = None) -> Any:
        seen.update(cmdline=shlex.split(shlex.join(cmdline)), extravars=extravars, envvars=envvars,
                    passwords=passwords, env_passwords=(run_dir / "env" / "passwords").read_text())
        return argparse.Namespace(rc=0, status="successful")

    monkeypatch.setattr(runner, "_run", fake_run)
    opts = AnsibleOptions(extra_vars={"greeting": "hi"}, user="ops", become=True, become_password=BECOME_PW,
                          forks=4, ssh_common_args="-o ProxyJump=jump.example -o 'ServerAliveInterval 5'")
    result = run_playbook("show.yml", home / "inv.yml", verb="t", vault_password_file=None, secrets=[],
                          out=io.StringIO(), extravars={"nx_x": 1}, options=opts)
    assert seen["cmdline"] == ["--become", "--ask-become-pass", "--forks", "4"]
    assert seen["extravars"] == {"greeting": "hi", "ansible_user": "ops", "nx_x": 1,
                                 "ansible_ssh_common_args": "-o ProxyJump=jump.example -o 'ServerAliveInterval 5'"}
    assert seen["passwords"] == {BECOME_PROMPT: BECOME_PW}
    assert seen["env_passwords"] == "{}"  # ansible-runner keeps the given passwords in memory then
    # the pinned known_hosts still come first on SSH's command line: a jump host cannot relax them
    assert "StrictHostKeyChecking=yes" in seen["envvars"]["ANSIBLE_SSH_ARGS"]
    command = json.loads((result.run_dir / "command.json").read_text())
    assert command["ansible"]["ask_become_pass"] is True and command["ansible"]["user"] == "ops"
    assert BECOME_PW not in (result.run_dir / "command.json").read_text()


def test_extra_vars_and_user_win_over_the_inventory_in_a_real_run(home: Path) -> None:
    out = io.StringIO()
    result = run_playbook("show.yml", home / "inv.yml", verb="t", vault_password_file=None, secrets=[],
                          out=out, options=AnsibleOptions(extra_vars={"greeting": "hello"}, user="ops"))
    assert result.rc == 0, out.getvalue()
    events = "".join(f.read_text() for f in result.run_dir.rglob("job_events/*.json"))
    assert "greeting=hello user=ops" in events


def test_a_run_through_ansible_runner_keeps_host_key_checking_on(home: Path) -> None:
    """ansible-runner sets ANSIBLE_HOST_KEY_CHECKING=False unless told, and Ansible then appends
    StrictHostKeyChecking=no to SSH's command line: the run's own configuration must say True."""
    (home / "home" / "playbooks" / "hostkeys.yml").write_text(
        "- name: Show\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Say\n      ansible.builtin.debug:\n"
        "        msg: \"host_key_checking={{ lookup('ansible.builtin.config', 'HOST_KEY_CHECKING') }}\"\n"
    )
    out = io.StringIO()
    result = run_playbook("hostkeys.yml", home / "inv.yml", verb="t", vault_password_file=None, secrets=[], out=out)
    assert result.rc == 0, out.getvalue()
    events = "".join(f.read_text() for f in result.run_dir.rglob("job_events/*.json"))
    assert "host_key_checking=True" in events, events[-2000:]


def test_the_become_password_is_answered_and_never_reaches_the_records(home: Path, deadline: None) -> None:
    """-K: ansible-playbook asks BECOME password, ansible-runner answers from memory; the records hold it nowhere,
    even where a task printed it (masked like a vault secret)."""
    out = io.StringIO()
    opts = AnsibleOptions(extra_vars={"greeting": "x", "fail_now": True}, become_password=BECOME_PW)
    result = run_playbook("show.yml", home / "inv.yml", verb="t", vault_password_file=None, secrets=[],
                          out=out, options=opts)
    text = out.getvalue()
    assert result.rc != 0 and [f.task for f in result.failures] == ["Breaks"], text  # the run went past the prompt
    assert BECOME_PW not in text
    files = [f for f in result.run_dir.rglob("*") if f.is_file()]
    assert any(b"boom ********" in f.read_bytes() for f in files)
    assert [str(f) for f in files if BECOME_PW.encode() in f.read_bytes()] == []
    assert not (result.run_dir / "env" / "passwords").exists()


MITOGEN_PLAYS = (
    "- name: Free\n  hosts: all\n  gather_facts: false\n"
    "  strategy: \"{{ lookup('ansible.builtin.env', 'NXPROVISION_FREE_STRATEGY') or 'free' }}\"\n  tasks:\n"
    "    - name: Parent in the free play\n      ansible.builtin.shell: tr '\\0' ' ' < /proc/$PPID/cmdline\n"
    "      changed_when: false\n"
    "- name: Linear\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Parent in the linear play\n      ansible.builtin.shell: tr '\\0' ' ' < /proc/$PPID/cmdline\n"
    "      changed_when: false\n"
)


def _parents(result: Any) -> dict[str, str]:
    """Each task's module process parent, read from the run's job events."""
    out: dict[str, str] = {}
    for f in result.run_dir.rglob("job_events/*.json"):
        e = json.loads(f.read_text())
        if e.get("event") == "runner_on_ok":
            out[e["event_data"]["task"]] = e["event_data"]["res"]["stdout"]
    return out


def test_mitogen_carries_every_play_and_no_mitogen_turns_it_off(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Mitogen runs a host's modules from one interpreter named `mitogen:...`; plain Ansible starts AnsiballZ per
    task. The free-strategy play (site.yml's OS baseline) is carried too. This inventory's host is local: Mitogen
    only when asked (by default it carries runs whose hosts are all reached over SSH)."""
    (home / "home" / "playbooks" / "mitogen.yml").write_text(MITOGEN_PLAYS)
    monkeypatch.delenv("NXPROVISION_MITOGEN", raising=False)
    runs = {}
    for label, opts in (("asked", AnsibleOptions(mitogen=True)), ("off", AnsibleOptions(mitogen=False)),
                        ("default", AnsibleOptions())):
        out = io.StringIO()
        runs[label] = run_playbook("mitogen.yml", home / "inv.yml", verb="t", vault_password_file=None,
                                   secrets=[], out=out, options=opts)
        assert runs[label].rc == 0, out.getvalue()
    on, off, local = _parents(runs["asked"]), _parents(runs["off"]), _parents(runs["default"])
    assert set(on) == set(off) == set(local) == {"Parent in the free play", "Parent in the linear play"}
    assert all("(mitogen:" in p for p in on.values()), on
    assert all("(mitogen:" not in p and "AnsiballZ_command" in p for p in {**off, **local}.values()), (off, local)
    strategies = {k: json.loads((r.run_dir / "command.json").read_text())["strategy"] for k, r in runs.items()}
    assert strategies == {"asked": "mitogen", "off": "ansible", "default": "ansible"}

    monkeypatch.setenv("NXPROVISION_MITOGEN", "1")
    out = io.StringIO()
    result = run_playbook("mitogen.yml", home / "inv.yml", verb="t", vault_password_file=None, secrets=[], out=out)
    assert result.rc == 0 and all("(mitogen:" in p for p in _parents(result).values()), out.getvalue()


def test_mitogen_by_default_over_ssh_and_the_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    from nxprovision import strategy

    monkeypatch.delenv("NXPROVISION_MITOGEN", raising=False)
    monkeypatch.delenv("ANSIBLE_TIMEOUT", raising=False)
    env = strategy.strategy_env(None, over_ssh=True)
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear" and env["NXPROVISION_FREE_STRATEGY"] == "mitogen_free"
    # Mitogen's timeout covers its whole start on the host: longer than SSH's connect timeout, unless the
    # operator's environment says otherwise
    assert env["ANSIBLE_TIMEOUT"] == str(strategy.CONNECT_TIMEOUT_S)
    assert strategy.without_mitogen({**env, "X": "1"}) == {"ANSIBLE_TIMEOUT": env["ANSIBLE_TIMEOUT"], "X": "1"}
    monkeypatch.setenv("ANSIBLE_TIMEOUT", "20")
    assert "ANSIBLE_TIMEOUT" not in strategy.strategy_env(None, over_ssh=True)
    monkeypatch.delenv("ANSIBLE_TIMEOUT")
    assert (Path(env["ANSIBLE_STRATEGY_PLUGINS"]) / "mitogen_free.py").is_file()
    assert strategy.strategy_name(env) == "mitogen"
    assert strategy.strategy_env(None, over_ssh=False) == {}
    assert strategy.strategy_env(False, over_ssh=True) == {}
    assert strategy.strategy_env(True, over_ssh=False) == env
    for off in ("0", "no", "false", "off"):
        monkeypatch.setenv("NXPROVISION_MITOGEN", off)
        assert strategy.strategy_env(None, over_ssh=True) == {}
        assert strategy.strategy_env(True, over_ssh=True) == env  # the command line wins
    monkeypatch.setenv("NXPROVISION_MITOGEN", "1")
    assert strategy.strategy_env(None, over_ssh=False) == env


def test_mitogen_asked_for_but_missing_stops_before_anything_runs(home: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from nxprovision import strategy

    monkeypatch.setattr(strategy, "mitogen_strategy_dir", lambda: None)
    assert strategy.strategy_env(None) == {}  # not installed: Ansible's own, silently
    with pytest.raises(NxError, match="Mitogen is not installed") as err:
        run_playbook("show.yml", home / "inv.yml", verb="t", vault_password_file=None, secrets=[],
                     out=io.StringIO(), options=AnsibleOptions(mitogen=True))
    assert "--no-mitogen" in err.value.fix
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_the_mitogen_switch_on_the_command_line() -> None:
    assert build_parser().parse_args(["deploy", "-i", "inv"]).mitogen is None
    assert build_parser().parse_args(["deploy", "-i", "inv", "--no-mitogen"]).mitogen is False
    assert build_parser().parse_args(["deploy", "-i", "inv", "--mitogen"]).mitogen is True
