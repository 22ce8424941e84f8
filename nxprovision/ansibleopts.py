"""The Ansible options of every verb that runs playbooks: -e, --user, --private-key, --become, -K, --forks,
--ssh-common-args, --[no-]mitogen. Read once per command (the become password is asked once), handed to
runner.run_playbook.

Connection options typed on the command line win over the inventory (they travel as extra vars), unlike
ansible-playbook's -u/--private-key/--ssh-common-args, which an inventory's ansible_user etc. silently beat:
the lab and most inventories set ansible_user. --become and --forks stay command-line options, so a task
that says `become: false` (work delegated to the controller) keeps its word. docs/decisions.md, "Ansible options".
"""

from __future__ import annotations

import argparse
import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nxprovision.errors import NxError

# ansible-playbook's prompt for --ask-become-pass; ansible-runner answers it from `passwords`
BECOME_PROMPT = r"^BECOME password.*:\s*?$"

# Extra vars win over everything in Ansible, set_fact included: these would silently replace what the model
# derived, the vault's secrets or the host key checks, so they are refused rather than passed.
PASSWORD_VARS = frozenset({"ansible_become_password", "ansible_become_pass", "ansible_password", "ansible_ssh_pass",
                           "ansible_sudo_pass"})
GUARD_VARS = frozenset({"ansible_ssh_args", "ansible_ssh_extra_args"})
# an extra var beats a task's `become: false`: the tasks that run on the controller would sudo there
BECOME_VARS = frozenset({"ansible_become", "ansible_become_user", "ansible_become_method", "ansible_become_exe",
                         "ansible_become_flags"})


def refused_extra_var(name: str) -> str | None:
    """Why `-e NAME=...` is refused, or None when it may pass."""
    from nxprovision.rotation import masked_names

    if name == "nx":
        return "it is the cluster model every play derives from the inventory (the `nx` fact); set the inventory " \
               "variables it is derived from instead"
    if name.startswith("__"):
        return "it is internal to a role or playbook (set by its tasks)"
    if name in masked_names() or name.startswith("nx_secret_"):
        return "it is a secret of the inventory's vault: rotate it with `nxprovision secrets rotate`, or edit the " \
               "vault (`ansible-vault edit group_vars/all/secrets.yml`)"
    if name in PASSWORD_VARS:
        return "a password on the command line ends up in shell history and run records: use -K/--ask-become-pass " \
               "(asked once, never recorded), or an SSH key"
    if name in BECOME_VARS:
        return "as an extra var it would also apply to the tasks that run on the controller (they never become): " \
               "use -b/--become, -K"
    if name in GUARD_VARS:
        return "it would replace the SSH arguments that pin the hosts' keys (known_hosts beside the inventory): use " \
               "--ssh-common-args"
    return None


def parse_extra_vars(values: list[str]) -> dict[str, Any]:
    """`-e` values as ansible-playbook reads them (KEY=VALUE words, YAML/JSON, @FILE), later ones winning, each name
    checked against refused_extra_var."""
    import yaml
    from ansible.parsing.splitter import parse_kv

    merged: dict[str, Any] = {}
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        if value.startswith("@"):
            path = Path(value[1:]).expanduser()
            try:
                text = path.read_text()
            except OSError as exc:
                raise NxError(f"-e {value}: cannot read {path} ({exc.strerror})", "name a readable YAML or JSON file") \
                    from None
            if text.lstrip().startswith("$ANSIBLE_VAULT"):
                raise NxError(f"-e {value}: the file is vault-encrypted", "secrets belong in the inventory's vault; "
                              "pass plain settings with -e") from None
            data = _yaml(yaml, text, f"-e {value}")
        elif value[0] in "/.":
            raise NxError(f"-e {value}: looks like a file name", f"prepend @ to read it: -e @{value}")
        elif value[0] in "[{":
            data = _yaml(yaml, value, f"-e {value}")
        else:
            data = parse_kv(value)
        if not isinstance(data, dict):
            raise NxError(f"-e {value}: not a set of variables (got {type(data).__name__})",
                          "pass KEY=VALUE, a YAML/JSON mapping, or @FILE holding one")
        merged.update(data)
    for name in merged:
        why = refused_extra_var(str(name))
        if why:
            raise NxError(f"-e {name}: refused: {why}; nothing was run",
                          f"drop {name} from the extra vars (docs/decisions.md, 'Ansible options')")
    return merged


