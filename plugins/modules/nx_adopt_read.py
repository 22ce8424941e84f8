#!/usr/bin/python
"""Read what a hand-built Nuxeo cluster host runs, for `nxprovision adopt`, changing nothing."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nx_adopt_read
short_description: Read the services, packages and configuration files of a host nxprovision did not build
description:
  - Read-only (check mode safe). Finds the components a host runs from its systemd services (what each one
    starts: nuxeoctl, haproxy, PostgreSQL clusters, opensearch or elasticsearch, kafka-server-start.sh, weed,
    mongod), then reads each one's configuration files where that service says they are.
  - The result holds configuration files whole, secrets included; the task that calls it must be C(no_log) and
    store the result only where the controller's operator can read it.
options: {}
author: nxprovision
"""

RETURN = r"""
os:
  description: The host's release (C(id), C(version_codename)) and CPU architecture.
  type: dict
  returned: always
services:
  description: Service name to its start command, environment, user, unit file and state, for the services that
    start a known component.
  type: dict
  returned: always
listening:
  description: The TCP sockets the host listens on (C(address), C(port), C(process)).
  type: list
  returned: always
packages:
  description: Installed Debian packages of the components, name to version.
  type: dict
  returned: always
paths:
  description: Each path the roles link to a release folder (/opt/nuxeo, ...) and what is there (link, dir, file,
    absent).
  type: dict
  returned: always
components:
  description: Component name (nuxeo, haproxy, postgresql, opensearch, elasticsearch, kafka, seaweedfs, mongodb) to
    what was read of it (paths and file contents).
  type: dict
  returned: always
"""

import os
import re
import shlex
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

PACKAGE_PATTERN = re.compile(r"^(haproxy|postgresql(-\d+)?|postgresql-common|openjdk-\d+-jre(-headless)?|patroni|"
                             r"etcd(-server)?|keepalived|temurin-\d+-jre|opensearch|elasticsearch|mongodb-org-server)$")
# what a service starts -> the component it is
STARTS = (
    ("nuxeo", re.compile(r"(^|/)nuxeoctl$")),
    ("haproxy", re.compile(r"(^|/)haproxy$")),
    ("opensearch", re.compile(r"(^|/)opensearch$")),
    ("elasticsearch", re.compile(r"(^|/)elasticsearch$")),
    ("kafka", re.compile(r"(^|/)kafka-server-start\.sh$")),
    ("seaweedfs", re.compile(r"(^|/)weed$")),
    ("mongodb", re.compile(r"(^|/)mongod$")),
    ("patroni", re.compile(r"(^|/)patroni$")),
)
MAX_FILE = 1024 * 1024
# where the roles link their release folders (their defaults): a hand build may have put a real folder there
ROLE_LINKS = ("/opt/nuxeo", "/opt/opensearch", "/opt/kafka", "/opt/seaweedfs")


def read(path: str | Path | None) -> str | None:
    if not path:
        return None
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size > MAX_FILE:
            return None
        return p.read_text(errors="replace")
    except OSError:
        return None


def exec_argv(value: str) -> list[str]:
    """systemctl show's ExecStart: `{ path=... ; argv[]=/bin/x a b ; ignore_errors=no ; ... }`."""
    m = re.search(r"argv\[\]=(.*?) ;", value)
    if not m:
        return []
    try:
        return shlex.split(m.group(1))
    except ValueError:
        return m.group(1).split()


