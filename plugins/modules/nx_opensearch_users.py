#!/usr/bin/python
"""Write the OpenSearch security plugin's internal_users.yml with bcrypt hashes of the given passwords.

A bcrypt hash is salted: hashing again on every run would rewrite the file (and re-apply the configuration) each
time. The module keeps a user's hash when it still verifies the wanted password, so the file changes only when a
password, a role or a user changes. Hashing on the managed host keeps the passwords off the controller's disk and
needs the host's crypt(3) (libxcrypt, bcrypt `$2b$`) or the bcrypt library (python3-bcrypt).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_opensearch_users
short_description: Write OpenSearch's internal_users.yml (bcrypt hashes), keeping hashes that still verify
description:
  - Writes O(path) in the security plugin's format (C(_meta) type C(internalusers), config_version 2) with one
    entry per user of O(users). A user's existing hash is kept when it verifies the wanted password.
options:
  path:
    description: internal_users.yml to write.
    type: path
    required: true
  users:
    description: Name -> {password, backend_roles (list), description}.
    type: dict
    required: true
    no_log: true
  rounds:
    description: bcrypt cost of new hashes (the plugin's hash.sh uses 12).
    type: int
    default: 12
extends_documentation_fragment: [files]
author: nxprovision
"""

EXAMPLES = r"""
- name: The search users
  nx_opensearch_users:
    path: /opt/opensearch/plugins/opensearch-security/securityconfig/internal_users.yml
    users:
      nuxeo: {password: "{{ nx_secret_search_nuxeo_password }}", backend_roles: [], description: Nuxeo}
    mode: "0640"
  no_log: true
"""

RETURN = r"""
users:
  description: The user names written.
  type: list
  returned: always
"""

import json
import os
import re
import tempfile
import warnings

from ansible.module_utils.basic import AnsibleModule

_ENTRY = re.compile(r'^([^\s:#][^:]*):\s*\n\s+hash:\s*"([^"]+)"', re.MULTILINE)


def _hash(password: str, rounds: int) -> str:
    try:
        import bcrypt  # type: ignore[import-not-found]

        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # type: ignore[import-not-found]  # removed in Python 3.13: python3-bcrypt is then needed

        salt = crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** rounds)
        return crypt.crypt(password, salt)


def _verifies(password: str, hashed: str) -> bool:
    try:
        import bcrypt  # type: ignore[import-not-found]

        try:
            return bcrypt.checkpw(password.encode(), hashed.encode())
        except ValueError:
            return False
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # type: ignore[import-not-found]

        return crypt.crypt(password, hashed) == hashed


def render(users: dict, hashes: dict) -> str:
    lines = [
        "# Managed by nxprovision: edits here are overwritten. Applied with securityadmin.",
        "---",
        "_meta:",
        '  type: "internalusers"',
        "  config_version: 2",
        "",
    ]
    for name in sorted(users):
        u = users[name]
        lines += [
            f"{name}:",
            f'  hash: "{hashes[name]}"',
            "  reserved: true",
            f"  backend_roles: {json.dumps(list(u.get('backend_roles') or []))}",
            f"  description: {json.dumps(str(u.get('description') or ''))}",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "users": {"type": "dict", "required": True, "no_log": True},
            "rounds": {"type": "int", "default": 12},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    path = module.params["path"]
    users = module.params["users"]
    for name, u in users.items():
        if not isinstance(u, dict) or not str(u.get("password") or ""):
            module.fail_json(msg=f"user {name}: a non-empty password is required")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            module.fail_json(msg=f"user name {name!r}: letters, digits, '_', '.', '-' only")
    current = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            current = fh.read()
    existing = dict(_ENTRY.findall(current))
    hashes = {}
    for name, u in users.items():
        old = existing.get(name, "")
        hashes[name] = old if old and _verifies(str(u["password"]), old) else _hash(str(u["password"]),
                                                                                module.params["rounds"])
    content = render(users, hashes)
    changed = content != current
    if changed and not module.check_mode:
        directory = os.path.dirname(path) or "."
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".internal_users.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        module.atomic_move(tmp, path)
    file_args = module.load_file_common_arguments(module.params)
    if not module.check_mode and os.path.exists(path):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(changed=changed, users=sorted(users))


if __name__ == "__main__":
    main()
