"""`nuxeoctl` of the stand-in: the launcher commands the Ansible role and operators use, with
Nuxeo's exit codes (status: 0 running, 3 stopped; 1 error; 2 bad arguments)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from . import conf
from .packages import PackageError, PackageManager
from .server import BANNER, pid_file

EXIT_OK, EXIT_ERROR, EXIT_BAD_ARGS, EXIT_NOT_RUNNING = 0, 1, 2, 3
SERVER_MODULE = (__package__ or "nuxeo_standin") + ".server"
PKG_COMMANDS = {
    "mp-install",
    "mp-uninstall",
    "mp-set",
    "mp-add",
    "mp-remove",
    "mp-reset",
    "mp-purge",
    "mp-hotfix",
    "mp-upgrade",
    "mp-request",
    "pack",
}
USAGE = """usage: nuxeoctl [options] <command> [args]
commands: start startbg console stop restart restartbg status configure showconf config register
          mp-install mp-uninstall mp-set mp-list mp-add mp-remove help
(nxprovision Nuxeo stand-in)"""


class Ctl:
    def __init__(self, home: Path, quiet: bool) -> None:
        self.home = home
        self.quiet = quiet
        self.env = dict(os.environ)
        self.conf_path = conf.default_conf_path(home, self.env)

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def err(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    def load(self) -> conf.NuxeoConfig:
        return conf.load(self.home, self.conf_path, self.env)

    # ---- process state ----
    def running_pid(self, cfg: conf.NuxeoConfig) -> int | None:
        f = pid_file(cfg)
        try:
            pid = int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        if SERVER_MODULE.encode() not in cmd or stat.rsplit(")", 1)[1].split()[0] == "Z":
            return None  # stale pid file, or the pid was reused by something else
        return pid

    def configure(self, cfg: conf.NuxeoConfig) -> bool:
        problems = conf.refusals(cfg)
        for p in problems:
            self.err(f"ERROR Invalid configuration: {p}")
        if problems:
            return False
        out = self.home / "nxserver" / "config"
        try:
            out.mkdir(parents=True, exist_ok=True)
            lines = [
                f"# {BANNER}",
                f"# generated from {cfg.conf_path}",
                f"# templates: {','.join(cfg.templates)}",
            ]
            lines += [f"{k}={v}" for k, v in sorted(cfg.resolved().items())]
            target = out / "configuration.properties"
            target.write_text("\n".join(lines) + "\n")
            target.chmod(0o600)
        except OSError as e:
            self.err(f"WARN cannot write generated configuration in {out}: {e}")
        return True

    def spawn(self, cfg: conf.NuxeoConfig) -> subprocess.Popen[bytes]:
        log_dir = cfg.path("nuxeo.log.dir", "log")
        log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(self.env)
        paths = [str(p) for p in (self.home / "lib" / "standin", self.home / "lib" / "python") if p.is_dir()]
        env["PYTHONPATH"] = os.pathsep.join(
            [*paths, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
        )
        env["NUXEO_HOME"] = str(self.home)
        env["NUXEO_CONF"] = str(self.conf_path)
        console = (log_dir / "console.log").open("ab")
        # a new session and no inherited descriptors: the server outlives nuxeoctl (systemd Type=forking)
        return subprocess.Popen(
            [sys.executable, "-m", SERVER_MODULE, "--home", str(self.home), "--conf", str(self.conf_path)],
            cwd=self.home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )

    def probe_url(self, cfg: conf.NuxeoConfig, query: str) -> str:
        host = cfg.get("nuxeo.bind.address") or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        ctx = "/" + cfg.get("org.nuxeo.ecm.contextPath", "/nuxeo").strip("/")
        return f"http://{host}:{cfg.get('nuxeo.server.http.port')}{ctx}/runningstatus{query}"

    def start(self, wait_started: bool) -> int:
        cfg = self.load()
        pid = self.running_pid(cfg)
        if pid:
            self.say(f"Server already running with process ID {pid}.")
            return EXIT_OK
        if not self.configure(cfg):
            return EXIT_ERROR
        proc = self.spawn(cfg)
        max_wait = cfg.number("launcher.start.max.wait", 300)
        deadline = time.monotonic() + max_wait
        up = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.err(
                    f"ERROR Server failed to start (exit code {proc.returncode}); see "
                    f"{cfg.path('nuxeo.log.dir', 'log') / 'server.log'}"
                )
                return EXIT_ERROR
            if not up:
                up = self.running_pid(cfg) == proc.pid and self._port_open(cfg)
                if up and not wait_started:
                    self.say(f"Server started in background with process ID {proc.pid}.")
                    return EXIT_OK
            elif self._started(cfg):
                self.say(f"Server started with process ID {proc.pid}.")
                return EXIT_OK
            time.sleep(0.2)
        self.err(f"ERROR Server did not start within launcher.start.max.wait={max_wait:g}s")
        return EXIT_ERROR

    def _port_open(self, cfg: conf.NuxeoConfig) -> bool:
        host = urllib.parse.urlsplit(self.probe_url(cfg, "")).hostname or "127.0.0.1"
        try:
            with socket.create_connection((host, int(cfg.get("nuxeo.server.http.port"))), timeout=1):
                return True
        except OSError:
            return False

    def _started(self, cfg: conf.NuxeoConfig) -> bool:
        try:
            with urllib.request.urlopen(self.probe_url(cfg, "?info=started"), timeout=5) as r:
                return r.read().strip() == b"true"
        except OSError:
            return False

    def stop(self) -> int:
        cfg = self.load()
        pid = self.running_pid(cfg)
        if not pid:
            self.say("Server is not running.")
            return EXIT_OK
        self.say(f"Stopping server (process ID {pid})...")
        os.kill(pid, signal.SIGTERM)
        max_wait = cfg.number("launcher.stop.max.wait", 60)
        deadline = time.monotonic() + max_wait
        while time.monotonic() < deadline:
            if self.running_pid(cfg) != pid:
                self.say("Server stopped.")
                return EXIT_OK
            time.sleep(0.1)
        self.err(f"WARN Server still running after launcher.stop.max.wait={max_wait:g}s, killing it")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        pid_file(cfg).unlink(missing_ok=True)
        return EXIT_OK

    def status(self) -> int:
        cfg = self.load()
        pid = self.running_pid(cfg)
        if pid:
            self.say(f"Server is running with process ID {pid}.")
            return EXIT_OK
        self.say("Server is not running.")
        return EXIT_NOT_RUNNING

    def showconf(self) -> int:
        cfg = self.load()
        print(f"# {BANNER}")
        print(f"NUXEO_HOME={self.home}\nNUXEO_CONF={self.conf_path}\ntemplates={','.join(cfg.templates)}")
        for k, v in sorted(cfg.resolved().items()):
            print(f"{k}={'********' if conf.is_secret(k) and v else v}")
        return EXIT_OK

    def config(self, args: list[str]) -> int:
        if args[:1] == ["--get"] and len(args) >= 2:
            cfg = self.load()
            for key in args[1:]:
                print(cfg.get(key))
            return EXIT_OK
        if args[:1] == ["--set"]:
            args = args[1:]
        if len(args) == 1:
            conf.set_in_conf(self.conf_path, args[0], None)
            return EXIT_OK
        if len(args) == 2:
            conf.set_in_conf(self.conf_path, args[0], args[1])
            return EXIT_OK
        self.err("usage: nuxeoctl config --get <key>... | nuxeoctl config [--set] <key> [<value>]")
        return EXIT_BAD_ARGS

    def register(self, args: list[str]) -> int:
        cfg = self.load()
        clid_file = cfg.path("nuxeo.data.dir", "nxserver/data") / "instance.clid"
        if args[:1] == ["--clid"] and len(args) == 2:
            text = Path(args[1]).read_text()
        elif args[:1] == ["--offline"]:
            piped = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
            text = piped.strip() or f"standin-offline-{uuid.uuid4().hex}--{secrets.token_hex(16)}"
        else:
            self.err(
                "ERROR the stand-in has no Nuxeo Online Services access: "
                "use register --offline or --clid <file>"
            )
            return EXIT_ERROR
        clid_file.parent.mkdir(parents=True, exist_ok=True)
        clid_file.write_text(text.rstrip("\n") + "\n")
        self.say(f"Registered: CLID written to {clid_file}")
        return EXIT_OK

    def packages(self, command: str, args: list[str]) -> int:
        cfg = self.load()
        if command in PKG_COMMANDS and self.running_pid(cfg):
            self.err(f"ERROR Cannot execute command '{command}' while the server is running: stop it first.")
            return EXIT_ERROR
        pm = PackageManager(cfg)
        refs = [a for a in args if not a.startswith("-")]
        try:
            if command == "mp-list":
                print("Local packages:")
                for line in pm.listing():
                    print(line)
                return EXIT_OK
            if command == "mp-add":
                for r in refs:
                    self.say(f"Added {pm.add(Path(r)).id}")
                return EXIT_OK
            if command == "mp-install":
                for r in refs:
                    for m in pm.install(pm.find(r)):
                        self.say(m)
                return EXIT_OK
            if command in ("mp-uninstall", "mp-remove"):
                for r in refs:
                    for m in pm.uninstall(pm.find(r)):
                        self.say(m)
                return EXIT_OK
            if command == "mp-set":
                wanted = [pm.find(r) for r in refs]
                for pkg_id, state in pm.states().items():
                    if state == "started" and pkg_id not in wanted:
                        for m in pm.uninstall(pkg_id):
                            self.say(m)
                for pkg_id in wanted:
                    for m in pm.install(pkg_id):
                        self.say(m)
                return EXIT_OK
        except PackageError as e:
            self.err(f"ERROR {e}")
            return EXIT_ERROR
        self.err(f"ERROR the stand-in does not implement '{command}' (offline only)")
        return EXIT_ERROR


def main(argv: list[str], home: str | Path | None = None) -> int:
    env_home = os.environ.get("NUXEO_HOME")
    nx_home = Path(env_home or home or Path(__file__).resolve().parents[2]).resolve()
    opts = [a for a in argv if a.startswith("-") and a not in ("--get", "--set", "--offline", "--clid")]
    args = [a for a in argv if a not in opts]
    quiet = "-q" in opts or "--quiet" in opts
    if not args or args[0] in ("help", "--help", "-h"):
        print(USAGE)
        return EXIT_OK if args else EXIT_BAD_ARGS
    ctl = Ctl(nx_home, quiet)
    command, rest = args[0], args[1:]
    try:
        if command == "start":
            return ctl.start(wait_started=True)
        if command == "startbg":
            return ctl.start(wait_started=False)
        if command == "console":
            from .server import run

            return run(nx_home, ctl.conf_path)
        if command == "stop":
            return ctl.stop()
        if command in ("restart", "restartbg"):
            ctl.stop()
            return ctl.start(wait_started=command == "restart")
        if command == "status":
            return ctl.status()
        if command == "configure":
            return EXIT_OK if ctl.configure(ctl.load()) else EXIT_ERROR
        if command == "showconf":
            return ctl.showconf()
        if command == "config":
            return ctl.config(rest)
        if command == "register":
            return ctl.register(rest)
        if command.startswith("mp-") or command == "pack":
            return ctl.packages(command, rest)
    except conf.ConfigError as e:
        print(f"ERROR {e}", file=sys.stderr)
        return EXIT_ERROR
    print(f"ERROR unknown command '{command}'\n{USAGE}", file=sys.stderr)
    return EXIT_BAD_ARGS
