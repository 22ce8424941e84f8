"""The MongoDB stand-in behind `bin/mongod` in the lab's `mongodb-linux-x86_64-debian12-<v>.tgz`.

It reads mongod's YAML configuration file (and its main command-line options), enforces what mongod
enforces at start (existing dbPath, --fork needs a log file), and serves the MongoDB wire protocol with
SecantusDB (WiredTiger storage), with mongod's replica-set control plane (mongod_replset: no replication).
Runs under the lab host's system python3 with the archive's lib/python only.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

BASE = Path(__file__).resolve().parents[2]
# the folder of lib/ holding the packages built for this interpreter: python (CPython 3.11, Debian 12), python3.13
# (Debian 13)
BUILT_FOR = "python" if sys.version_info[:2] == (3, 11) else f"python{sys.version_info[0]}.{sys.version_info[1]}"
if __package__:
    # imported from the nxprovision source tree (unit tests)
    from . import confparse, javaprops, mongod_replset, standin_common
else:
    # run from an unpacked archive: the vendored libraries first, then the sibling runtime modules
    sys.path[:0] = [str(BASE / "lib" / BUILT_FOR), str(Path(__file__).resolve().parent)]
    import confparse  # type: ignore[no-redef]
    import javaprops  # type: ignore[no-redef]
    import mongod_replset  # type: ignore[no-redef]
    import standin_common  # type: ignore[no-redef]

PROG = "mongod"


def marker() -> dict[str, str]:
    path = BASE / "STANDIN"
    return javaprops.parse_properties(path.read_text()) if path.exists() else {}


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="mongod")
    ap.add_argument("-f", "--config")
    ap.add_argument("--port", type=int)
    ap.add_argument("--bind_ip")
    ap.add_argument("--bind_ip_all", action="store_true")
    ap.add_argument("--dbpath")
    ap.add_argument("--logpath")
    ap.add_argument("--logappend", action="store_true")
    ap.add_argument("--fork", action="store_true")
    ap.add_argument("--pidfilepath")
    ap.add_argument("--replSet")
    ap.add_argument("--auth", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--shutdown", action="store_true")
    ap.add_argument("--version", action="store_true")
    return ap.parse_args(argv)


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    import yaml  # vendored

    doc: dict[str, Any] = {}
    if args.config:
        doc = yaml.safe_load(Path(args.config).read_text()) or {}
    s = confparse.mongod_settings(doc)
    # command-line options override the file, as for mongod
    if args.port:
        s["port"] = args.port
    if args.bind_ip_all:
        s["bind_ips"] = ["0.0.0.0"]
    elif args.bind_ip:
        s["bind_ips"] = confparse.as_list(args.bind_ip)
    if args.dbpath:
        s["db_path"] = args.dbpath
    if args.logpath:
        s["log_path"], s["log_destination"] = args.logpath, "file"
    if args.logappend:
        s["log_append"] = True
    if args.fork:
        s["fork"] = True
    if args.pidfilepath:
        s["pid_file"] = args.pidfilepath
    if args.replSet:
        s["repl_set"] = args.replSet
    if args.auth:
        s["auth"] = True
    s["bind_ips"] = ["127.0.0.1" if h == "localhost" else h for h in s["bind_ips"]]
    return s


def shutdown(db_path: str) -> int:
    lock = Path(db_path) / "mongod.lock"
    text = lock.read_text().strip() if lock.exists() else ""
    if not text.isdigit():
        print("There doesn't seem to be a server running with dbpath: " + db_path, file=sys.stderr)
        return 1
    pid = int(text)
    print(f"killing process with pid: {pid}")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    for _ in range(300):
        if not Path(f"/proc/{pid}").exists():
            return 0
        time.sleep(0.1)
    print(f"process {pid} did not stop", file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    info = marker()
    version = info.get("version", "unknown")
    if args.version:
        print(f"db version v{version}")
        print(
            f'Build Info: {{"standin": "nxprovision lab stand-in", "backend": "{info.get("backend", "")}"}}'
        )
        return 0
    try:
        s = settings_from(args)
    except (OSError, ValueError) as e:
        print(f"Error parsing YAML config file: {e}", file=sys.stderr)
        return 2
    if args.shutdown:
        return shutdown(s["db_path"])
    if s["fork"] and s["log_destination"] != "file":
        print("BadValue: --fork has to be used with --logpath or --syslog", file=sys.stderr)
        return 2
    built = sorted(p.name for p in (BASE / "lib").glob("python*") if (p / "secantus").is_dir())
    if not __package__ and BUILT_FOR not in built:
        standin_common.die(PROG, f"no vendored SecantusDB for CPython {sys.version_info[0]}.{sys.version_info[1]} "
                           f"(built: {', '.join(built) or 'none'}; lib/python is CPython 3.11)", 2)
    db_path = Path(s["db_path"])
    if not db_path.is_dir():
        print(
            f"NonExistentPath: Data directory {db_path} not found. Create the missing directory or specify "
            "another path using (1) the --dbpath command line option, or (2) by adding the 'storage.dbPath' "
            "option in the configuration file.",
            file=sys.stderr,
        )
        return 100

    d: standin_common.Daemon | None = None
    if s["fork"]:
        print("about to fork child process, waiting until server is ready for connections.", flush=True)
        d = standin_common.Daemon(Path(s["log_path"]))
        if not s["log_append"]:
            Path(s["log_path"]).parent.mkdir(parents=True, exist_ok=True)
            Path(s["log_path"]).write_text("")
        d.detach()
    elif s["log_destination"] == "file":
        log_file = Path(s["log_path"])
        log_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if s["log_append"] else os.O_TRUNC))
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)

    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    standin_common.log(
        PROG, standin_common.banner("MongoDB", version, info.get("backend", "SecantusDB")), sys.stdout
    )
    if s["repl_set"]:
        standin_common.log(
            PROG,
            f"replication.replSetName={s['repl_set']}: {mongod_replset.NOTICE}",
            sys.stdout,
        )
    for k in s["unused"]:
        standin_common.log(PROG, f"option {k} is accepted but has no effect on the stand-in", sys.stdout)

    import secantus.server  # vendored
    from secantus.server import SecantusDBServer

    main_host, extra = s["bind_ips"][0], s["bind_ips"][1:]
    kwargs: dict[str, Any] = {
        "replica_set_name": s["repl_set"] or None,
        "require_auth": s["auth"],
        "enable_test_commands": False,
    }
    if s["cache_gb"]:
        kwargs["cache_size"] = f"{max(1, int(float(s['cache_gb']) * 1024))}M"
    try:
        if s["repl_set"]:
            rs = mongod_replset.ReplSet(s["repl_set"], db_path, s["bind_ips"], s["port"],
                                        mongod_replset.key_digest(s["key_file"]))
            secantus.server.dispatch = mongod_replset.wrap(secantus.server.dispatch, rs)  # type: ignore[attr-defined]
        server = SecantusDBServer(host=main_host, port=s["port"], storage_path=str(db_path), **kwargs)
        server.start()
        for h in extra:
            standin_common.Relay((h, s["port"]), (main_host, s["port"]))
    except Exception as e:  # a bind or storage failure must reach the forking parent, not just the log
        msg = f"failed to start: {e}"
        standin_common.log(PROG, msg, sys.stdout)
        if d:
            d.report(False, msg)
        return 48 if isinstance(e, OSError) else 1
    (db_path / "mongod.lock").write_text(f"{os.getpid()}\n")
    if s["pid_file"]:
        standin_common.write_pidfile(s["pid_file"])
    standin_common.log(
        PROG, f"Waiting for connections on {', '.join(s['bind_ips'])} port {s['port']}", sys.stdout
    )
    if d:
        d.report(True, f"forked process: {os.getpid()}\nchild process started successfully, parent exiting")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    standin_common.log(PROG, "shutting down", sys.stdout)
    server.stop()
    (db_path / "mongod.lock").write_text("")
    if s["pid_file"]:
        Path(s["pid_file"]).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