def environment(props: dict[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in shlex.split(props.get("Environment", "") or ""):
        if "=" in item:
            k, v = item.split("=", 1)
            env[k] = v
    for spec in re.findall(r"(\S+) \(ignore_errors=\w+\)", props.get("EnvironmentFiles", "") or ""):
        for line in (read(spec.lstrip("-")) or "").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                # systemd reads EnvironmentFile= after Environment=: the file's value wins
                env[k.strip()] = v.strip().strip('"').strip("'")
    return env


def expand(arg: str, env: dict[str, str]) -> str:
    """$NAME and ${NAME} as systemd expands them in ExecStart (Debian's haproxy unit: `-f $CONFIG`)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), arg)


def properties(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        s = line.strip()
        if s and not s.startswith(("#", "!")) and ("=" in s or ":" in s):
            k, v = re.split(r"\s*[=:]\s*", s, maxsplit=1)
            out[k.strip()] = v.strip()
    return out


def option(argv: list[str], *names: str) -> str | None:
    """The value of `-name=value`, `-name value` or `--name value` in argv."""
    for i, a in enumerate(argv):
        for n in names:
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
    return None


def go_flags(args: list[str]) -> dict[str, str]:
    """Go's flag syntax (`-name=value`, `-name value`, `--name`, a bare boolean `-name`) as name -> value."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        if not eq:
            if i < len(args) and not args[i].startswith("-"):
                value = args[i]
                i += 1
            else:
                value = "true"
        out[name] = value
    return out


class Host:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module

    def run(self, *args: str) -> str:
        """A command's output; empty when the host lacks the command (no PostgreSQL, no ss) or it fails."""
        binary = self.module.get_bin_path(args[0])
        if binary is None:
            return ""
        rc, out, _err = self.module.run_command([binary, *args[1:]], check_rc=False, environ_update={"LC_ALL": "C"})
        return out if rc == 0 else ""

    def os(self) -> dict[str, str]:
        release = {}
        for line in (read("/etc/os-release") or "").splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                release[k] = v.strip().strip('"')
        return {"id": release.get("ID", ""), "version_id": release.get("VERSION_ID", ""),
                "version_codename": release.get("VERSION_CODENAME", ""), "arch": os.uname().machine}

    def packages(self) -> dict[str, str]:
        out = {}
        for line in self.run("dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Status}\n").splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[2] == "installed" and PACKAGE_PATTERN.match(parts[0]):
                out[parts[0]] = parts[1]
        return out

    def listening(self) -> list[dict[str, object]]:
        out = []
        for line in self.run("ss", "-ltnpH").splitlines():
            cols = line.split()
            if len(cols) < 4:
                continue
            addr, _, port = cols[3].rpartition(":")
            proc = re.search(r'users:\(\("([^"]+)"', line)
            if port.isdigit():
                out.append({"address": addr.strip("[]"), "port": int(port), "process": proc.group(1) if proc else ""})
        return out

    def services(self) -> dict[str, dict[str, object]]:
        units = []
        for line in self.run("systemctl", "list-units", "--type=service", "--all", "--no-legend", "--plain",
                             "--no-pager").splitlines():
            cols = line.split()
            if cols and cols[0].endswith(".service"):
                units.append(cols[0])
        found: dict[str, dict[str, object]] = {}
        for unit in units:
            props = {}
            for line in self.run("systemctl", "show", unit, "--no-pager", "-p", "Id", "-p", "ExecStart", "-p",
                                 "Environment", "-p", "EnvironmentFiles", "-p", "User", "-p", "FragmentPath",
                                 "-p", "ActiveState", "-p", "UnitFileState", "-p", "WorkingDirectory").splitlines():
                k, _, v = line.partition("=")
                props[k] = v
            env = environment(props)
            argv = [expand(a, env) for a in exec_argv(props.get("ExecStart", ""))]
            component = next((name for name, pat in STARTS if argv and pat.search(argv[0])), None)
            if component is None and re.match(r"postgresql@.+\.service$", unit):
                component = "postgresql"
            if component is None:
                continue
            found[unit.removesuffix(".service")] = {
                "component": component, "argv": argv, "environment": env,
                "user": props.get("User", ""), "unit_file": props.get("FragmentPath", ""),
                "active": props.get("ActiveState", ""), "enabled": props.get("UnitFileState", ""),
                "unit_text": read(props.get("FragmentPath")), "working_dir": props.get("WorkingDirectory", ""),
            }
        return found


def nuxeo(svc: dict) -> dict[str, object]:
    ctl = Path(svc["argv"][0])
    home = ctl.resolve().parent.parent
    env = svc["environment"]
    conf_path = env.get("NUXEO_CONF") or str(home / "bin" / "nuxeo.conf")
    conf_text = read(conf_path)
    conf = properties(conf_text)
    defaults = properties(read(home / "templates" / "nuxeo.defaults"))
    version = defaults.get("org.nuxeo.ecm.product.version") or ""
    if not version:
        m = re.match(r"nuxeo-server-(.+)-tomcat$", home.name)
        version = m.group(1) if m else ""
    mp_dir = Path(conf.get("nuxeo.mp.dir") or "packages")
    mp_dir = mp_dir if mp_dir.is_absolute() else home / mp_dir
    states = properties(read(mp_dir / ".packages"))
    return {"home": str(home), "ctl": str(ctl), "conf_path": conf_path, "conf_text": conf_text,
            "version": version, "packages": sorted(k for k, v in states.items() if v == "started"),
            "java_home": env.get("JAVA_HOME", ""), "user": svc["user"]}


def haproxy(svc: dict) -> dict[str, object]:
    path = option(svc["argv"], "-f") or svc["environment"].get("CONFIG") or "/etc/haproxy/haproxy.cfg"
    return {"conf_path": path, "conf_text": read(path)}


def postgresql(host: Host) -> dict[str, object]:
    clusters = []
    for line in host.run("pg_lsclusters", "--no-header").splitlines():
        cols = line.split()
        if len(cols) < 6:
            continue
        version, name, port, status, owner, datadir = cols[:6]
        etc = Path("/etc/postgresql") / version / name
        conf_d_text = ""
        conf_d = etc / "conf.d"
        if conf_d.is_dir():
            for f in sorted(conf_d.glob("*.conf")):
                conf_d_text += f"# --- {f}\n" + (read(f) or "") + "\n"
        clusters.append({
            "version": version, "name": name, "port": int(port) if port.isdigit() else 5432,
            "status": status, "owner": owner, "data_dir": datadir,
            "conf_text": read(etc / "postgresql.conf"), "conf_d_text": conf_d_text,
            "hba_text": read(etc / "pg_hba.conf"),
            "auto_conf_text": read(Path(datadir) / "postgresql.auto.conf"),
            "standby": "recovery" in status or (Path(datadir) / "standby.signal").exists(),
        })
    return {"clusters": clusters}


def search(svc: dict, product: str) -> dict[str, object]:
    binary = Path(svc["argv"][0]).resolve()
    home = binary.parent.parent
    env = svc["environment"]
    conf_dir = env.get("OPENSEARCH_PATH_CONF" if product == "opensearch" else "ES_PATH_CONF") or str(home / "config")
    path = str(Path(conf_dir) / f"{product}.yml")
    return {"home": str(home), "conf_path": path, "conf_text": read(path), "user": svc["user"],
            "version": (re.search(rf"{product}-(\d[\w.\-]*)$", home.name) or [None, ""])[1]}


def kafka(svc: dict) -> dict[str, object]:
    script = Path(svc["argv"][0]).resolve()
    home = script.parent.parent
    path = next((a for a in svc["argv"][1:] if a.endswith(".properties")), "")
    version = (re.search(r"kafka_[\d.]+-(\d[\w.\-]*)$", home.name) or [None, ""])[1]
    return {"home": str(home), "conf_path": path, "conf_text": read(path), "version": version, "user": svc["user"]}


def seaweedfs(svc: dict) -> dict[str, object]:
    argv = svc["argv"]
    flags = go_flags(argv[1:])
    s3_config = flags.get("s3.config")
    return {"argv": argv, "binary": str(Path(argv[0]).resolve()), "flags": flags,
            "s3_config_path": s3_config or "", "s3_config_text": read(s3_config), "user": svc["user"]}


def mongodb(svc: dict) -> dict[str, object]:
    path = option(svc["argv"], "--config", "-f") or "/etc/mongod.conf"
    binary = Path(svc["argv"][0]).resolve()
    # the release archive's folder (mongodb-linux-x86_64-debian12-7.0.14/bin/mongod)
    version = (re.search(r"mongodb-linux-[^/]*?-(\d+\.\d+\.\d+)", str(binary)) or [None, ""])[1]
    return {"conf_path": path, "conf_text": read(path), "user": svc["user"], "binary": str(binary),
            "version": version}


def path_kinds() -> dict[str, str]:
    out = {}
    for p in ROLE_LINKS:
        out[p] = ("link" if os.path.islink(p) else "dir" if os.path.isdir(p) else "file" if os.path.lexists(p)
                  else "absent")
    return out


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    host = Host(module)
    services = host.services()
    components: dict[str, object] = {}
    for name, svc in services.items():
        kind = svc["component"]
        if kind == "nuxeo":
            components["nuxeo"] = {**nuxeo(svc), "service": name}
        elif kind == "haproxy":
            components["haproxy"] = {**haproxy(svc), "service": name}
        elif kind in ("opensearch", "elasticsearch"):
            components[kind] = {**search(svc, kind), "service": name}
        elif kind == "kafka":
            components["kafka"] = {**kafka(svc), "service": name}
        elif kind == "seaweedfs":
            components["seaweedfs"] = {**seaweedfs(svc), "service": name}
        elif kind == "mongodb":
            components["mongodb"] = {**mongodb(svc), "service": name}
        elif kind == "patroni":
            components["patroni"] = {"service": name, "argv": svc["argv"]}
    pg = postgresql(host)
    if pg["clusters"]:
        components["postgresql"] = pg
    module.exit_json(changed=False, os=host.os(), services=services, listening=host.listening(),
                     packages=host.packages(), components=components, paths=path_kinds())


if __name__ == "__main__":
    main()
