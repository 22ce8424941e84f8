#!/usr/bin/python
"""Write a Prometheus web configuration file (`--web.config.file`): TLS and basic auth users with bcrypt hashes.

Prometheus, Alertmanager and the node exporter read the same format (the Prometheus exporter toolkit). A bcrypt
hash is salted: hashing again on every run would rewrite the file (and restart the service) each time, so a user's
hash is kept while it still verifies the wanted password. Hashing on the managed host needs its crypt(3) (libxcrypt,
bcrypt `$2b$`) or the bcrypt library (python3-bcrypt).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_web_config
short_description: Write a Prometheus exporter-toolkit web config (TLS, bcrypt basic auth), keeping hashes that verify
description:
  - Writes O(path) with C(tls_server_config) (when O(cert_file) is given) and C(basic_auth_users), one bcrypt hash
    per user of O(users). A user's existing hash is kept when it verifies the wanted password.
options:
  path:
    description: The web config file to write.
    type: path
    required: true
  users:
    description: User name -> password.
    type: dict
    required: true
    no_log: true
  cert_file:
    description: Server certificate (PEM); empty serves plain HTTP.
    type: str
    default: ""
  key_file:
    description: Private key of O(cert_file).
    type: str
    default: ""
  min_version:
    description: Oldest TLS version accepted (TLS12 or TLS13).
    type: str
    default: TLS12
  rounds:
    description: bcrypt cost of new hashes.
    type: int
    default: 10
extends_documentation_fragment: [files]
author: nxprovision
"""

EXAMPLES = r"""
- name: Prometheus's web config
  nx_web_config:
    path: /etc/prometheus/web.yml
    users:
      monitoring: "{{ nx_secret_monitoring_password }}"
    cert_file: /etc/prometheus/tls/server.crt
    key_file: /etc/prometheus/tls/server.key
    group: prometheus
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

_USER = re.compile(r'^  ([A-Za-z0-9_.-]+): "([^"]+)"$', re.MULTILINE)


def _hash(password: str, rounds: int) -> str:
    try:
        import bcrypt  # type: ignore[import-not-found]

        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # type: ignore[import-not-found]  # removed in Python 3.13: python3-bcrypt is then needed

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=2 ** rounds))


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


def existing_hashes(text: str) -> dict:
    """User -> hash from a file this module wrote (the users are the last section)."""
    _, found, users = text.partition("\nbasic_auth_users:\n")
    return dict(_USER.findall(users)) if found else {}


def render(hashes: dict, cert_file: str, key_file: str, min_version: str) -> str:
    lines = ["# Managed by nxprovision: edits here are overwritten."]
    if cert_file:
        lines += ["tls_server_config:", f"  cert_file: {json.dumps(cert_file)}", f"  key_file: {json.dumps(key_file)}",
                  f"  min_version: {min_version}"]
    lines.append("basic_auth_users:")
    lines += [f'  {name}: "{hashes[name]}"' for name in sorted(hashes)]
    return "\n".join(lines) + "\n"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "users": {"type": "dict", "required": True, "no_log": True},
            "cert_file": {"type": "str", "default": ""},
            "key_file": {"type": "str", "default": ""},
            "min_version": {"type": "str", "default": "TLS12", "choices": ["TLS12", "TLS13"]},
            "rounds": {"type": "int", "default": 10},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    users = p["users"]
    if not users:
        module.fail_json(msg="at least one user is required (an empty basic_auth_users serves without a password)")
    for name, password in users.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            module.fail_json(msg=f"user name {name!r}: letters, digits, '_', '.', '-' only")
        if not str(password or ""):
            module.fail_json(msg=f"user {name}: a non-empty password is required")
    if bool(p["cert_file"]) != bool(p["key_file"]):
        module.fail_json(msg="cert_file and key_file go together")
    current = ""
    if os.path.exists(p["path"]):
        with open(p["path"], encoding="utf-8") as fh:
            current = fh.read()
    existing = existing_hashes(current)
    hashes = {}
    for name, password in users.items():
        old = existing.get(name, "")
        hashes[name] = old if old and _verifies(str(password), old) else _hash(str(password), p["rounds"])
    content = render(hashes, p["cert_file"], p["key_file"], p["min_version"])
    changed = content != current
    if changed and not module.check_mode:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(p["path"]) or ".", prefix=".web-config.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
        module.atomic_move(tmp, p["path"])
    file_args = module.load_file_common_arguments(module.params)
    if not module.check_mode and os.path.exists(p["path"]):
        changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(changed=changed, users=sorted(users))


if __name__ == "__main__":
    main()
