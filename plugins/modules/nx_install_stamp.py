#!/usr/bin/python
"""Record that a role's install phase completed, as a local fact that re-checks the install each time it is read."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_install_stamp
short_description: Record a completed install phase as a self-checking local fact
description:
  - Writes C(/etc/ansible/facts.d/nx_install_<name>.fact), an executable local fact. Read by fact gathering, it
    answers C({"stamp": STAMP}) only while every path in O(paths) exists, every user in O(users) exists and every
    Debian package in O(packages) is installed; otherwise C({"stamp": ""}).
  - A role's tasks/main.yml skips its install phase when C(ansible_local.nx_install_<name>.stamp) equals the stamp
    it would write now (a hash of the install's inputs and of its task file), so a no-op run spends no task on an
    install that is in place, and a removed binary, user or package brings the phase back on the next run.
options:
  name:
    description: The role's name (the fact is C(nx_install_<name>)).
    type: str
    required: true
  stamp:
    description: What the install phase was run with (a hash).
    type: str
    required: true
  paths:
    description: Files, directories or links the install created.
    type: list
    elements: str
    default: []
  users:
    description: System users the install created.
    type: list
    elements: str
    default: []
  packages:
    description: Debian packages the install put in place.
    type: list
    elements: str
    default: []
  fact_dir:
    description: Where local facts are read from.
    type: path
    default: /etc/ansible/facts.d
author: nxprovision
"""

RETURN = r"""
path:
  description: The fact file.
  type: str
  returned: always
"""

import shlex

from ansible.module_utils import nx_stamp
from ansible.module_utils.basic import AnsibleModule


def script(stamp: str, paths: list[str], users: list[str], packages: list[str]) -> str:
    checks = [f"[ -e {shlex.quote(p)} ]" for p in paths]
    checks += [f"id -u {shlex.quote(u)} >/dev/null 2>&1" for u in users]
    checks += [f"dpkg-query -W -f='${{Status}}' {shlex.quote(p)} 2>/dev/null | grep -q 'ok installed'"
               for p in (q.split("=")[0] for q in packages)]
    ok = " && ".join(checks) or "true"
    answer = shlex.quote('{"stamp": "' + stamp + '"}')
    return ("#!/bin/sh\n# Managed by nxprovision: the install phase is in place while every check holds.\n"
            f"if {ok}; then echo {answer}; else echo '{{\"stamp\": \"\"}}'; fi\n")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "stamp": {"type": "str", "required": True},
            "paths": {"type": "list", "elements": "str", "default": []},
            "users": {"type": "list", "elements": "str", "default": []},
            "packages": {"type": "list", "elements": "str", "default": []},
            "fact_dir": {"type": "path", "default": "/etc/ansible/facts.d"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not nx_stamp.valid(p["name"], p["stamp"]):
        module.fail_json(msg=nx_stamp.NAME_RULE)
    path = nx_stamp.fact_path(p["fact_dir"], "nx_install", p["name"])
    text = script(p["stamp"], p["paths"], p["users"], p["packages"])
    changed = nx_stamp.needs_writing(path, text)
    if changed and not module.check_mode:
        nx_stamp.write(path, text)
    module.exit_json(changed=changed, path=path)


if __name__ == "__main__":
    main()
