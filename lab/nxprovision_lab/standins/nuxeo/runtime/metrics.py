"""Nuxeo's Prometheus reporter, as far as the stand-in implements it.

Nuxeo (LTS 2023, runtime-metrics' PrometheusReporter, since 11.1) starts it once the runtime is up when nuxeo.conf
has `metrics.enabled=true` and `metrics.prometheus.enabled=true`: the Prometheus client's HTTPServer on
`metrics.prometheus.port` (default 9090), on every address, plain HTTP, no authentication; Nuxeo has no option for
a bind address, TLS or credentials. The stand-in does the same, so the lab meets the same exposure.

The names are the Dropwizard names as OpenCensus' Dropwizard bridge and Prometheus exporter write them:
`dropwizard5_` + the name with `.` and `-` turned to `_` + `_` + the Dropwizard type (`counter`, `gauge`, `timer`);
Dropwizard tags become labels. OpenCensus exports a Dropwizard counter as a Prometheus gauge, and a timer as a
summary (quantiles 0.5 0.75 0.98 0.99 0.999 in nanoseconds, `_count`, and `_sum` left at 0). The text is version
0.0.4 as the Java client of that era writes it (doubles as Java prints them, a trailing comma after the labels).

Implemented (what the stand-in does):
- `nuxeo.instance-up`;
- `nuxeo.repositories.repository.documents.create|update|delete{repository}` (repository `default`);
- `nuxeo.web.authentication.requests.timer`: every request under the context path but runningstatus, as
  NuxeoAuthenticationFilter times them;
- `nuxeo.works.global.queue.scheduled|running|completed|canceled{queue}` for the stand-in's one queue, `common`;
- `nuxeo.streams.global.stream.group.lag|pos|end{stream,group}` for its one stream, the work stream on Kafka.

Not implemented: the JVM, Tomcat and log4j instruments, caches, directories, transactions, the search timers, the
streams' latency and computation metrics, the work DLQ and timers, and every other metric of the real reporter.
The global work and stream metrics are reported by every stand-in node (Nuxeo computes them on one node at a time),
so queries take the max over nodes, as with the real ones.
"""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("nuxeo.metrics")

PREFIX = "dropwizard5_"
QUANTILES = (0.5, 0.75, 0.98, 0.99, 0.999)
RESERVOIR = 1028  # the size of Dropwizard's default (exponentially decaying) reservoir; here the last N samples
STREAM_CACHE_S = 5.0  # one Kafka round trip per scrape at most every few seconds, whatever the scrapers


def prom_name(dropwizard: str, kind: str) -> str:
    """`nuxeo.works.global.queue.scheduled`, `gauge` -> `dropwizard5_nuxeo_works_global_queue_scheduled_gauge`."""
    raw = f"{PREFIX}{dropwizard}_{kind}"
    return "".join(ch if ch.isalnum() or ch in "_:" else "_" for ch in raw)


def java_double(value: float) -> str:
    """A double as Java's Double.toString writes it (the Java client's text format): 3.0, 0.25, 1.2345678E7."""
    v = float(value)
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0.0"
    if 1e-3 <= abs(v) < 1e7:
        text = repr(v)
        return text if "." in text or "e" in text else text + ".0"
    mantissa, _, exponent = f"{v:.16e}".partition("e")
    mantissa = mantissa.rstrip("0")
    if mantissa.endswith("."):
        mantissa += "0"
    return f"{mantissa}E{int(exponent)}"


def _labels(tags: dict[str, str]) -> str:
    if not tags:
        return ""
    body = "".join(f'{k}="{_escape(v)}",' for k, v in sorted(tags.items()))
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Timer:
    def __init__(self) -> None:
        self.count = 0
        self._samples: list[int] = []  # the last RESERVOIR durations (ns), in arrival order
        self._lock = threading.Lock()

    def observe(self, ns: int) -> None:
        with self._lock:
            self.count += 1
            self._samples.append(ns)
            if len(self._samples) > RESERVOIR:
                del self._samples[0]

    def snapshot(self) -> tuple[int, list[float]]:
        with self._lock:
            ordered = sorted(self._samples)
            count = self.count
        if not ordered:
            return count, [0.0 for _ in QUANTILES]
        # Dropwizard's Snapshot.getValue(q): the sample at rank q*(n+1), interpolated
        out = []
        for q in QUANTILES:
            pos = q * (len(ordered) + 1)
            if pos < 1:
                out.append(float(ordered[0]))
            elif pos >= len(ordered):
                out.append(float(ordered[-1]))
            else:
                lower = ordered[int(pos) - 1]
                upper = ordered[int(pos)]
                out.append(lower + (pos - int(pos)) * (upper - lower))
        return count, out


