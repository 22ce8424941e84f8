"""Arguments shared by every verb that reads an inventory or runs playbooks."""

from __future__ import annotations

import argparse


def inventory_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--inventory", required=True, help="inventory file or directory")
    p.add_argument("--vault-password-file", help="vault password file (default: <inventory>/.vault-pass)")


def run_args(p: argparse.ArgumentParser) -> None:
    """Inventory arguments plus those of a verb that runs a playbook."""
    inventory_args(p)
    p.add_argument("-v", "--verbose", action="count", default=0, help="pass verbosity to Ansible")
    p.add_argument("--progress", choices=("auto", "rich", "plain", "json"), default="auto",
                   help="live display on a terminal, plain lines otherwise; json = one event per line")
    ansible_args(p)


def _forks(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value}") from None
    if n < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return n


def ansible_args(p: argparse.ArgumentParser) -> None:
    """The Ansible options operators rely on (nxprovision/ansibleopts.py says how each one reaches Ansible)."""
    g = p.add_argument_group("Ansible options")
    g.add_argument("-e", "--extra-vars", action="append", default=[], metavar="VARS",
                   help="KEY=VALUE, YAML/JSON or @FILE, repeatable, like ansible-playbook; refused for the model's "
                        "`nx` fact, vault secrets, passwords and internal variables")
    g.add_argument("-u", "--user", help="SSH user (wins over the inventory's ansible_user)")
    g.add_argument("--private-key", metavar="FILE",
                   help="SSH private key (wins over the inventory's ansible_ssh_private_key_file)")
    g.add_argument("-b", "--become", action="store_true",
                   help="privilege escalation (the plays already become root where they need it)")
    g.add_argument("-K", "--ask-become-pass", action="store_true",
                   help="ask the become (sudo) password once; it is never logged or recorded")
    g.add_argument("--forks", type=_forks, help="hosts Ansible works on in parallel (default: ansible.cfg's 20)")
    g.add_argument("--ssh-common-args", metavar="ARGS",
                   help="extra SSH arguments, e.g. '-o ProxyJump=bastion' (wins over the inventory's "
                        "ansible_ssh_common_args; cannot relax the host key checks)")
    g.add_argument("--mitogen", action=argparse.BooleanOptionalAction, default=None,
                   help="carry the tasks with Mitogen's strategies (default: on when installed, unless "
                        "NXPROVISION_MITOGEN=0); --no-mitogen runs Ansible's own")
