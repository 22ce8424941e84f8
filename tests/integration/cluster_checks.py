"""Checks of a deployed cluster from outside, the way users and operators see it.

Nuxeo is reached through the load balancer only, with the official Nuxeo Python client; the database,
the bucket and the search cluster are checked with their own clients.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import Cluster, build_cluster

# The per-host recap line every nxprovision run ends with (Ansible's format).
RECAP_RE = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def recap(text: str) -> dict[str, tuple[int, int, int, int]]:
    return {m[0]: (int(m[1]), int(m[2]), int(m[3]), int(m[4])) for m in RECAP_RE.findall(text)}


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # the check is retried until the deadline; the last error is reported
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last!r}")


# The CA each deployed public URL is checked against (TLS-enabled inventories), filled by Deployed.load.
_CA_OF_URL: dict[str, str] = {}


def ssl_context(url: str) -> Any:
    import ssl

    ca = _CA_OF_URL.get(url.split("/nuxeo")[0])
    return ssl.create_default_context(cafile=ca) if ca and url.startswith("https://") else None


def _trust_for_requests() -> None:
    """The Nuxeo client (requests) verifies with REQUESTS_CA_BUNDLE: every lab CA of this session in one bundle."""
    import os

    bundle = Path(tempfile.gettempdir()) / f"nxprovision-test-cas-{os.getpid()}.pem"
    # a lab torn down earlier in the session took its CA with it
    for url, ca in list(_CA_OF_URL.items()):
        if not Path(ca).exists():
            del _CA_OF_URL[url]
    bundle.write_text("".join(Path(p).read_text() for p in sorted(set(_CA_OF_URL.values()))))
    os.environ["REQUESTS_CA_BUNDLE"] = str(bundle)


@dataclass
class Deployed:
    inventory: Path
    cluster: Cluster

    @classmethod
    def load(cls, inventory: Path) -> Deployed:
        d = cls(inventory, build_cluster(load_inventory(inventory)))
        if d.ca_file:
            _CA_OF_URL[d.url.split("/nuxeo")[0]] = d.ca_file
            _trust_for_requests()
        return d

    @property
    def ca_file(self) -> str | None:
        tls = self.cluster.derived["tls"]
        if not tls["lb"]:
            return None
        p = Path(tls["ca_cert_file"])
        return str(p if p.is_absolute() else self.inventory / p)

    @property
    def url(self) -> str:
        return str(self.cluster.settings["nx_public_url"]).rstrip("/")

    def secret(self, name: str) -> str:
        return str(self.cluster.settings[name])

    def client(self) -> Any:
        from nuxeo.client import Nuxeo

        return Nuxeo(host=self.url + "/", auth=("Administrator", self.secret("nx_secret_nuxeo_admin_password")))

    def address(self, host: str) -> str:
        return self.cluster.hosts[host].address

    @property
    def backend_ca(self) -> str | None:
        """The CA the search, Kafka and S3 endpoints are verified with (None: those links are plain)."""
        tls = self.cluster.derived["tls"]
        if not (tls["search"] or tls["kafka"] or tls["s3"]):
            return None
        p = Path(tls["ca_cert_file"])
        return str(p if p.is_absolute() else self.inventory / p)

    @property
    def pg_major(self) -> str:
        """The PostgreSQL major the hosts run (Debian 13: 17, Debian 12: 15), naming its paths and unit."""
        return str(self.cluster.settings["postgresql_version"])

    @property
    def search_keys(self) -> dict[str, str]:
        """nuxeo.conf's search client keys: since LTS 2025 the client package's own (nuxeo.<client>.client.*),
        before it the built-in client's elasticsearch.* keys."""
        client = self.cluster.derived["nuxeo"]["search_packages"].get("client")
        if client:
            p = f"nuxeo.{client}.client."
            return {"address": p + "server", "username": p + "username", "password": p + "password",
                    "truststore_path": p + "trustStorePath", "truststore_type": p + "trustStoreType"}
        p = "elasticsearch.restClient."
        return {"address": "elasticsearch.addressList", "username": p + "username", "password": p + "password",
                "truststore_path": p + "truststore.path", "truststore_type": p + "truststore.type"}

    def s3_client(self) -> Any:
        """boto3 on the S3 endpoint, verifying an https store with the cluster CA."""
        import boto3

        s3 = self.cluster.derived["s3"]
        return boto3.client(
            "s3",
            endpoint_url=s3["endpoint"],
            region_name=s3["region"],
            aws_access_key_id=self.secret("nx_secret_s3_access_key"),
            aws_secret_access_key=self.secret("nx_secret_s3_secret_key"),
            verify=(self.backend_ca or True) if s3["endpoint"].startswith("https://") else None,
        )