def _yaml(yaml: Any, text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NxError(f"{what}: not valid YAML/JSON ({str(exc).splitlines()[0]})", "fix the syntax") from None


@dataclass(frozen=True)
class AnsibleOptions:
    extra_vars: dict[str, Any] = field(default_factory=dict)
    user: str | None = None
    private_key: str | None = None
    become: bool = False
    become_password: str | None = field(default=None, repr=False)
    forks: int | None = None
    ssh_common_args: str | None = None
    # None: NXPROVISION_MITOGEN decides, else on when installed (nxprovision/strategy.py)
    mitogen: bool | None = None

    def connection_vars(self) -> dict[str, Any]:
        """The connection options that must win over the inventory's ansible_user etc."""
        out: dict[str, Any] = {}
        if self.user:
            out["ansible_user"] = self.user
        if self.private_key:
            out["ansible_ssh_private_key_file"] = str(Path(self.private_key).expanduser().resolve())
        if self.ssh_common_args:
            out["ansible_ssh_common_args"] = self.ssh_common_args
        return out

    def cmdline(self) -> list[str]:
        args: list[str] = []
        if self.become:
            args.append("--become")
        if self.become_password is not None:
            args.append("--ask-become-pass")
        if self.forks:
            args += ["--forks", str(self.forks)]
        return args

    def passwords(self) -> dict[str, str]:
        return {BECOME_PROMPT: self.become_password} if self.become_password is not None else {}

    def run_vars(self, verb_vars: dict[str, Any] | None, verb: str) -> dict[str, Any]:
        """The extra vars of one run: the operator's, the connection options, the verb's own (never overridden)."""
        verb_vars = verb_vars or {}
        clash = sorted(set(self.extra_vars) & set(verb_vars))
        if clash:
            raise NxError(f"-e {', '.join(clash)}: refused: `{verb}` sets {'it' if len(clash) == 1 else 'them'} "
                          "itself for this run; nothing was run", "use the verb's own options instead")
        return {**self.extra_vars, **self.connection_vars(), **verb_vars}

    def record(self) -> dict[str, Any]:
        """What command.json keeps: the options, never the become password (only that one was given)."""
        return {"extra_vars": sorted(self.extra_vars), "user": self.user, "private_key": self.private_key,
                "become": self.become, "ask_become_pass": self.become_password is not None, "forks": self.forks,
                "ssh_common_args": self.ssh_common_args, "mitogen": self.mitogen}


def extra_vars_of(args: argparse.Namespace) -> dict[str, Any]:
    """The command's parsed -e (checked once, before the inventory is even validated)."""
    cached = getattr(args, "_nx_extra_vars", None)
    if cached is None:
        cached = parse_extra_vars(list(getattr(args, "extra_vars", None) or []))
        args._nx_extra_vars = cached
    return cached


def ansible_options(args: argparse.Namespace, prompt: Any = getpass.getpass) -> AnsibleOptions:
    """The command's Ansible options; -K asks for the become password here, once per command."""
    cached = getattr(args, "_nx_ansible_options", None)
    if cached is not None:
        return cached
    password = None
    if getattr(args, "ask_become_pass", False):
        try:
            password = prompt("BECOME password: ")
        except EOFError:
            raise NxError("-K: no become password given (end of input)", "type it at the prompt, or pipe it in") \
                from None
    forks = getattr(args, "forks", None)
    opts = AnsibleOptions(extra_vars=extra_vars_of(args), user=getattr(args, "user", None) or None,
                          private_key=getattr(args, "private_key", None) or None,
                          become=bool(getattr(args, "become", False)) or password is not None,
                          become_password=password, forks=forks,
                          ssh_common_args=getattr(args, "ssh_common_args", None) or None,
                          mitogen=getattr(args, "mitogen", None))
    args._nx_ansible_options = opts
    return opts


def apply_to_view(view: Any, extra: dict[str, Any]) -> None:
    """The inventory as the run's plays see it: extra vars override every host's variables."""
    for hv in view.hostvars.values():
        hv.update(extra)
