"""The stand-in `opensearch-<v>-linux-x64.tar.gz`: OpenSearch's layout around osmem-server."""

from __future__ import annotations

import tempfile
from pathlib import Path

from nxprovision.model.artifacts import archive_root_dir
from nxprovision_lab.standins import packing, tree, vendor
from nxprovision_lab.standins.spec import HERE, ArchiveSpec, runtime_files

REQUIREMENTS = ("osmem-server==0.1.6", "pyyaml==6.0.3")
BACKEND = ("osmem-server 0.1.6 (PyPI), OpenSearch REST API in memory per node, writes copied to every live node, "
           "no persistence")
RUNTIME = ("opensearch_standin.py", "opensearch_snapshots.py", "opensearch_keystore.py", "opensearch_security.py",
           "opensearch_cluster.py", "opensearch_replication.py", "confparse.py", "javaprops.py", "standin_common.py")
# The Nuxeo stand-in's S3 client (SigV4) and Java trust store reader, reused by the snapshot API.
SHARED = (HERE / "nuxeo" / "runtime" / "s3.py", HERE / "nuxeo" / "runtime" / "truststore.py")
# The lab's archive comes with the repository-s3 plugin installed: nxprovision documents it as a prerequisite of
# the audit snapshots (the vendor's tarball does not bundle it), and the stand-in implements its REST API.
PLUGIN_DESCRIPTOR = """\
# nxprovision lab stand-in: the S3 snapshot repository type is implemented by lib/standin/opensearch_snapshots.py
description=The S3 repository plugin adds S3 repositories (nxprovision lab stand-in)
version={version}
name=repository-s3
classname=org.opensearch.repositories.s3.S3RepositoryPlugin
java.version=11
opensearch.version={version}
"""

OPENSEARCH_YML = """\
# ======================== OpenSearch Configuration =========================
# (the defaults of the OpenSearch tarball: everything commented out)
#cluster.name: my-application
#node.name: node-1
#path.data: /path/to/data
#path.logs: /path/to/logs
#network.host: 192.168.0.1
#http.port: 9200
#discovery.seed_hosts: ["host1", "host2"]
#cluster.initial_cluster_manager_nodes: ["node-1", "node-2"]
"""

JVM_OPTIONS = """\
## JVM configuration (OpenSearch tarball defaults, abridged)
# Xms represents the initial size of total heap space
# Xmx represents the maximum size of total heap space
-Xms1g
-Xmx1g
8-10:-XX:+UseConcMarkSweepGC
8-10:-XX:CMSInitiatingOccupancyFraction=75
11-:-XX:+UseG1GC
-XX:+HeapDumpOnOutOfMemoryError
-XX:HeapDumpPath=data
-XX:ErrorFile=logs/hs_err_pid%p.log
"""

# The security plugin the tarball bundles: its descriptor, its tool and its configuration files as shipped (the
# demo configuration: an `admin` user whose password is `admin`, which a deployment must replace).
SECURITY_DESCRIPTOR = """\
# nxprovision lab stand-in: the security plugin is implemented by lib/standin/opensearch_security.py
description=Provide access control related features for OpenSearch (nxprovision lab stand-in)
version={version}.0
name=opensearch-security
classname=org.opensearch.security.OpenSearchSecurityPlugin
java.version=11
opensearch.version={version}
"""

SECURITYADMIN = """#!/bin/sh
# nxprovision lab stand-in for OpenSearch's securityadmin.sh: see STANDIN at the top of this installation.
base_dir=$(cd "$(dirname "$(readlink -f "$0")")/../../.." && pwd -P)
exec "${STANDIN_PYTHON:-/usr/bin/python3}" -I "$base_dir/lib/standin/opensearch_security.py" "$@"
"""


def _meta(kind: str) -> str:
    return f'_meta:\n  type: "{kind}"\n  config_version: 2\n'


SECURITY_CONFIG = {
    "config.yml": "---\n" + _meta("config") + """config:
  dynamic:
    http:
      anonymous_auth_enabled: false
    authc:
      basic_internal_auth_domain:
        description: "Authenticate via HTTP Basic against internal users database"
        http_enabled: true
        transport_enabled: true
        order: 4
        http_authenticator:
          type: basic
          challenge: true
        authentication_backend:
          type: intern
""",
    "internal_users.yml": "---\n" + _meta("internalusers") + """# Demo user: change its password or remove it
admin:
  hash: "$2b$12$Ktr5mPcgFZDa2RJPPehgEeTVEa56EndgdKN4OgeMGNiHV9RTckWRG"
  reserved: true
  backend_roles:
  - "admin"
  description: "Demo admin user"
""",
    "roles.yml": "---\n" + _meta("roles"),
    "roles_mapping.yml": "---\n" + _meta("rolesmapping") + """all_access:
  reserved: false
  backend_roles:
  - "admin"
  description: "Maps admin to all_access"
""",
    "action_groups.yml": "---\n" + _meta("actiongroups"),
    "tenants.yml": "---\n" + _meta("tenants"),
    "nodes_dn.yml": "---\n" + _meta("nodesdn"),
    "whitelist.yml": "---\n" + _meta("whitelist") + "config:\n  enabled: false\n",
    "audit.yml": "---\n" + _meta("audit") + "config:\n  enabled: false\n",
}

