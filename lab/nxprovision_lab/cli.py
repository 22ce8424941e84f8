"""`nxprovision lab`: verbs only (parse, call, print, exit code); the work is in lab.manager."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from nxprovision.errors import NxError
from nxprovision_lab import hosts, manager, releases
from nxprovision_lab.naming import DEFAULT_NAME


def _name(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=DEFAULT_NAME, help=f"lab name (default {DEFAULT_NAME})")


def register(subparsers: Any) -> None:
    lab = subparsers.add_parser("lab", help="a local lab of real systemd hosts to deploy into")
    verbs = lab.add_subparsers(dest="lab_verb", metavar="VERB", required=True)

    p = verbs.add_parser("up", help="create and boot a lab, write its inventory")
    _name(p)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--architecture", choices=sorted(manager.architectures.ARCHITECTURES),
                      help="hosts of an architecture's lab layout (default compact)")
    size.add_argument("--hosts", type=int, metavar="N", help="N plain hosts host1..hostN in group `lab`")
    p.add_argument("--database", choices=("postgresql", "mongodb"), default="postgresql")
    p.add_argument("--os", action="append", metavar="[HOST=]RELEASE",
                   help=f"Debian release of every host, or of one host with HOST=RELEASE (repeatable; a mixed "
                        f"lab rehearses an OS migration): {', '.join(releases.RELEASES)} "
                        f"(default {releases.DEFAULT_OS})")
    p.set_defaults(func=cmd_up)

    p = verbs.add_parser("status", help="the lab's hosts and whether each runs")
    _name(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = verbs.add_parser("ssh", help="a shell (or a command) on a lab host as root")
    _name(p)
    p.add_argument("host")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="command to run instead of a shell")
    p.set_defaults(func=cmd_ssh)

    p = verbs.add_parser("inventory", help="print the path of the lab's inventory directory")
    _name(p)
    p.set_defaults(func=cmd_inventory)

    p = verbs.add_parser("down", help="remove the lab (hosts, network, state; caches are kept)")
    _name(p)
    p.add_argument("--all", action="store_true", help="every lab on this machine, leftovers included")
    p.set_defaults(func=cmd_down)

    p = verbs.add_parser("add-host", help="boot one more host and add it to the lab inventory (rehearse add-node)")
    _name(p)
    p.add_argument("host")
    p.add_argument("--group", action="append", required=True, help="inventory group (repeatable)")
    p.add_argument("--os", choices=sorted(releases.RELEASES),
                   help="the host's Debian release (default: that of the lab's first host)")
    p.set_defaults(func=cmd_add_host)

    for verb, func, text in (
        ("kill", cmd_kill, "hard power-off of one host (its disk is kept)"),
        ("start", cmd_start, "boot a powered-off host again"),
        ("reboot", cmd_reboot, "clean reboot of one host (services stop in order, then it boots again)"),
        ("partition", cmd_partition, "cut one host off the lab network"),
        ("heal", cmd_heal, "reconnect a partitioned host"),
    ):
        p = verbs.add_parser(verb, help=text)
        _name(p)
        p.add_argument("host")
        p.set_defaults(func=func)


def _guard(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args) or 0)
        except NxError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except subprocess.CalledProcessError as exc:
            # a system tool the lab drives failed in a way no check foresaw: one line, not a traceback
            raw = exc.stderr or b""
            detail = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw).strip().splitlines()
            print(
                f"error: `{' '.join(map(str, exc.cmd))}` failed ({exc.returncode})"
                f"{': ' + detail[-1] if detail else ''} (fix: run `nxprovision lab down --name "
                f"{getattr(args, 'name', DEFAULT_NAME)}` and try again; report it if it persists)",
                file=sys.stderr,
            )
            return 1

    run.__name__ = fn.__name__
    return run


@_guard
def cmd_up(args: argparse.Namespace) -> int:
    lab_os, host_os = releases.parse_os_options(args.os)
    state, timings = manager.up(
        args.name, architecture=args.architecture, count=args.hosts, database=args.database,
        log=lambda m: print(m, file=sys.stderr), os_name=lab_os, host_os=host_os,
    )
    print(f"lab {state.name}: {len(state.hosts)} hosts on {state.subnet} up in {timings.total:.1f} s",
          file=sys.stderr)
    print(state.names.inventory_dir)
    return 0


@_guard
def cmd_status(args: argparse.Namespace) -> int:
    state = manager.require_state(args.name)
    rows = manager.host_status(state)
    if args.json:
        print(json.dumps({
            "name": state.name, "phase": state.phase, "subnet": state.subnet, "bridge_ip": state.bridge_ip,
            "architecture": state.architecture, "database": state.database,
            "inventory": str(state.names.inventory_dir), "mirror_url": manager.mirror_url(state.bridge_ip),
            "pids": manager.current_pids(state), "hosts": rows,
        }, indent=2))
        return 0
    print(f"lab {state.name} ({state.phase}) on {state.subnet}, services at {state.bridge_ip}")
    width = max(len(r["host"]) for r in rows) if rows else 4
    print(f"{'HOST':<{width}}  {'IP':<15}  {'STATE':<19}  {'OS':<8}  GROUPS")
    for r in rows:
        st = r["state"] + (" partitioned" if r["partitioned"] else "")
        print(f"{r['host']:<{width}}  {r['ip']:<15}  {st:<19}  {r['os']:<8}  {','.join(r['groups'])}")
    return 0


@_guard
def cmd_ssh(args: argparse.Namespace) -> int:
    state = manager.require_state(args.name)
    host = manager.require_host(state, args.host)
    cmd = ["ssh", *hosts.ssh_options(state.names.ssh_key), f"root@{host.ip}", *args.cmd]
    sys.stdout.flush()
    os.execvp("ssh", cmd)
    return 0  # not reached


@_guard
def cmd_inventory(args: argparse.Namespace) -> int:
    state = manager.require_state(args.name)
    print(state.names.inventory_dir)
    return 0


@_guard
def cmd_down(args: argparse.Namespace) -> int:
    if args.all:
        removed = manager.down_all()
        print(f"removed labs: {', '.join(removed)}" if removed else "no lab to remove", file=sys.stderr)
        return 0
    if manager.down(args.name):
        print(f"lab {args.name} removed", file=sys.stderr)
    else:
        print(f"no lab named '{args.name}' (nothing to remove)", file=sys.stderr)
    return 0


@_guard
def cmd_kill(args: argparse.Namespace) -> int:
    manager.kill(args.name, args.host)
    print(f"lab host {args.host} powered off", file=sys.stderr)
    return 0


@_guard
def cmd_add_host(args: argparse.Namespace) -> int:
    h = manager.add_host(args.name, args.host, args.group, os_name=args.os)
    print(f"lab host {h.name} ({h.ip}, {h.os}) booted, added to {', '.join(h.groups)} in the lab inventory",
          file=sys.stderr)
    return 0


@_guard
def cmd_start(args: argparse.Namespace) -> int:
    manager.start(args.name, args.host)
    print(f"lab host {args.host} booted and answering SSH", file=sys.stderr)
    return 0


@_guard
def cmd_reboot(args: argparse.Namespace) -> int:
    took = manager.reboot(args.name, args.host)
    print(f"lab host {args.host} rebooted, answering SSH again after {took:.1f} s", file=sys.stderr)
    return 0


@_guard
def cmd_partition(args: argparse.Namespace) -> int:
    manager.partition(args.name, args.host)
    print(f"lab host {args.host} cut off the lab network", file=sys.stderr)
    return 0


@_guard
def cmd_heal(args: argparse.Namespace) -> int:
    manager.partition(args.name, args.host, heal=True)
    print(f"lab host {args.host} reconnected", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nxprovision")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main(["lab", *sys.argv[1:]]))