class Metrics:
    """The node's registry: the counters its code paths bump, and gauges read at scrape time."""

    def __init__(self, repository: str = "default") -> None:
        self.repository = repository
        self._lock = threading.Lock()
        self._documents = {"create": 0, "update": 0, "delete": 0}
        self.requests = Timer()
        self.instance_up = 0
        self._work = {"running": 0, "completed": 0, "submitted": 0}
        # work queue -> stream lag reader (pos, end, lag), set by the node when its work goes through Kafka
        self.stream_lag: Callable[[], tuple[int, int, int]] | None = None
        self.stream_name = "work-common"
        self._stream_cache: tuple[float, tuple[int, int, int] | None] = (0.0, None)

    # ---- what the node's code paths call ----
    def document(self, event: str) -> None:
        with self._lock:
            self._documents[event] += 1

    def request(self, started: float) -> None:
        self.requests.observe(int((time.perf_counter() - started) * 1e9))

    def work_submitted(self) -> None:
        with self._lock:
            self._work["submitted"] += 1

    def work_started(self) -> None:
        with self._lock:
            self._work["running"] += 1

    def work_done(self) -> None:
        with self._lock:
            self._work["running"] -= 1
            self._work["completed"] += 1

    # ---- scrape ----
    def _stream(self) -> tuple[int, int, int] | None:
        if self.stream_lag is None:
            return None
        at, value = self._stream_cache
        if time.monotonic() - at < STREAM_CACHE_S:
            return value
        try:
            value = self.stream_lag()
        except Exception as e:  # a broker down: no stream metrics in this scrape, as Nuxeo has none without Kafka
            log.warning("stream lag not available: %s", e)
            value = None
        self._stream_cache = (time.monotonic(), value)
        return value

    def families(self) -> list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]]:
        """(name, type, help, samples) of every exported family; samples are (name, labels, value)."""
        out: list[tuple[str, str, str, list[tuple[str, dict[str, str], float]]]] = []

        def family(dropwizard: str, kind: str, java_type: str, prom_type: str,
                   samples: list[tuple[str, dict[str, str], float]]) -> None:
            name = prom_name(dropwizard, kind)
            help_ = f"Collected from dropwizard5 (metric={dropwizard}, type={java_type})"
            out.append((name, prom_type, help_, [(name + suffix, tags, v) for suffix, tags, v in samples]))

        counter = "io.dropwizard.metrics5.Counter"
        gauge = "io.dropwizard.metrics5.Gauge"  # Nuxeo's are lambdas: their generated class names differ
        with self._lock:
            documents = dict(self._documents)
            work = dict(self._work)
            up = self.instance_up
        family("nuxeo.instance-up", "counter", counter, "gauge", [("", {}, up)])
        repo = {"repository": self.repository}
        for event in ("create", "delete", "update"):
            family(f"nuxeo.repositories.repository.documents.{event}", "counter", counter, "gauge",
                   [("", repo, documents[event])])
        count, quantiles = self.requests.snapshot()
        family("nuxeo.web.authentication.requests.timer", "timer", "io.dropwizard.metrics5.Timer", "summary",
               [*(("", {"quantile": java_double(q)}, v) for q, v in zip(QUANTILES, quantiles, strict=True)),
                ("_count", {}, count), ("_sum", {}, 0.0)])
        stream = self._stream()
        queue = {"queue": "common"}
        if stream is not None:
            pos, end, lag = stream
            scheduled, completed = lag, pos  # the stream WorkManager's view: the lag is what is still to run
        else:
            scheduled = max(0, work["submitted"] - work["running"] - work["completed"])
            completed = work["completed"]
        for metric, value in (("canceled", 0), ("completed", completed), ("running", work["running"]),
                              ("scheduled", scheduled)):
            family(f"nuxeo.works.global.queue.{metric}", "gauge", gauge, "gauge", [("", queue, value)])
        if stream is not None:
            tags = {"stream": self.stream_name, "group": self.stream_name}
            for metric, value in (("end", end), ("lag", lag), ("pos", pos)):
                family(f"nuxeo.streams.global.stream.group.{metric}", "gauge", gauge, "gauge", [("", tags, value)])
        return out

    def text(self) -> str:
        lines: list[str] = []
        for name, prom_type, help_, samples in self.families():
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {prom_type}")
            for sample, tags, value in samples:
                lines.append(f"{sample}{_labels(tags)} {java_double(value)}")
        return "\n".join(lines) + "\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: ReporterServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        # the Java client's HTTPServer answers the same text on any path (`/metrics` is what Prometheus asks)
        body = self.server.metrics.text().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ReporterServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, metrics: Metrics) -> None:
        self.metrics = metrics
        # every address, as Nuxeo's reporter (no bind option): the host firewall is what narrows it
        super().__init__(("", port), _Handler)


def enabled(cfg: Any) -> bool:
    return bool(cfg.flag("metrics.enabled") and cfg.flag("metrics.prometheus.enabled"))


def start_reporter(cfg: Any, metrics: Metrics) -> ReporterServer | None:
    """The Prometheus endpoint when nuxeo.conf turns it on, else None. A port in use is logged with Nuxeo's message
    and the node serves on without the reporter (the target then shows down in Prometheus)."""
    if not enabled(cfg):
        return None
    port = int(cfg.number("metrics.prometheus.port", 9090))
    try:
        server = ReporterServer(port, metrics)
    except OSError as e:
        log.error("Cannot start Prometheus on port %s: %s", port, e)
        return None
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="prometheus-reporter",
                     daemon=True).start()
    log.warning("Creating Prometheus endpoint on port %s", port)
    return server
