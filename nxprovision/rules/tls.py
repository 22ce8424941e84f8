"""TLS: an https public URL goes with nx_tls_enabled, and the certificates' sources exist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nxprovision.model.cluster import Cluster
from nxprovision.rules._where import of_setting
from nxprovision.rules.finding import Finding, error, warning


def _inventory_dir(c: Cluster) -> Path | None:
    """The inventory folder when the model was loaded from files (not inside a play)."""
    src = Path(str(c.view.source))
    if c.view.source in ("", "ansible") or not src.exists():
        return None
    return src if src.is_dir() else src.parent


def check(c: Cluster) -> Iterator[Finding]:
    tls = c.derived.get("tls") or {}
    url = str(c.settings.get("nx_public_url") or "")
    if not tls.get("enabled"):
        if url.startswith("https://") and c.lb_hosts:
            yield error("tls.disabled_https_url", "setting nx_public_url",
                        f"'{url}' is https but nx_tls_enabled is false: the load balancers would not serve HTTPS",
                        "set nx_tls_enabled: true (and `nxprovision certs init`), or end TLS in front of nxprovision's"
                        " load balancers and keep nx_public_url http", of_setting(c, "nx_public_url"))
        return
    if c.lb_hosts and not url.startswith("https://"):
        yield warning("tls.http_public_url", "setting nx_public_url",
                      f"'{url}' is plain http: the load balancers serve no HTTPS (TLS covers the database only)",
                      "write nx_public_url as https://HOST/nuxeo", of_setting(c, "nx_public_url"))
    yield from _backend_links(c, tls)
    for host, cert in tls.get("certs", {}).items():
        if bool(cert["source_cert"]) != bool(cert["source_key"]):
            yield error("tls.operator_cert", f"host {host}", "sets only one of nx_tls_cert_file / nx_tls_key_file",
                        "give both the certificate and its key, or neither (the cluster CA issues one)",
                        of_setting(c, "nx_tls_cert_file", host))
    base = _inventory_dir(c)
    if base is None:
        return
    ca = Path(tls["ca_cert_file"])
    ca = ca if ca.is_absolute() else base / ca
    if not ca.exists():
        yield error("tls.ca_missing", "setting nx_tls_ca_cert_file", f"{ca} does not exist",
                    f"run `nxprovision certs init -i {base}` to create the cluster CA, or point nx_tls_ca_cert_file "
                    "at your CA certificate", of_setting(c, "nx_tls_ca_cert_file"))
    key = Path(tls["ca_key_file"])
    key = key if key.is_absolute() else base / key
    if tls.get("internal_ca") and ca.exists() and not key.exists():
        yield error("tls.ca_key_missing", "setting nx_tls_ca_key_file",
                    f"{key} does not exist: hosts without nx_tls_cert_file need the CA key to get a certificate",
                    "restore the CA key, or give those hosts nx_tls_cert_file and nx_tls_key_file",
                    of_setting(c, "nx_tls_ca_key_file"))
    for host, cert in tls.get("certs", {}).items():
        for k in ("source_cert", "source_key"):
            if cert[k]:
                p = Path(cert[k]) if Path(cert[k]).is_absolute() else base / cert[k]
                if not p.exists():
                    yield error("tls.operator_cert_missing", f"host {host}", f"{p} does not exist",
                                "fix the path (relative to the inventory folder; keep the files in .pki/ or "
                                "outside the folder, Ansible reads every other file there as inventory)",
                                of_setting(c, "nx_tls_cert_file", host))


def _backend_links(c: Cluster, tls: dict) -> Iterator[Finding]:
    """Nuxeo -> search, Kafka and S3: what the per-link switches (nx_tls_search, nx_tls_kafka, nx_tls_s3) leave."""
    s = c.settings
    if tls.get("search") and s.get("search_distribution") == "elasticsearch":
        yield warning("tls.search_elasticsearch", "setting nx_tls_search",
                      "search TLS is written for OpenSearch (security plugin in ssl_only mode); Elasticsearch needs "
                      "xpack.security with users, which the role does not set up",
                      "use search_distribution: opensearch, or set nx_tls_search: false",
                      of_setting(c, "nx_tls_search"))
    endpoint = str(s.get("s3_endpoint") or "")
    if str(s.get("s3_mode")) == "external" and endpoint.startswith("http://"):
        yield warning("tls.s3_external_http", "setting s3_endpoint",
                      f"'{endpoint}' is plain http: Nuxeo's binaries and S3 keys cross the network unencrypted",
                      "use the store's https endpoint", of_setting(c, "s3_endpoint"))
    plain = [name for name, on in (("search", tls.get("search")), ("kafka", tls.get("kafka")), ("s3", tls.get("s3")))
             if not on and _present(c, name)]
    if plain:
        yield warning("tls.plain_backends", "settings nx_tls_" + "/".join(plain),
                      f"Nuxeo -> {', '.join(plain)} stay plain (the switch is false) although the cluster uses TLS",
                      "set " + ", ".join(f"nx_tls_{n}: true" for n in plain) + " (the default) unless a network "
                      "control protects those links", of_setting(c, f"nx_tls_{plain[0]}"))
    password = str((tls.get("truststore") or {}).get("password") or "")
    if tls.get("truststore", {}).get("hosts") and len(password) < 6:
        yield error("tls.truststore_password", "setting nx_tls_truststore_password",
                    "the Nuxeo nodes' trust store password is shorter than 6 characters (Java's key tools refuse it)",
                    "use at least 6 characters (the default is changeit)", of_setting(c, "nx_tls_truststore_password"))


def _present(c: Cluster, link: str) -> bool:
    if link == "search":
        return bool(c.search_hosts)
    if link == "kafka":
        return bool(c.kafka_brokers)
    return str(c.settings.get("s3_mode", "seaweedfs")) == "seaweedfs" and bool(c.s3_hosts)
