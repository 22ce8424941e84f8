"""The hand-built cluster (handbuilt.py) checked from outside: the fixture `nxprovision adopt` will be tested on must
be a working Nuxeo cluster before anything of nxprovision touches it.

Slow (a lab of its own, about 2 min of building): `make test-long`, not CI.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from cluster_checks import node_of
from conftest import FIGURES, bring_up, lab, lab_name, require_lab_machine
from handbuilt import HandBuilt, blob_of, build_by_hand

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def handbuilt() -> Iterator[HandBuilt]:
    require_lab_machine()
    name = lab_name("handbuilt")
    try:
        hb = build_by_hand(bring_up(name, "--hosts", "3"))
        FIGURES["test_handbuilt: build by hand"] = hb.timings["total"]
        yield hb
    finally:
        lab("down", "--name", name, check=False)


def test_running_through_the_load_balancer(handbuilt: HandBuilt) -> None:
    with urllib.request.urlopen(handbuilt.url + "/runningstatus", timeout=10) as r:
        assert r.status == 200
    # the root of the load balancer sends users to Nuxeo
    lb = urllib.parse.urlsplit(handbuilt.url)
    conn = http.client.HTTPConnection(lb.netloc, timeout=10)
    conn.request("GET", "/")
    r = conn.getresponse()
    assert (r.status, r.getheader("Location")) == (302, "/nuxeo/"), (r.status, r.getheaders())


def test_documents_read_back_through_the_load_balancer(handbuilt: HandBuilt) -> None:
    assert len(handbuilt.documents) == 3
    nx = handbuilt.client()
    for doc in handbuilt.documents:
        by_path = nx.documents.get(path=doc.path)
        assert by_path.uid == doc.uid
        assert by_path.properties["dc:title"] == doc.title
        assert by_path.properties["file:content"]["digest"] == doc.blob_md5
        assert blob_of(nx, doc) == doc.content


def test_blobs_in_the_bucket(handbuilt: HandBuilt) -> None:
    s3 = handbuilt.s3_client()
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=handbuilt.s3_bucket).get("Contents", [])}
    for doc in handbuilt.documents:
        assert doc.blob_md5 in keys, (doc, sorted(keys))
        body = s3.get_object(Bucket=handbuilt.s3_bucket, Key=doc.blob_md5)["Body"].read()
        assert hashlib.md5(body).hexdigest() == doc.blob_md5


def test_standby_replicates_the_primary(handbuilt: HandBuilt) -> None:
    standby = handbuilt.roles["database_standby"][0]
    primary = handbuilt.roles["database_primary"][0]
    out = handbuilt.lab.ssh(standby, "runuser -u postgres -- psql -tAc 'select pg_is_in_recovery()'")
    assert out.stdout.strip() == "t", out
    # streaming from the primary (not a stale copy): the primary lists the standby's address as a streaming sender
    out = handbuilt.lab.ssh(primary, "runuser -u postgres -- psql -tAc "
                                     "\"select host(client_addr) || ' ' || state from pg_stat_replication\"")
    assert out.stdout.split() == [handbuilt.lab.ip(standby), "streaming"], out


def test_every_nuxeo_node_serves_and_sessions_stick(handbuilt: HandBuilt) -> None:
    # a fresh client has no cookie: round robin hands new sessions to each node in turn
    seen = {node_of(handbuilt.client()) for _ in range(6)}
    assert seen == {"nuxeo1", "nuxeo2"}, seen
    # one client keeps HAProxy's cookie: every request goes to the same node
    nx = handbuilt.client()
    assert len({node_of(nx) for _ in range(6)}) == 1


def test_nodes_differ_as_recorded(handbuilt: HandBuilt) -> None:
    """The deliberate difference is on the hosts, as HandBuilt records it (what adopt must find)."""
    assert set(handbuilt.differences) == {"JAVA_OPTS", "nuxeo.db.max-pool-size"}, handbuilt.differences
    for host in handbuilt.roles["nuxeo"]:
        text = handbuilt.lab.ssh(host, f"cat {handbuilt.paths['nuxeo_conf']}").stdout
        lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
        for key, values in handbuilt.differences.items():
            assert lines.get(key) == values[host], (host, key, lines.get(key))


def test_built_without_nxprovision(handbuilt: HandBuilt) -> None:
    """No file under /etc comes from nxprovision's roles (which mark what they write), and no nxprovision state."""
    for host in ("host1", "host2", "host3"):
        out = handbuilt.lab.ssh(host, "grep -rlI -e 'Managed by nxprovision' -e '(nxprovision)' /etc; "
                                      "ls -d /etc/nxprovision /var/lib/nxprovision 2>/dev/null; true")
        assert out.stdout.strip() == "", (host, out.stdout)
