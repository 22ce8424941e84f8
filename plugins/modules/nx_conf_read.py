#!/usr/bin/python
"""Read a node's nuxeo.conf keys and recorded Nuxeo version for `nxprovision drift`, changing nothing."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_conf_read
short_description: Read the keys of a key=value configuration file and a recorded version, secrets masked
description:
  - Read-only (check mode safe). Returns every C(key=value) line of O(path) (comments and blank lines skipped);
    the value of each key in O(secret_keys), or named like a password, secret or token, is replaced by ********
    so that no secret leaves the host.
  - Also returns the C(version) recorded in the JSON file O(fact) (the nuxeo role's local fact).
options:
  path:
    description: The configuration file.
    type: path
    required: true
  secret_keys:
    description: Keys whose values are secrets.
    type: list
    elements: str
    default: []
  fact:
    description: JSON file holding a C(version) key.
    type: path
    default: /etc/ansible/facts.d/nuxeo.fact
author: nxprovision
"""

RETURN = r"""
exists:
  description: Whether O(path) exists.
  type: bool
  returned: always
keys:
  description: Key to value (secrets masked).
  type: dict
  returned: always
version:
  description: The version recorded in O(fact), or null.
  type: str
  returned: always
"""

import json
import re

from ansible.module_utils.basic import AnsibleModule

MASK = "********"
SECRET_KEY = re.compile(r"(password|passwd|secret|token|credential|awsid|private[._-]?key)", re.IGNORECASE)


def read_keys(text: str, secret_keys: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or "=" not in s:
            continue
        key, value = (p.strip() for p in s.split("=", 1))
        out[key] = MASK if value and (key in secret_keys or SECRET_KEY.search(key)) else value
    return out


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "secret_keys": {"type": "list", "elements": "str", "default": [], "no_log": False},
            "fact": {"type": "path", "default": "/etc/ansible/facts.d/nuxeo.fact"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        with open(p["path"], encoding="utf-8", errors="replace") as f:
            keys, exists = read_keys(f.read(), set(p["secret_keys"])), True
    except OSError:
        keys, exists = {}, False
    version = None
    try:
        with open(p["fact"], encoding="utf-8") as f:
            version = json.load(f).get("version")
    except (OSError, ValueError, AttributeError):
        pass
    module.exit_json(changed=False, exists=exists, keys=keys, version=None if version is None else str(version))


if __name__ == "__main__":
    main()
