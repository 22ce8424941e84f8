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