def runningstatus(base_url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(base_url + "/runningstatus", timeout=10, context=ssl_context(base_url)) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def cluster_health(inv: str) -> tuple[bool, list[str]]:
    """`nxprovision status` is the operator's view: healthy means every row ok and every front node UP."""
    out = subprocess.run(
        [sys.executable, "-m", "nxprovision.cli", "status", "-i", inv, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        rows = json.loads(out.stdout)["components"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return False, [out.stdout[-300:] + out.stderr[-300:]]
    bad = [f"{r['host']} {r['component']}: {r['health']} {r['detail']}" for r in rows if not r["healthy"]]
    bad += [f"{r['host']} LB {r['lb_state']}" for r in rows if r["lb_state"] not in ("", "UP")]
    return not bad, bad


def create_document_with_blob(nx: Any, title: str, text: str) -> tuple[Any, bytes]:
    from nuxeo.models import Document, FileBlob

    content = text.encode()
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as fh:
        fh.write(content)
        path = fh.name
    batch = nx.uploads.batch()
    blob = batch.upload(FileBlob(path, mimetype="text/plain"))
    doc = nx.documents.create(
        Document(name=title.replace(" ", "-"), type="File", properties={"dc:title": title, "file:content": blob}),
        parent_path="/default-domain/workspaces",
    )
    Path(path).unlink()
    return doc, content


def nxql(nx: Any, where: str) -> list[Any]:
    return list(nx.documents.query({"query": f"SELECT * FROM Document WHERE {where}"})["entries"])


def node_of(nx: Any) -> str:
    """Which Nuxeo node answered, through the LB, on this client's own session."""
    resp = nx.client.request("GET", "api/v1/repo/default/path/default-domain")
    return str(resp.headers.get("X-Nuxeo-Node", ""))


def md5_hex(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


def s3_keys(d: Deployed) -> list[str]:
    s3 = d.cluster.derived["s3"]
    out = d.s3_client().list_objects_v2(Bucket=s3["bucket"])
    return [o["Key"] for o in out.get("Contents", [])]


RUNS_DIR = Path("/var/lib/nxprovision/runs")


def secret_hits(lab_name: str, secrets: list[str], texts: tuple[str, ...] = ()) -> list[str]:
    """Where any of `secrets` appears: in `texts` (console output) or in any file of this lab's run records."""
    values = [s for s in secrets if s]
    hits = [f"console output #{i}: {s[:3]}..." for i, t in enumerate(texts) for s in values if s in t]
    for run in RUNS_DIR.iterdir() if RUNS_DIR.exists() else []:
        command = run / "command.json"
        if not command.exists() or lab_name not in command.read_text(errors="replace"):
            continue
        for f in run.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                hits += [f"{s[:3]}... in {f}" for s in values if s.encode() in data]
    return hits


# --- the monitoring host (Prometheus, Alertmanager): over TLS with the cluster's CA, basic auth -----------------


def monitoring_get(url: str, ca: str, auth: tuple[str, str] | None) -> tuple[int, Any]:
    """(status, JSON body, or the raw bytes when not JSON); no credentials sent when `auth` is None."""
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca), timeout=10) as r:
            body = r.read()
            return r.status, json.loads(body) if body.startswith((b"{", b"[")) else body
    except urllib.error.HTTPError as e:
        return e.code, None


def prometheus_targets(m: dict[str, Any], ca: str, auth: tuple[str, str]) -> dict[tuple[str, str], str]:
    """{(job, instance): health} of Prometheus's active targets."""
    code, body = monitoring_get(m["prometheus_url"] + "/api/v1/targets", ca, auth)
    assert code == 200, code
    return {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in body["data"]["activeTargets"]}


def wait_every_target_up(m: dict[str, Any], ca: str, auth: tuple[str, str], timeout: float = 180) -> None:
    """Prometheus scrapes exactly the model's targets (nx.monitoring.jobs), and every one answers."""
    expected = {(j["name"], t["address"]) for j in m["jobs"] for t in j["targets"]}

    def all_up() -> Any:
        seen = prometheus_targets(m, ca, auth)
        assert set(seen) == expected, seen
        return seen if all(h == "up" for h in seen.values()) else None

    wait_for(all_up, timeout, "every scrape target up", interval=5)


def prometheus_query(m: dict[str, Any], ca: str, auth: tuple[str, str], expr: str) -> dict[str, str]:
    """{nx_host: value} of an instant query."""
    import urllib.parse

    code, body = monitoring_get(m["prometheus_url"] + "/api/v1/query?query=" + urllib.parse.quote(expr), ca, auth)
    assert code == 200, code
    return {r["metric"].get("nx_host", ""): r["value"][1] for r in body["data"]["result"]}


def monitoring_access(inventory: Path) -> tuple[Deployed, dict[str, Any], str, tuple[str, str]]:
    """The deployed cluster, its nx.monitoring, the CA file and the monitoring login."""
    d = Deployed.load(inventory)
    m = d.cluster.derived["monitoring"]
    ca = str(inventory / d.cluster.derived["tls"]["ca_cert_file"])
    return d, m, ca, (m["user"], d.secret("nx_secret_monitoring_password"))


# --- a non-root operator account with sudo (issue 18: the plays become root) -------------------------------------

SUDO_USER_SETUP = ("id -u {user} >/dev/null 2>&1 || useradd -m -s /bin/bash {user}; "
                   "install -d -m 700 -o {user} -g {user} /home/{user}/.ssh && "
                   "install -m 600 -o {user} -g {user} /root/.ssh/authorized_keys /home/{user}/.ssh/ && "
                   "echo '{user} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{user} && "
                   "chmod 440 /etc/sudoers.d/{user} && sleep 1 && date +%s")


def sudo_user_on(lab_: Any, hosts: list[str], user: str) -> dict[str, str]:
    """`user` on every host, logging in with the lab's key and with passwordless sudo; host -> the host's clock
    when it was made (for a journal read of what the user did since)."""
    since = {}
    for h in hosts:
        made = lab_.ssh(h, SUDO_USER_SETUP.format(user=user))
        assert made.returncode == 0, (h, made.stdout + made.stderr)
        since[h] = made.stdout.strip().splitlines()[-1]
    return since


def sudo_journal(lab_: Any, host: str, since: str) -> str:
    return lab_.ssh(host, f"journalctl --since @{since} --no-pager -o cat | grep -E 'Accepted publickey|COMMAND=' "
                          "|| true").stdout


# --- the way AWX runs the collection (issue 17) --------------------------------------------------------------------


def awx_site_run(inventory: Path, work: Path, monkeypatch: Any, cmdline: str = "") -> tuple[Any, str]:
    """The site playbook run as AWX runs it: the collection's tarball installed into a collections path of its own,
    ansible-runner with a private data dir, the inventory and a vault password file, from a folder that is no
    checkout, with no ansible.cfg (ssh arguments and host key checking through the environment, as an AWX
    credential gives them). (runner result, its stdout); the stdout names no file of the checkout."""
    import os

    import ansible_runner

    from nxprovision import collection
    from nxprovision.runner import ssh_args

    tarball = collection.build(work / "dist", work=work / "tree")
    coll = work / "collections"
    # --force: a copy anywhere on the default collections paths (a user's ~/.ansible) would count as installed
    installed = subprocess.run([str(Path(sys.executable).parent / "ansible-galaxy"), "collection", "install",
                                "--offline", "--force", "-p", str(coll), str(tarball)], capture_output=True, text=True,
                               cwd=work, timeout=300)
    assert installed.returncode == 0, installed.stderr + installed.stdout
    site = coll / "ansible_collections" / "nxprovision" / "cluster"
    assert (site / "MANIFEST.json").exists()
    pdd = work / "job"
    pdd.mkdir()
    # the job inherits this process's environment, as an AWX job its container's: nothing of the checkout in it
    for key in [k for k in os.environ if k.startswith(("ANSIBLE_", "NXPROVISION_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    monkeypatch.chdir(work)
    run = ansible_runner.run(
        private_data_dir=str(pdd), playbook="nxprovision.cluster.site", inventory=str(inventory),
        cmdline=f"--vault-password-file {inventory / '.vault-pass'} {cmdline}".strip(),
        envvars={"ANSIBLE_COLLECTIONS_PATH": str(coll), "ANSIBLE_HOST_KEY_CHECKING": "True",
                 "ANSIBLE_SSH_ARGS": ssh_args(site / "ansible.cfg", inventory)},
        quiet=True, timeout=1800,
    )
    out = run.stdout.read()
    checkout = Path(__file__).resolve().parents[2]
    for checkout_path in (checkout / "roles", checkout / "playbooks", checkout / "plugins"):
        assert str(checkout_path) not in out
    return run, out
