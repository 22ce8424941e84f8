"""How Ansible carries the tasks to the hosts: Mitogen's strategies (PyPI `mitogen`) when installed, unless turned off.

Plain Ansible opens an SSH session, copies a module and starts a Python interpreter for every task on every host;
Mitogen keeps one interpreter per host for the whole run and sends each module once. A no-op deploy of the compact
lab went from 153 s to 98 s with it (benchmarks/results/noop_profile.md); first contact per host costs more, every
later task less. The playbooks never depend on it: plain ansible-playbook and AWX run them with Ansible's own
strategies unless their environment names Mitogen's (README, "Ansible options").

The one play that asks for the free strategy (site.yml's OS baseline) reads its name from NXPROVISION_FREE_STRATEGY,
so that Mitogen carries it too: a play's own `strategy:` beats ANSIBLE_STRATEGY.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from nxprovision.errors import NxError

SWITCH_ENV = "NXPROVISION_MITOGEN"
FREE_ENV = "NXPROVISION_FREE_STRATEGY"
OFF = ("0", "no", "false", "off")
# what names Mitogen's strategies in a run's environment (strategy_env sets them, without_mitogen drops them)
STRATEGY_KEYS = ("ANSIBLE_STRATEGY_PLUGINS", "ANSIBLE_STRATEGY", FREE_ENV)


def mitogen_strategy_dir() -> Path | None:
    """Mitogen's Ansible strategy plugins, or None when the package is not installed."""
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "plugins" / "strategy"
    return path if (path / "mitogen_linear.py").is_file() else None


def use_mitogen(option: bool | None, over_ssh: bool = True) -> bool:
    """--mitogen/--no-mitogen when given, else NXPROVISION_MITOGEN, else on when installed and every host of the
    run is reached over SSH (Mitogen becomes root with sudo even for a root login on a local connection, where
    Ansible skips become, and it replaces only some connection plugins)."""
    if option is None and os.environ.get(SWITCH_ENV):
        option = os.environ[SWITCH_ENV].strip().lower() not in OFF
    if option is False or (option is None and not over_ssh):
        return False
    if mitogen_strategy_dir() is None:
        if option:
            raise NxError("--mitogen (or NXPROVISION_MITOGEN=1): Mitogen is not installed beside nxprovision; "
                          "nothing was run", "pip install mitogen into nxprovision's venv, or run with --no-mitogen")
        return False
    return True


# Mitogen's connection timeout covers the whole start of its interpreter on the host (SSH, sudo, Python, its
# bootstrap), where SSH's ConnectTimeout covers the TCP connection only: Ansible's 10 s default cut off hosts of a
# loaded 2-core lab (11 hosts starting at once) as unreachable. An operator's ANSIBLE_TIMEOUT or ansible_timeout wins.
CONNECT_TIMEOUT_S = 45


def strategy_env(option: bool | None, over_ssh: bool = True) -> dict[str, str]:
    """The environment of one ansible-playbook run: Mitogen's strategies, or nothing (Ansible's own)."""
    if not use_mitogen(option, over_ssh):
        return {}
    env = dict(zip(STRATEGY_KEYS, (str(mitogen_strategy_dir()), "mitogen_linear", "mitogen_free"), strict=True))
    if "ANSIBLE_TIMEOUT" not in os.environ:
        env["ANSIBLE_TIMEOUT"] = str(CONNECT_TIMEOUT_S)
    return env


def without_mitogen(env: dict[str, str]) -> dict[str, str]:
    """A run's environment for a one-task call (a log fetch): Ansible's own strategy starts faster there."""
    return {k: v for k, v in env.items() if k not in STRATEGY_KEYS}


def strategy_name(env: dict[str, str]) -> str:
    """What a run record says carried the tasks."""
    return "mitogen" if env.get("ANSIBLE_STRATEGY", "").startswith("mitogen") else "ansible"
