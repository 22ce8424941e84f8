"""The Nuxeo stand-in's Prometheus reporter: served only when nuxeo.conf turns it on, on its port and every address
as Nuxeo's is, with Nuxeo's names and text format for what the stand-in implements (and nothing else)."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from nxprovision import dashboards
from nxprovision_lab.standins.nuxeo import write_distribution
from nxprovision_lab.standins.nuxeo.runtime import conf
from nxprovision_lab.standins.nuxeo.runtime.metrics import (
    Metrics,
    ReporterServer,
    java_double,
    prom_name,
    start_reporter,
)
from nxprovision_lab.standins.nuxeo.runtime.node import Node
from nxprovision_lab.standins.nuxeo.runtime.web import Batches, LocalKV, StandinHTTPServer

MONGO = "nuxeo.templates=mongodb\nnuxeo.mongodb.server=mongodb://db1:27017/nuxeo\n" \
        "elasticsearch.addressList=http://es1:9200\n"
ON = "metrics.enabled=true\nmetrics.prometheus.enabled=true\nmetrics.prometheus.port=0\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    nx = tmp_path / "nx"
    write_distribution(nx, "2023.35")
    return nx


def _cfg(home: Path, text: str) -> conf.NuxeoConfig:
    p = home / "nuxeo.conf"
    p.write_text(MONGO + text)
    return conf.load(home, p, {})


@pytest.fixture
def served() -> Iterator[tuple[Metrics, ReporterServer]]:
    import threading

    m = Metrics()
    server = ReporterServer(0, m)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield m, server
    server.shutdown()
    server.server_close()


def _scrape(server: ReporterServer, path: str = "/metrics") -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}{path}", timeout=5) as r:
        return r.headers["Content-Type"], r.read().decode()


def _samples(text: str) -> dict[str, float]:
    return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines() if not ln.startswith("#")}


def test_names_follow_nuxeos_reporter() -> None:
    assert prom_name("nuxeo.works.global.queue.scheduled", "gauge") == \
        "dropwizard5_nuxeo_works_global_queue_scheduled_gauge"
    assert prom_name("nuxeo.instance-up", "counter") == "dropwizard5_nuxeo_instance_up_counter"
    assert [java_double(v) for v in (0, 3, 0.25, 12345678, 1e-4)] == ["0.0", "3.0", "0.25", "1.2345678E7", "1.0E-4"]


def test_off_unless_both_keys_are_on(home: Path) -> None:
    # Nuxeo's defaults (metrics.enabled=false) and each key alone: no endpoint
    for text in ("", "metrics.prometheus.enabled=true\n", "metrics.enabled=true\n"):
        assert start_reporter(_cfg(home, text), Metrics()) is None, text
    server = start_reporter(_cfg(home, ON), Metrics())
    assert server is not None
    try:
        # every address, as Nuxeo's (the Java client's HTTPServer(port) has no bind option)
        assert server.server_address[0] == "0.0.0.0"
        _ctype, text = _scrape(server)
        assert "dropwizard5_nuxeo_instance_up_counter" in text
    finally:
        server.shutdown()
        server.server_close()


def test_the_template_default_port_is_nuxeos(home: Path) -> None:
    assert _cfg(home, "").get("metrics.prometheus.port") == "9090"
    assert _cfg(home, "metrics.prometheus.port=9464\n").number("metrics.prometheus.port", 0) == 9464


def test_counters_and_text_format(served: tuple[Metrics, ReporterServer]) -> None:
    m, server = served
    m.instance_up = 1
    m.document("create")
    m.document("create")
    m.document("delete")
    ctype, text = _scrape(server)
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    name = "dropwizard5_nuxeo_repositories_repository_documents_create_counter"
    # OpenCensus exports a Dropwizard counter as a gauge; the Java client writes doubles and a trailing comma
    assert f"# TYPE {name} gauge\n{name}{{repository=\"default\",}} 2.0\n" in text
    assert f"# HELP {name} Collected from dropwizard5 (metric=nuxeo.repositories.repository.documents.create," in text
    s = _samples(text)
    assert s['dropwizard5_nuxeo_repositories_repository_documents_delete_counter{repository="default",}'] == 1
    assert s['dropwizard5_nuxeo_repositories_repository_documents_update_counter{repository="default",}'] == 0
    assert s["dropwizard5_nuxeo_instance_up_counter"] == 1
    # any path, as the Java client's server
    assert _scrape(server, "/")[1].startswith("# HELP ")


def test_request_timer_is_a_summary(served: tuple[Metrics, ReporterServer]) -> None:
    m, server = served
    for ms in (10, 20, 30, 40):
        m.requests.observe(ms * 1_000_000)
    text = _scrape(server)[1]
    name = "dropwizard5_nuxeo_web_authentication_requests_timer_timer"  # the key ends in .timer, then the type
    assert f"# TYPE {name} summary\n" in text
    s = _samples(text)
    assert s[f"{name}_count"] == 4 and s[f"{name}_sum"] == 0  # OpenCensus leaves the sum at 0
    assert s[f'{name}{{quantile="0.5",}}'] == 25_000_000 and s[f'{name}{{quantile="0.999",}}'] == 40_000_000


def test_work_queue_without_kafka(served: tuple[Metrics, ReporterServer]) -> None:
    m, server = served
    for _ in range(3):
        m.work_submitted()
    m.work_started()
    m.work_done()
    m.work_started()
    s = _samples(_scrape(server)[1])
    q = '{queue="common",}'
    assert (s["dropwizard5_nuxeo_works_global_queue_scheduled_gauge" + q],
            s["dropwizard5_nuxeo_works_global_queue_running_gauge" + q],
            s["dropwizard5_nuxeo_works_global_queue_completed_gauge" + q],
            s["dropwizard5_nuxeo_works_global_queue_canceled_gauge" + q]) == (1, 1, 1, 0)
    assert not any(k.startswith("dropwizard5_nuxeo_streams_") for k in s)  # no stream without Kafka


def test_stream_lag_with_kafka_and_none_when_the_brokers_fail(served: tuple[Metrics, ReporterServer]) -> None:
    m, server = served
    m.stream_lag = lambda: (40, 52, 12)
    s = _samples(_scrape(server)[1])
    tags = '{group="work-common",stream="work-common",}'
    assert (s["dropwizard5_nuxeo_streams_global_stream_group_pos_gauge" + tags],
            s["dropwizard5_nuxeo_streams_global_stream_group_end_gauge" + tags],
            s["dropwizard5_nuxeo_streams_global_stream_group_lag_gauge" + tags]) == (40, 52, 12)
    # the stream WorkManager's queue gauges read the same stream
    assert s['dropwizard5_nuxeo_works_global_queue_scheduled_gauge{queue="common",}'] == 12
    assert s['dropwizard5_nuxeo_works_global_queue_completed_gauge{queue="common",}'] == 40

    def down() -> tuple[int, int, int]:
        raise OSError("no broker")

    m.stream_lag = down
    m._stream_cache = (0.0, None)
    s = _samples(_scrape(server)[1])
    assert not any(k.startswith("dropwizard5_nuxeo_streams_") for k in s)


def test_serves_exactly_the_names_the_dashboards_and_rules_may_read() -> None:
    m = Metrics()
    m.stream_lag = lambda: (0, 0, 0)
    served = {sample for _n, _t, _h, samples in m.families() for sample, _tags, _v in samples}
    assert served == dashboards.exported_names()["nuxeo"]
    rules = (Path(__file__).resolve().parents[2] / "roles/monitoring/templates/etc/prometheus/"
             "nxprovision.rules.yml.j2").read_text()
    for name in ("dropwizard5_nuxeo_works_global_queue_scheduled_gauge",
                 "dropwizard5_nuxeo_streams_global_stream_group_lag_gauge"):
        assert name in rules and name in served


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_parses_the_text() -> None:
    m = Metrics()
    m.stream_lag = lambda: (1, 2, 1)
    m.requests.observe(5_000_000)
    m.document("update")
    r = subprocess.run(["promtool", "check", "metrics"], input=m.text(), capture_output=True, text=True)
    # lint remarks (Nuxeo's names break Prometheus' naming advice) are not parse errors
    assert "error while linting" not in r.stdout + r.stderr and "text format parsing error" not in r.stderr, \
        r.stdout + r.stderr


def test_requests_are_timed_but_not_runningstatus(home: Path, tmp_path: Path) -> None:
    node = Node(_cfg(home, ON))
    httpd = StandinHTTPServer(("127.0.0.1", 0), node, Batches(LocalKV(tmp_path / "upload")))
    import threading

    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        for path in ("/nuxeo/runningstatus", "/nuxeo/runningstatus", "/nuxeo/api/v1/path/", "/nuxeo/site/x"):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", path)
            c.getresponse().read()
            c.close()
        # the two API calls (503 while the node is not started: Nuxeo's filter times them all the same); a call is
        # recorded once its answer is written, so the last one may land just after the client has read it
        deadline = time.monotonic() + 5
        while node.metrics.requests.count < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # and no more than those two arrive
        assert node.metrics.requests.count == 2
    finally:
        httpd.shutdown()
        httpd.server_close()
