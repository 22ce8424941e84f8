"""The stand-in server process (what `nuxeoctl start|startbg|console` runs): logs to
${nuxeo.log.dir}/server.log, writes ${nuxeo.pid.dir}/nuxeo.pid, serves HTTP at once (503 while
starting), initialises the backends, then stops gracefully on SIGTERM."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from . import conf
from .metrics import start_reporter
from .node import Node
from .web import S3KV, Batches, LocalKV, StandinHTTPServer

BANNER = "STAND-IN: nxprovision Nuxeo stand-in (Python, no Java, no Nuxeo code) for lab use only"
log = logging.getLogger("nuxeo.server")


def setup_logging(log_dir: Path) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "server.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s [%(threadName)s] [%(name)s] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("kafka").setLevel(logging.WARNING)


def pid_file(cfg: conf.NuxeoConfig) -> Path:
    return cfg.path("nuxeo.pid.dir", "log") / "nuxeo.pid"


def run(home: Path, conf_path: Path) -> int:
    cfg = conf.load(home, conf_path)
    setup_logging(cfg.path("nuxeo.log.dir", "log"))
    log.info(BANNER)
    log.info("NUXEO_HOME=%s NUXEO_CONF=%s templates=%s", home, conf_path, ",".join(cfg.templates))
    problems = conf.refusals(cfg)
    for p in problems:
        log.error("Invalid configuration: %s", p)
    if problems:
        log.error("Server not started: configuration refused")
        return 1
    pid = pid_file(cfg)
    pid.parent.mkdir(parents=True, exist_ok=True)
    pid.write_text(f"{os.getpid()}\n")
    tmp = cfg.path("nuxeo.tmp.dir", "tmp")
    data = cfg.path("nuxeo.data.dir", "nxserver/data")
    for d in (tmp, data):
        d.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        node = Node(cfg)
        node.on_commit_limit = stop.set
        bind = cfg.get("nuxeo.bind.address") or "0.0.0.0"
        port = int(cfg.get("nuxeo.server.http.port"))
        transient = (
            S3KV(node.blobs.s3, node.blobs.prefix + "transient_BatchManagerCache/")
            if node.blobs.s3
            else LocalKV(tmp / "upload")
        )
        httpd = StandinHTTPServer((bind, port), node, Batches(transient))
    except Exception as e:
        log.error("Server not started: %s", e)
        pid.unlink(missing_ok=True)
        return 1
    serve = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="http-acceptor")
    serve.start()
    log.info("HTTP connector listening on %s:%s (node %s, jvmRoute %s)", bind, port, node.node_id, node.jvm_route)
    delay = cfg.number("nuxeo.standin.startup.delay", 8)
    init_deadline = time.monotonic() + cfg.number("launcher.start.max.wait", 300)
    started_at = time.monotonic()
    ok = False
    reporter = None
    while not stop.is_set():
        try:
            node.start_backends()
            ok = True
            break
        except Exception as e:
            log.error("Component start failed, retrying: %s: %s", type(e).__name__, e)
            if time.monotonic() > init_deadline or stop.wait(2):
                break
    if ok:
        stop.wait(max(0.0, delay - (time.monotonic() - started_at)))
    if ok and not stop.is_set():
        node.started = True
        node.started_at = time.time()
        # Nuxeo starts its metric reporters with the runtime's components, once the server is up
        node.metrics.instance_up = 1
        reporter = start_reporter(cfg, node.metrics)
        log.info(
            "Nuxeo stand-in started (version %s, node %s, work processing %s)",
            node.version,
            node.node_id,
            node.work_processing,
        )
        stop.wait()
    log.info("Stopping: no new connections, finishing in-flight requests")
    if reporter is not None:
        reporter.shutdown()
        reporter.server_close()
    node.stopping = True  # in-flight requests still complete; health checks now say 503
    httpd.stopping = True
    httpd.shutdown()
    httpd.server_close()
    drained = httpd.drain(cfg.number("launcher.stop.max.wait", 60))
    if not drained:
        log.warning("some requests were still running at stop")
    node.started = False
    try:
        node.close()
    except Exception as e:
        log.warning("error while closing backends: %s", e)
    serve.join(timeout=5)
    pid.unlink(missing_ok=True)
    log.info("Nuxeo stand-in stopped" if ok else "Nuxeo stand-in stopped after a failed start")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="nuxeo-standin-server")
    ap.add_argument("--home", required=True, type=Path)
    ap.add_argument("--conf", required=True, type=Path)
    args = ap.parse_args(argv)
    return run(args.home, args.conf)


if __name__ == "__main__":
    sys.exit(main())
