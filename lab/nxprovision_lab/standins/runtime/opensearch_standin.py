"""The OpenSearch stand-in behind `bin/opensearch` in the lab's `opensearch-<v>-linux-x64.tar.gz`.

It reads config/opensearch.yml and config/jvm.options as OpenSearch does, applies the production
bootstrap checks a stand-in can judge, and runs osmem-server (an in-memory OpenSearch REST API) on
network.host:http.port. The nodes of discovery.seed_hosts hold the same data over their transport ports
(opensearch_replication): a starting node copies a live node's data before it opens its REST port. Runs under the
lab host's system python3 with the archive's lib/python only.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import sys
from pathlib import Path
from typing import Any

BASE = Path(__file__).resolve().parents[2]
if __package__:
    # imported from the nxprovision source tree (unit tests)
    from . import (
        confparse,
        javaprops,
        opensearch_cluster,
        opensearch_keystore,
        opensearch_replication,
        opensearch_security,
        opensearch_snapshots,
        standin_common,
    )
else:
    # run from an unpacked archive: the vendored libraries first, then the sibling runtime modules
    sys.path[:0] = [str(BASE / "lib" / "python"), str(Path(__file__).resolve().parent)]
    import confparse  # type: ignore[no-redef]
    import javaprops  # type: ignore[no-redef]
    import opensearch_cluster  # type: ignore[no-redef]
    import opensearch_keystore  # type: ignore[no-redef]
    import opensearch_replication  # type: ignore[no-redef]
    import opensearch_security  # type: ignore[no-redef]
    import opensearch_snapshots  # type: ignore[no-redef]
    import standin_common  # type: ignore[no-redef]

OSMEM = BASE / "lib" / "python" / "osmem_server" / "bin" / "osmem-server"
# OpenSearch 1.3 bundles JDK 11: jvm.options lines are selected for that major version
JAVA_MAJOR = 11
PROG = "opensearch"


def marker() -> dict[str, str]:
    path = BASE / "STANDIN"
    return javaprops.parse_properties(path.read_text()) if path.exists() else {}


def load_settings(conf_dir: Path, cli: list[str]) -> dict[str, Any]:
    import yaml  # vendored

    path = conf_dir / "opensearch.yml"
    if not path.is_file():
        raise ValueError(f"Unable to load settings: {path} does not exist")
    settings = confparse.flatten(yaml.safe_load(path.read_text()) or {})
    for item in cli:
        k, sep, v = item.partition("=")
        if not sep:
            raise ValueError(f"setting [{item}] must be of the form key=value")
        settings[k] = v
    return {k: confparse.substitute_env(v) for k, v in settings.items()}


def jvm_options(conf_dir: Path) -> list[str]:
    opts: list[str] = []
    main = conf_dir / "jvm.options"
    if main.is_file():
        opts += confparse.jvm_options_lines(main.read_text(), JAVA_MAJOR)
    extra_dir = conf_dir / "jvm.options.d"
    if extra_dir.is_dir():
        for f in sorted(extra_dir.glob("*.options")):
            opts += confparse.jvm_options_lines(f.read_text(), JAVA_MAJOR)
    opts += os.environ.get("OPENSEARCH_JAVA_OPTS", "").split()
    return opts


def resolve_hosts(values: list[str]) -> list[str]:
    """OpenSearch's special host names, then plain names and addresses, to IP addresses."""
    out: list[str] = []
    for v in values or ["_local_"]:
        if v in ("_local_", "_local:ipv4_"):
            found = ["127.0.0.1"]
        elif v.startswith("_") and v.endswith("_"):
            # _site_, _global_, _eth0_ ...: the host's non-loopback addresses
            found = standin_common.host_addresses()
            if not found:
                raise ValueError(f"no non-loopback address found for network.host [{v}]")
        else:
            try:
                found = [socket.gethostbyname(v)]
            except OSError as e:
                raise ValueError(f"failed to resolve host [{v}]: {e}") from None
        out += [a for a in found if a not in out]
    return out


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() == "true"


def security_enabled(s: dict[str, Any]) -> bool:
    """The security plugin with users and roles (not disabled, not ssl_only)."""
    return not _truthy(s.get("plugins.security.disabled", "false")) and \
        not _truthy(s.get("plugins.security.ssl_only", "false"))