NOTES = (
    "bin/opensearch reads config/opensearch.yml and config/jvm.options and runs osmem-server behind",
    "network.host:http.port, one in-memory server per node, nothing persisted but the snapshot repositories'",
    "registrations. The nodes of discovery.seed_hosts hold the same data: a write a node accepts is applied there",
    "and copied to every other live node over the transport port before the client's answer (automatic ids sent",
    "as given), and a starting node copies every index and document of a live node before it reports started.",
    "No shard routing: every node holds every document. The transport port speaks JSON lines (not OpenSearch's",
    "transport protocol): mutual TLS with the node certificates of plugins.security.nodes_dn when the security",
    "plugin is on, plain TCP when it is disabled. The cluster APIs (_cluster/health, _cat/nodes|shards|allocation,",
    "allocation settings) are computed over the live nodes; cluster settings and snapshot repositories stay on",
    "the node that received them. The root answer reports cluster and node names from opensearch.yml.",
    "plugins/repository-s3 comes installed: _snapshot/... (S3 repositories) is answered by the stand-in itself,",
    "which keeps snapshots in the bucket in its own layout (not OpenSearch's repository format).",
    "bin/opensearch-keystore writes its own JSON file, not OpenSearch's encrypted keystore format.",
    "plugins/opensearch-security: HTTP Basic against internal_users.yml (bcrypt), roles and role mappings checked",
    "per request (401/403 as the plugin answers); the security index is a JSON file under path.data, loaded from",
    "the configuration files (allow_default_init_securityindex) or by tools/securityadmin.sh over the transport",
    "port (mutual TLS, admin_dn only).",
)


def write_tree(root: Path, version: str) -> None:
    tree.write_launcher(root, "bin/opensearch", "OpenSearch", "lib/standin/opensearch_standin.py")
    tree.write_launcher(root, "bin/opensearch-keystore", "OpenSearch", "lib/standin/opensearch_keystore.py")
    tree.write_file(root / "config" / "opensearch.yml", OPENSEARCH_YML)
    tree.write_file(root / "config" / "jvm.options", JVM_OPTIONS)
    (root / "config" / "jvm.options.d").mkdir(parents=True)
    for d in ("logs", "plugins"):
        (root / d).mkdir()
    tree.copy_runtime(root / "lib" / "standin", RUNTIME)
    for src in SHARED:
        tree.write_file(root / "lib" / "standin" / src.name, src.read_text())
    tree.write_file(root / "plugins" / "repository-s3" / "plugin-descriptor.properties",
                    PLUGIN_DESCRIPTOR.format(version=version))
    security = root / "plugins" / "opensearch-security"
    tree.write_file(security / "plugin-descriptor.properties", SECURITY_DESCRIPTOR.format(version=version))
    tree.write_file(security / "tools" / "securityadmin.sh", SECURITYADMIN, executable=True)
    # 1.x keeps the configuration inside the plugin; 2.x in config/opensearch-security
    conf = root / "config" / "opensearch-security" if int(version.split(".")[0]) >= 2 else security / "securityconfig"
    for name, text in SECURITY_CONFIG.items():
        tree.write_file(conf / name, text)
    vendor.install_target(root / "lib" / "python", REQUIREMENTS)
    tree.make_executable([root / "lib" / "python" / "osmem_server" / "bin" / "osmem-server"])
    tree.write_marker(root, "OpenSearch", version, BACKEND, NOTES)


def build(version: str, dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="nx-opensearch-") as tmp:
        root = Path(tmp) / "tree"
        write_tree(root, version)
        packing.write_targz(root, dest, top=archive_root_dir("opensearch", version))


def spec(version: str) -> ArchiveSpec:
    return ArchiveSpec(
        product="opensearch",
        version=version,
        build=lambda dest: build(version, dest),
        inputs=[HERE / "opensearch.py", HERE / "tree.py", *runtime_files(*RUNTIME), *SHARED],
        requirements=REQUIREMENTS,
        backend=BACKEND,
    )
