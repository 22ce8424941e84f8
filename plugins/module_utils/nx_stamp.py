"""What the nx_*_stamp modules share: the stamp's name rules and writing its fact script.

A stamp is an executable local fact (/etc/ansible/facts.d/<kind>_<name>.fact): Ansible runs it when it gathers
facts, and it answers the recorded stamp only while the checks it was written with still hold on the host.
"""

from __future__ import annotations

import os
import re

SAFE_NAME = re.compile(r"^[a-z0-9_]+$")
SAFE_STAMP = re.compile(r"^[A-Za-z0-9]+$")
NAME_RULE = "name must be [a-z0-9_]+ and stamp alphanumeric"


def valid(name: str, stamp: str) -> bool:
    """Both end up in a file name and a shell script: nothing but the characters that need no quoting."""
    return bool(SAFE_NAME.match(name) and SAFE_STAMP.match(stamp))


def fact_path(fact_dir: str, kind: str, name: str) -> str:
    return os.path.join(fact_dir, f"{kind}_{name}.fact")


def needs_writing(path: str, text: str) -> bool:
    """The script differs, is missing, or lost its execute bit (a fact file that is not executable is read as
    INI, and the stamp would never match)."""
    try:
        with open(path) as f:
            current = f.read()
    except OSError:
        return True
    return current != text or os.stat(path).st_mode & 0o777 != 0o755


def write(path: str, text: str) -> None:
    """Replace the script whole: a fact run while it is written sees the old one or the new one."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
