"""Hosts taken out by `remove-node` that the inventory still lists.

`remove-node` drains and stops a host but cannot edit the operator's inventory (comments, layout, vault
references). Until the operator deletes the host there, a deploy would bring it back and a rolling restart
or upgrade would fail on it ("not found" in HAProxy's backend). The record below, beside the inventory, lets
every later run name the host and the fix before any host is touched. It is a hidden file, so Ansible does not
read it as inventory. Entries whose host has left the inventory are dropped: the operator finished the removal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from nxprovision.errors import NxError

if TYPE_CHECKING:
    from nxprovision.rules.finding import Finding

RECORD_NAME = ".nxprovision-removed.yml"


def record_path(inventory: Path) -> Path:
    from nxprovision.inventory import inventory_dir

    return inventory_dir(inventory) / RECORD_NAME


def load(inventory: Path) -> dict[str, str]:
    """host -> when it was removed (UTC, ISO 8601); an unreadable record is an error naming the file."""
    path = record_path(inventory)
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise NxError(f"{path}: unreadable record of removed hosts ({exc.__class__.__name__})",
                      "delete the file once every host removed with remove-node is out of the inventory") from None
    if not isinstance(data, dict):
        raise NxError(f"{path}: expected a mapping of host to removal time",
                      "delete the file once every host removed with remove-node is out of the inventory")
    return {str(h): str(t) for h, t in data.items()}


def _write(inventory: Path, entries: dict[str, str]) -> None:
    path = record_path(inventory)
    if not entries:
        path.unlink(missing_ok=True)
        return
    header = "# Written by nxprovision remove-node: hosts drained and stopped, to delete from the inventory.\n"
    path.write_text(header + yaml.safe_dump(dict(sorted(entries.items())), default_flow_style=False))


def remember(inventory: Path, host: str, now: float | None = None) -> None:
    entries = load(inventory)
    entries[host] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    _write(inventory, entries)


def forget(inventory: Path, hosts: list[str]) -> list[str]:
    """Drop HOSTS from the record (add-node brings them back); the ones that were in it."""
    entries = load(inventory)
    back = [h for h in hosts if h in entries]
    if back:
        _write(inventory, {h: t for h, t in entries.items() if h not in back})
    return back


def still_listed(inventory: Path, hosts: set[str] | frozenset[str] | list[str]) -> dict[str, str]:
    """Removed hosts the inventory still lists; entries of hosts it no longer lists leave the record."""
    entries = load(inventory)
    listed = {h: t for h, t in entries.items() if h in hosts}
    if listed != entries:
        _write(inventory, listed)
    return listed


def refuse(inventory: Path, hosts: set[str] | frozenset[str] | list[str], verb: str,
           allowed: tuple[str, ...] = ()) -> None:
    """Refuse VERB while a removed host (other than ALLOWED) is still in the inventory."""
    listed = {h: t for h, t in still_listed(inventory, hosts).items() if h not in allowed}
    if not listed:
        return
    names = ", ".join(f"{h} (removed {t})" for h, t in sorted(listed.items()))
    raise NxError(f"{inventory}: {names} still in the inventory after `nxprovision remove-node`; {verb} would "
                  + ("bring it back" if verb == "deploy" else "fail on it or bring it back")
                  + "; no host was touched",
                  f"delete {', '.join(sorted(listed))} from every group of the inventory, or bring it back with "
                  f"`nxprovision add-node -i {inventory} {' '.join(sorted(listed))}`")


def findings(inventory: Path, hosts: set[str] | frozenset[str] | list[str]) -> list[Finding]:
    """validate and plan warn about each removed host the inventory still lists."""
    from nxprovision.rules.finding import warning

    return [warning("inventory.removed_host", f"host {h}",
                    f"was removed with `nxprovision remove-node` ({t}) and is still in the inventory: deploy, "
                    "restart, upgrade and the other runs refuse until it leaves",
                    f"delete {h} from every group of the inventory, or bring it back with `nxprovision add-node`",
                    str(record_path(inventory)))
            for h, t in sorted(still_listed(inventory, hosts).items())]