def transport_tls(s: dict[str, Any], conf_dir: Path) -> tuple[str, str, str]:
    """(certificate, key, trusted CAs) of the transport layer, which the plugin always requires."""
    def path(key: str) -> str:
        value = str(s.get(key) or "")
        if not value:
            raise ValueError(f"{key} must be set when the security plugin is enabled")
        return str(Path(value) if Path(value).is_absolute() else conf_dir / value)

    return (path("plugins.security.ssl.transport.pemcert_filepath"),
            path("plugins.security.ssl.transport.pemkey_filepath"),
            path("plugins.security.ssl.transport.pemtrustedcas_filepath"))


def http_tls(s: dict[str, Any], conf_dir: Path) -> tuple[str, str] | None:
    """The security plugin's settings as OpenSearch reads them: (certificate, PKCS#8 key) of the https REST
    layer, or None when the REST layer is plain http. PEM paths are relative to the config directory."""
    if _truthy(s.get("plugins.security.disabled", "false")):
        return None

    def pem(key: str) -> str:
        value = str(s.get(key) or "")
        if not value:
            raise ValueError(f"{key} must be set when the security plugin is enabled")
        path = Path(value) if Path(value).is_absolute() else conf_dir / value
        if not path.is_file():
            raise ValueError(f"Unable to read {path} ({key}). Please make sure this file exists and is readable")
        return str(path)

    for layer in ("transport", "http"):
        if layer == "http" and not _truthy(s.get("plugins.security.ssl.http.enabled", "false")):
            return None
        cert = pem(f"plugins.security.ssl.{layer}.pemcert_filepath")
        key = pem(f"plugins.security.ssl.{layer}.pemkey_filepath")
        pem(f"plugins.security.ssl.{layer}.pemtrustedcas_filepath")
        text = Path(key).read_text(errors="replace")
        if "-----BEGIN PRIVATE KEY-----" not in text and "-----BEGIN ENCRYPTED PRIVATE KEY-----" not in text:
            # OpenSearch reads PKCS#8 keys only
            raise ValueError(f"{key}: the private key is not in PKCS#8 format")
        if layer == "http":
            return cert, key
    return None


def repository_s3_installed() -> bool:
    return (BASE / "plugins" / "repository-s3" / "plugin-descriptor.properties").is_file()


def check_secure_settings(conf_dir: Path) -> None:
    """OpenSearch refuses to start with a keystore setting no installed plugin declares."""
    names = opensearch_keystore.read(opensearch_keystore.keystore_path(conf_dir))
    for name in sorted(names):
        if name.startswith("s3.client.") and not repository_s3_installed():
            raise ValueError(f"unknown secure setting [{name}] please check that any required plugins are installed, "
                             "or check the breaking changes documentation for removed settings")


def snapshot_api(s: dict[str, Any], conf_dir: Path, opts: list[str], data: Path, backend: tuple[str, int],
                 node: str, cluster: str, version: str, replicator: Any = None) -> Any:
    keystore = opensearch_keystore.keystore_path(conf_dir)
    return opensearch_snapshots.SnapshotApi(
        # a restore's writes are copied to the other nodes as a client's are
        opensearch_replication.ReplicatingBackend(backend, replicator) if replicator is not None
        else opensearch_snapshots.Backend(backend),
        state_file=data / "standin-snapshot-repositories.json",
        keystore=lambda: opensearch_keystore.read(keystore),
        plugin_installed=repository_s3_installed(),
        node_settings={k: v for k, v in s.items() if k.startswith("s3.client.")},
        trust_store=opensearch_snapshots.jvm_trust_store(opts),
        node_name=node, cluster_name=cluster, version=version,
    )


def transport_members(s: dict[str, Any], own_port: int) -> list[tuple[str, str, int]]:
    """(name, host, transport port) of each configured node: the names of cluster.initial_cluster_manager_nodes
    paired in order with discovery.seed_hosts (host:port, the port this node's transport.port when left out)."""
    names = confparse.as_list(s.get("cluster.initial_cluster_manager_nodes")
                              or s.get("cluster.initial_master_nodes"))
    seeds = confparse.as_list(s.get("discovery.seed_hosts"))
    if len(names) != len(seeds):
        return []
    out = []
    for name, seed in zip(names, seeds, strict=True):
        host, sep, port = seed.rpartition(":") if seed.count(":") == 1 else (seed, "", "")
        out.append((name, host if sep else seed, int(port) if sep and port.isdigit() else own_port))
    return out


