#!/usr/bin/python
"""Record that a role's configure phase completed, as a local fact that re-checks the files it wrote when read."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_configure_stamp
short_description: Record a completed configure phase (certificates) as a self-checking local fact
description:
  - Writes C(/etc/ansible/facts.d/nx_configure_<name>.fact), an executable local fact. Read by fact gathering, it
    answers C({"stamp": STAMP, "not_after": EPOCH, "certificates": {...}}) only while every file in O(files) has
    the checksum it had when written, every path in O(files), O(private_keys) and O(dirs) keeps its mode and owner, and
    every key in O(private_keys) still holds the same key pair (compared by a hash of its public key); otherwise
    C({"stamp": "", "not_after": 0}).
  - C(not_after) is the earliest end of validity (seconds since the epoch) of the certificates in O(expiring),
    read when the fact was written (their checksums guard it); the role compares it with the renewal window at
    run time, so a certificate coming due takes the full path without any task on a converged host.
  - Nothing secret is written: checksums of public files (certificates, trust store, records), the hash of each
    key's public half, modes and owners. The private keys are read by openssl on the host only to derive their
    public half.
options:
  name:
    description: The role's name (the fact is C(nx_configure_<name>)).
    type: str
    required: true
  stamp:
    description: What the configure phase was run with (a hash computed on the controller).
    type: str
    required: true
  files:
    description: Public files the phase wrote (checksum, mode and owner checked).
    type: list
    elements: path
    default: []
  private_keys:
    description: Private keys the phase wrote or kept (key pair, mode and owner checked; never a checksum).
    type: list
    elements: path
    default: []
  dirs:
    description: Directories the phase created (mode and owner checked).
    type: list
    elements: path
    default: []
  expiring:
    description: Certificates among O(files) whose end of validity the role watches (renewal).
    type: list
    elements: path
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
not_after:
  description: Earliest end of validity of O(expiring) (seconds since the epoch; 0 when none).
  type: int
  returned: always
"""

import calendar
import json
import os
import shlex
import subprocess
import time

from ansible.module_utils import nx_stamp
from ansible.module_utils.basic import AnsibleModule

EMPTY = '{"stamp": "", "not_after": 0}'


def probes(files: list[str], keys: list[str], dirs: list[str]) -> list[str]:
    """Shell commands whose output must stay what it was when the fact was written (one process each, at most)."""
    out = []
    if files:
        out.append("sha256sum -- " + " ".join(shlex.quote(f) for f in files) + " 2>/dev/null")
    if files or keys or dirs:
        out.append("stat -c '%a %U %G %n' -- " + " ".join(shlex.quote(p) for p in [*dirs, *files, *keys])
                   + " 2>/dev/null")
    # The key's public half, hashed: an edited, replaced or unreadable key changes it; the key itself stays put.
    out += [f"openssl pkey -pubout -in {shlex.quote(k)} 2>/dev/null | sha256sum" for k in keys]
    return out


def observe(command: str) -> str:
    """What `$(command)` gives in the fact script (trailing newlines stripped, as command substitution does)."""
    run = subprocess.run(["sh", "-c", command], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
    return run.stdout.rstrip("\n")


def not_after(cert: str) -> int:
    run = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", cert], capture_output=True, text=True,
                         env={**os.environ, "LC_ALL": "C"})
    value = run.stdout.strip().partition("=")[2]
    if run.returncode != 0 or not value:
        raise ValueError(f"{cert}: not a readable certificate ({run.stderr.strip()})")
    # openssl prints e.g. "Dec  5 23:46:33 2027 GMT"
    return calendar.timegm(time.strptime(" ".join(value.split()), "%b %d %H:%M:%S %Y %Z"))


def script(stamp: str, checks: list[tuple[str, str]], answer: dict) -> str:
    """The fact: every probe must give what it gave when written, or the stamp is withdrawn."""
    ok = " && ".join(f'[ "$({cmd})" = {shlex.quote(expected)} ]' for cmd, expected in checks) or "true"
    body = shlex.quote(json.dumps({"stamp": stamp, **answer}, sort_keys=True))
    return ("#!/bin/sh\n# Managed by nxprovision: the configuration is in place while every check holds (no secret "
            "here: checksums of public files, hashes of public keys).\n"
            f"export LC_ALL=C\nif {ok}; then echo {body}; else echo '{EMPTY}'; fi\n")


def build(stamp: str, files: list[str], keys: list[str], dirs: list[str], expiring: list[str]) -> tuple[str, int]:
    """The fact script for the files as they are now, and the earliest end of validity it records."""
    for k in keys:
        if subprocess.run(["openssl", "pkey", "-pubout", "-in", k], capture_output=True).returncode != 0:
            raise ValueError(f"{k}: not a readable private key")
    missing = [p for p in [*files, *dirs] if not os.path.exists(p)]
    if missing:
        raise ValueError(f"missing: {', '.join(missing)}")
    checks = [(cmd, observe(cmd)) for cmd in probes(files, keys, dirs)]
    ends = {c: not_after(c) for c in expiring}
    sums = dict(line.split("  ", 1)[::-1] for line in (checks[0][1].splitlines() if files else []))
    certs = {c: {"sha256": sums.get(c, ""), "not_after": ends[c]} for c in expiring}
    earliest = min(ends.values()) if ends else 0
    return script(stamp, checks, {"not_after": earliest, "certificates": certs, "files": sums}), earliest


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "stamp": {"type": "str", "required": True},
            "files": {"type": "list", "elements": "path", "default": []},
            "private_keys": {"type": "list", "elements": "path", "default": []},
            "dirs": {"type": "list", "elements": "path", "default": []},
            "expiring": {"type": "list", "elements": "path", "default": []},
            "fact_dir": {"type": "path", "default": "/etc/ansible/facts.d"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if not nx_stamp.valid(p["name"], p["stamp"]):
        module.fail_json(msg=nx_stamp.NAME_RULE)
    path = nx_stamp.fact_path(p["fact_dir"], "nx_configure", p["name"])
    try:
        text, earliest = build(p["stamp"], p["files"], p["private_keys"], p["dirs"], p["expiring"])
    except ValueError as e:
        if module.check_mode:  # the phase's files were not written in check mode: the stamp would be new
            module.exit_json(changed=True, path=path, not_after=0)
        module.fail_json(msg=f"cannot record the configuration: {e}")
    changed = nx_stamp.needs_writing(path, text)
    if changed and not module.check_mode:
        nx_stamp.write(path, text)
    module.exit_json(changed=changed, path=path, not_after=earliest)


if __name__ == "__main__":
    main()
