#!/usr/bin/python
"""Read a host's requested Debian packages for `nxprovision lock`, and hold a host to the lock's versions."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_apt_lock
short_description: Read the packages a host was asked for, or pin them to a version lock
description:
  - O(state=read) changes nothing (check mode safe). It returns the Debian release and, for every installed package
    that apt marks as installed on request and that is not part of Debian's base system (priority required or
    important), its version.
  - O(state=present) first checks that every pinned version is installed or offered by the host's package sources;
    it fails naming the missing C(name=version) pairs and writes nothing when one is not. Then it writes O(path),
    an apt preferences file that holds each package at its pinned version (priority 1001), so that packages the
    roles install later come at the locked version. Packages installed at another version are returned in
    C(nx_lock_differ) and left alone (moving an installed service package is an upgrade, not a deploy's side effect).
  - O(state=absent) removes O(path).
options:
  state:
    description: What to do.
    type: str
    choices: [read, present, absent]
    default: read
  pins:
    description: Package name to version (O(state=present)).
    type: dict
    default: {}
  path:
    description: The apt preferences file.
    type: path
    default: /etc/apt/preferences.d/nxprovision-lock
author: nxprovision
"""

RETURN = r"""
release:
  description: The Debian release's code name (VERSION_CODENAME of /etc/os-release).
  type: str
  returned: always
packages:
  description: Requested package to installed version (O(state=read)).
  type: dict
  returned: always
missing:
  description: C(name=version) pairs neither installed nor offered by the sources (O(state=present)).
  type: list
  returned: always
nx_lock_differ:
  description: Package to [installed, locked] for packages installed at another version (O(state=present));
    C(nxprovision drift) lists them.
  type: dict
  returned: always
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

BASE_PRIORITIES = frozenset({"required", "important"})
HEADER = "# Managed by nxprovision from the inventory's version lock (nxprovision lock): do not edit.\n"
_POLICY_PACKAGE = re.compile(r"^(\S+?)(?::\S+)?:$")
_POLICY_VERSION = re.compile(r"^ (?:\*\*\*| {3}) (\S+) -?\d+$")


def parse_status(text: str) -> dict[str, tuple[str, str]]:
    """dpkg-query lines `status<TAB>name<TAB>version<TAB>priority` -> name -> (version, priority), installed only
    (a removed package keeps its configuration files and its line, status `config-files`)."""
    out: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "installed" and parts[1]:
            out[parts[1]] = (parts[2], parts[3])
    return out


def requested(status: dict[str, tuple[str, str]], auto: set[str]) -> dict[str, str]:
    return {name: version for name, (version, priority) in status.items()
            if name not in auto and priority not in BASE_PRIORITIES}


def parse_policy(text: str) -> dict[str, set[str]]:
    """`apt-cache policy NAME...` -> name -> every version its version table offers (the installed one included)."""
    out: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        m = _POLICY_PACKAGE.match(line)
        if m:
            current = m.group(1)
            out.setdefault(current, set())
            continue
        m = _POLICY_VERSION.match(line)
        if m and current is not None:
            out[current].add(m.group(1))
    return out


def preferences(pins: dict[str, str]) -> str:
    stanzas = [f"Package: {name}\nPin: version {pins[name]}\nPin-Priority: 1001\n" for name in sorted(pins)]
    return HEADER + "\n" + "\n".join(stanzas)


def release() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VERSION_CODENAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["read", "present", "absent"], "default": "read"},
            "pins": {"type": "dict", "default": {}},
            "path": {"type": "path", "default": "/etc/apt/preferences.d/nxprovision-lock"},
        },
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": False, "release": release(), "packages": {}, "missing": [], "nx_lock_differ": {}}
    if p["state"] == "absent":
        if os.path.exists(p["path"]):
            result["changed"] = True
            if not module.check_mode:
                os.remove(p["path"])
        module.exit_json(**result)
    rc, out, err = module.run_command(
        ["dpkg-query", "-W", "-f", "${db:Status-Status}\t${Package}\t${Version}\t${Priority}\n"])
    if rc != 0:
        module.fail_json(msg=f"dpkg-query failed: {err.strip()}", **result)
    status = parse_status(out)
    if p["state"] == "read":
        rc, out, err = module.run_command(["apt-mark", "showauto"])
        if rc != 0:
            module.fail_json(msg=f"apt-mark showauto failed: {err.strip()}", **result)
        result["packages"] = requested(status, {line.split(":")[0] for line in out.split()})
        module.exit_json(**result)
    pins = {str(k): str(v) for k, v in p["pins"].items()}
    offered: dict[str, set[str]] = {}
    unsettled = sorted(n for n, v in pins.items() if status.get(n, ("", ""))[0] != v)
    if unsettled:
        rc, out, err = module.run_command(["apt-cache", "policy", *unsettled])
        if rc != 0:
            module.fail_json(msg=f"apt-cache policy failed: {err.strip()}", **result)
        offered = parse_policy(out)
    for name in unsettled:
        version = pins[name]
        if version not in offered.get(name, set()):
            result["missing"].append(f"{name}={version}")
        elif name in status:
            result["nx_lock_differ"][name] = [status[name][0], version]
    if result["missing"]:
        missing = ", ".join(result["missing"])
        module.fail_json(msg=f"the version lock asks for {len(result['missing'])} package version(s) that this "
                             f"host neither has nor can get from its package sources: {missing}. Fix: point its "
                             "sources at a mirror or snapshot that still has them, or take what the hosts run now "
                             "with `nxprovision lock --update`",
                         **result)
    text = preferences(pins)
    try:
        with open(p["path"], encoding="utf-8") as f:
            current = f.read()
    except OSError:
        current = None
    if current != text:
        result["changed"] = True
        if module._diff:
            result["diff"] = {"before": current or "", "after": text, "before_header": p["path"],
                              "after_header": p["path"]}
        if not module.check_mode:
            os.makedirs(os.path.dirname(p["path"]), exist_ok=True)
            tmp = p["path"] + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, p["path"])
    if result["nx_lock_differ"]:
        module.warn("installed at another version than the lock's (left alone: `nxprovision drift` lists them): "
                    + ", ".join(f"{n} {a} (lock: {b})" for n, (a, b) in sorted(result["nx_lock_differ"].items())))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