def transport_contexts(s: dict[str, Any], conf_dir: Path) -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
    """(server, client) TLS contexts of the transport port, mutual TLS with the node's transport certificate; None
    when the security plugin is disabled (plain transport)."""
    if _truthy(s.get("plugins.security.disabled", "false")):
        return None
    cert, key, cas = transport_tls(s, conf_dir)
    server = standin_common.server_tls_context(cert, key)
    server.load_verify_locations(cafile=cas)
    server.verify_mode = ssl.CERT_REQUIRED
    verify_names = _truthy(s.get("plugins.security.ssl.transport.enforce_hostname_verification", "true"))
    return server, opensearch_replication.client_context(cert, key, cas, verify_names)


def cluster_view(s: dict[str, Any], data: Path, backend: tuple[str, int], node: str, cluster: str,
                 port: int, version: str) -> Any:
    """The cluster APIs over the configured nodes: names of cluster.initial_cluster_manager_nodes, paired in order
    with discovery.seed_hosts (the lab's nodes are separate servers; see opensearch_cluster)."""
    names = confparse.as_list(s.get("cluster.initial_cluster_manager_nodes")
                              or s.get("cluster.initial_master_nodes"))
    seeds = [h.rsplit(":", 1)[0] if h.count(":") == 1 else h for h in confparse.as_list(s.get("discovery.seed_hosts"))]
    members = list(zip(names, seeds, strict=False)) if len(names) == len(seeds) else []
    api = opensearch_snapshots.Backend(backend)

    def indices() -> list[dict[str, Any]]:
        return list(api.ok("GET", "/_cat/indices?format=json&expand_wildcards=all"))

    return opensearch_cluster.Cluster(
        node_name=node, cluster_name=cluster, members=members, http_port=port,
        state_file=data / "standin-cluster-settings.json", indices=indices,
        alive=lambda host, p: standin_common.port_open(host, p, timeout=0.5), version=version)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="opensearch")
    ap.add_argument("-d", "--daemonize", action="store_true")
    ap.add_argument("-p", "--pidfile")
    ap.add_argument("-E", dest="settings", action="append", default=[])
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("-V", "--version", action="store_true")
    args = ap.parse_args(argv)
    info = marker()
    version = info.get("version", "unknown")
    if args.version:
        print(
            f"Version: {version}, Build: tar/standin (nxprovision lab stand-in: {info.get('backend', 'osmem')})"
        )
        return 0
    standin_common.log(
        PROG, standin_common.banner("OpenSearch", version, info.get("backend", "osmem-server"))
    )
    if os.geteuid() == 0 and os.environ.get("STANDIN_ALLOW_ROOT") != "1":
        standin_common.die(PROG, "can not run opensearch as root", 1)
    conf_dir = Path(os.environ.get("OPENSEARCH_PATH_CONF", str(BASE / "config")))
    try:
        s = load_settings(conf_dir, args.settings)
        opts = jvm_options(conf_dir)
        xms, xmx = confparse.heap_sizes(opts)
        http_hosts = resolve_hosts(
            confparse.as_list(s.get("http.bind_host") or s.get("http.host") or s.get("network.host"))
        )
        port = confparse.first_port(s.get("http.port"), 9200)
        tls = http_tls(s, conf_dir)
        check_secure_settings(conf_dir)
    except ValueError as e:
        standin_common.die(PROG, str(e), 1)
        return 1
    cluster = str(s.get("cluster.name", "opensearch"))
    node = str(s.get("node.name", socket.gethostname()))
    notes = [f"JVM heap from jvm.options: -Xms={xms} -Xmx={xmx} (bytes; no JVM runs)"]
    if xms != xmx:
        notes.append("WARNING: initial heap size differs from maximum heap size")
    production = not all(standin_common.is_loopback(h) for h in http_hosts)
    failures = confparse.opensearch_bootstrap_checks(s, xms, xmx)
    if failures and production:
        lines = [f"[{len(failures)}] bootstrap checks failed"]
        lines += [f"[{i}]: {f}" for i, f in enumerate(failures, 1)]
        standin_common.log(PROG, "ERROR: " + "\n".join(lines))
        return 78
    notes += [f"WARNING: bootstrap check (not enforced on loopback): {f}" for f in failures]

    data = Path(str(s.get("path.data", BASE / "data")))
    logs = Path(str(s.get("path.logs", BASE / "logs")))
    for p in (data, logs):
        p.mkdir(parents=True, exist_ok=True)
    notes.append(
        f"cluster.name={cluster} node.name={node}: osmem-server keeps this node's indices in memory (none kept in "
        f"{data}: only the snapshot repositories' registrations are); the transport port copies every write to the "
        f"other live nodes of {confparse.as_list(s.get('discovery.seed_hosts'))} and, at start, a live node's "
        "data to this one (every node holds every document: no shard routing)"
    )
    if repository_s3_installed():
        notes.append("repository-s3: the stand-in's own snapshot API (S3 repositories; its own object layout in the "
                     "bucket, not OpenSearch's repository format)")

    d = standin_common.Daemon(logs / f"{cluster}.log")
    if args.daemonize:
        d.detach()
        standin_common.log(PROG, standin_common.banner("OpenSearch", version, info.get("backend", "osmem")))
    for n in notes:
        standin_common.log(PROG, n)
    if args.pidfile:
        standin_common.write_pidfile(args.pidfile)

    main_host, extra = http_hosts[0], http_hosts[1:]
    # The backend listens on loopback only; the REST port is the snapshot API's front (opensearch_snapshots), which
    # passes every other request on. With https (security plugin, ssl_only) the front is on loopback too, behind
    # the TLS listener.
    backend = ("127.0.0.1", standin_common.free_port())
    front = ("127.0.0.1", standin_common.free_port()) if tls else (main_host, port)
    cmd = [str(OSMEM), "-addr", f"{backend[0]}:{backend[1]}", "-no-stdin-watch", "-no-ja"]
    if tls:
        standin_common.log(PROG, f"REST layer over https only (plugins.security.ssl.http): certificate {tls[0]}")
    try:
        tctx = transport_contexts(s, conf_dir)
    except (ValueError, OSError, ssl.SSLError) as e:
        standin_common.die(PROG, f"transport TLS: {e}", 1)
        return 1
    tport = confparse.first_port(s.get("transport.port"), 9300)
    replicator = opensearch_replication.Replicator(
        node_name=node, members=transport_members(s, tport), backend=backend,
        client_ctx=tctx[1] if tctx else None, log=lambda msg: standin_common.log(PROG, msg))
    api = snapshot_api(s, conf_dir, opts, data, backend, node, cluster, version, replicator)
    security = None
    if security_enabled(s):
        if not tls:
            standin_common.die(PROG, "the stand-in's security plugin needs plugins.security.ssl.http.enabled: true "
                               "(securityadmin and the users' passwords go over TLS only)", 1)
        security = opensearch_security.Security(
            s, opensearch_security.config_dir(BASE, conf_dir, version), data / "standin-security.json",
            lambda msg: standin_common.log(PROG, msg))

    def ready() -> bool:
        return standin_common.port_open(*backend)

    def on_ready() -> None:
        # the transport port first: the other nodes' writes during the copy are queued, then replayed
        for h in resolve_hosts(confparse.as_list(s.get("transport.host") or s.get("network.host"))):
            opensearch_replication.serve_transport((h, tport), tctx[0] if tctx else None, security=security,
                                                   replicator=replicator,
                                                   log=lambda msg: standin_common.log(PROG, msg))
        mode = ("mutual TLS, node requests from plugins.security.nodes_dn only" if security is not None
                else "mutual TLS" if tctx else "plain TCP")
        standin_common.log(PROG, f"transport port {tport} ({mode}): {len(replicator.peers)} other node(s)")
        if security is not None:
            standin_common.log(PROG, f"security plugin: HTTP Basic (internal users), admin_dn "
                               f"{sorted(security.admin_dn)}; securityadmin over the transport port")
        replicator.start()
        view = cluster_view(s, data, backend, node, cluster, port, version)
        opensearch_snapshots.serve_front(front, backend, api, security, view, replicator)
        if tls:
            ctx = standin_common.server_tls_context(*tls)
            for h in http_hosts:
                standin_common.TlsRelay(PROG, (h, port), front, ctx)
        else:
            for h in extra:
                standin_common.Relay((h, port), (main_host, port))
        addrs = ", ".join(f"{h}:{port}" for h in http_hosts)
        standin_common.log(PROG, f"publish_address {{{main_host}:{port}}}, bound_addresses {{{addrs}}}")
        standin_common.log(PROG, f"[{node}] started")
        d.report(True, "")

    def on_fail(msg: str) -> None:
        standin_common.log(PROG, f"ERROR: {msg}")
        d.report(False, msg)

    try:
        return standin_common.supervise(PROG, cmd, ready=ready, on_ready=on_ready, on_fail=on_fail)
    finally:
        if args.pidfile:
            Path(args.pidfile).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
