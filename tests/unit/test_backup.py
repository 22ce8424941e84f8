"""Backups: the model's nx.backup, the rendered PostgreSQL / Patroni / pgBackRest settings, the S3 helpers of the
binaries copy, the secret rule and the backup records beside the inventory."""

from __future__ import annotations

import datetime
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from nxprovision.backups import latest, migrate, records_dir
from nxprovision.inventory import load_inventory
from nxprovision.model.cluster import build_cluster
from nxprovision.rules import run_rules

ROOT = Path(__file__).resolve().parents[2]
PG_CONF = "etc/postgresql/conf.d/90-nxprovision.conf.j2"


def _nx_s3():
    spec = importlib.util.spec_from_file_location("nx_s3", ROOT / "plugins" / "module_utils" / "nx_s3.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["nx_s3"] = mod
    spec.loader.exec_module(mod)
    return mod


def render_pg(c, role: str, template: str, **extra) -> str:
    """A database template as the role renders it (plan does not show these: they need the host's facts)."""
    import jinja2

    from nxprovision.plan import _environment, _lookup_factory

    values = dict(c.settings, nx=c.to_facts(), inventory_hostname=c.derived["db"]["primary"],
                  ansible_memtotal_mb=4096)
    values["lookup"] = _lookup_factory(values, True)
    import yaml

    for name in yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text()):
        values.setdefault(name, f"/{name}")
    values["__postgresql_tuning"] = values["__patroni_tuning"] = c.derived["db"]["tuning_tiers"][1]
    values["__patroni_member"] = {"address": "10.0.0.1", "name": "db1"}
    values.update(extra)
    env: jinja2.Environment = _environment()
    from ansible.plugins.filter.core import FilterModule
    from ansible.plugins.test.core import TestModule

    env.filters.update(FilterModule().filters())
    env.tests.update(TestModule().tests())
    return env.get_template(f"{role}/templates/{template}").render(values)


def cluster(inv: Path):
    return build_cluster(load_inventory(inv))


def test_compact_backup_model(make_inv):
    c = cluster(make_inv("compact"))
    b = c.derived["backup"]
    assert b["enabled"] is True
    assert b["stanza"] == "nuxeo"
    assert b["bucket"] == "nuxeo-binaries-backup"
    assert b["order"] == ["database", "binaries", "audit"]
    assert b["hosts"] == c.derived["db"]["hosts"] and b["primary"] == c.derived["db"]["primary"]
    assert b["archive_command"] == "pgbackrest --stanza=nuxeo archive-push %p"
    assert b["data_dir"] == "/var/lib/postgresql/17/main"
    # the self-hosted store serves https (nx_tls_s3, on with the cluster's TLS): pgBackRest talks to it directly
    # and verifies it with the cluster CA
    s3_host = c.hosts[c.s3_hosts[0]].address
    assert b["tls_proxy"] is False
    assert b["repo"] == {"endpoint": s3_host, "connect_host": "", "port": 8333, "upstream": "",
                         "ca_file": "/etc/nxprovision/tls/ca.crt"}
    assert b["ca_file"] == "/etc/nxprovision/tls/ca.crt"
    assert b["source_bucket"] == "nuxeo-binaries" and b["endpoint"] == c.derived["s3"]["endpoint"]
    assert b["copy_host"] == c.nuxeo_nodes[0].host
    assert b["audit_index"] == "nuxeo-audit"


def test_plain_http_store_goes_through_the_tls_proxy(make_inv):
    # nx_tls_s3: false keeps the store on plain http: pgBackRest (TLS only) goes through the local TLS proxy
    c = cluster(make_inv("compact", set={"nx_tls_s3": False}))
    b = c.derived["backup"]
    s3_host = c.hosts[c.s3_hosts[0]].address
    assert c.derived["s3"]["endpoint"] == f"http://{s3_host}:8333" and c.derived["s3"]["ca_file"] == ""
    assert b["tls_proxy"] is True
    assert b["repo"] == {"endpoint": "localhost", "connect_host": "127.0.0.1", "port": 8443,
                         "upstream": f"{s3_host}:8333", "ca_file": ""}
    text = render_pg(c, "pgbackrest", "etc/pgbackrest/pgbackrest.conf.j2")
    for line in ("repo1-s3-endpoint=localhost", "repo1-storage-host=127.0.0.1", "repo1-storage-port=8443"):
        assert line in text.splitlines(), line
    proxy = render_pg(c, "pgbackrest", "etc/pgbackrest/tls-proxy.conf.j2")
    assert "accept = 127.0.0.1:8443" in proxy and f"connect = {b['repo']['upstream']}" in proxy


def test_backup_settings_override(make_inv):
    c = cluster(make_inv("compact", set={
        "s3_mode": "external", "s3_endpoint": "https://s3.example.com", "pgbackrest_s3_bucket": "bk",
        "pgbackrest_stanza": "prod main", "pgbackrest_retention_full": 4}))
    b = c.derived["backup"]
    assert b["tls_proxy"] is False
    assert b["repo"] == {"endpoint": "s3.example.com", "connect_host": "", "port": 443, "upstream": "",
                         "ca_file": ""}
    assert b["ca_file"] == ""  # an external store: the system's CAs
    assert b["bucket"] == "bk" and b["stanza"] == "prod-main" and b["retention_full"] == 4


def test_distributed_backs_up_patroni_data_dir(make_inv):
    b = cluster(make_inv("distributed")).derived["backup"]
    assert b["enabled"] and b["data_dir"].endswith("/patroni")


def test_mongodb_and_disabled_have_no_backup(make_inv):
    assert cluster(make_inv("compact", database="mongodb")).derived["backup"]["enabled"] is False
    c = cluster(make_inv("compact", set={"pgbackrest_enabled": False}))
    assert c.derived["backup"]["enabled"] is False and c.derived["backup"]["hosts"] == []


def test_archiving_rendered_from_the_first_configuration(make_inv):
    c = cluster(make_inv("compact"))
    text = render_pg(c, "postgresql", PG_CONF)
    assert "archive_mode = on" in text
    assert "archive_command = 'pgbackrest --stanza=nuxeo archive-push %p'" in text
    off = cluster(make_inv("compact", set={"pgbackrest_enabled": False}))
    assert "archive_mode" not in render_pg(off, "postgresql", PG_CONF)


def test_patroni_archiving_rendered(make_inv):
    c = cluster(make_inv("distributed"))
    text = render_pg(c, "patroni", "etc/patroni/config.yml.j2")
    assert 'archive_mode: "on"' in text and '"pgbackrest --stanza=nuxeo archive-push %p"' in text


def test_pgbackrest_conf_rendered(make_inv):
    c = cluster(make_inv("compact"))
    text = render_pg(c, "pgbackrest", "etc/pgbackrest/pgbackrest.conf.j2")
    s3_host = c.hosts[c.s3_hosts[0]].address
    for line in ("repo1-type=s3", "repo1-s3-bucket=nuxeo-binaries-backup", f"repo1-s3-endpoint={s3_host}",
                 "repo1-storage-port=8333",
                 "repo1-storage-ca-file=/etc/nxprovision/tls/ca.crt", "repo1-cipher-type=aes-256-cbc",
                 "[nuxeo]", "pg1-path=/var/lib/postgresql/17/main"):
        assert line in text.splitlines(), line
    assert not any(line.startswith("repo1-storage-host=") for line in text.splitlines())
    # the keys and the passphrase come from the vault (the task writing the file has no_log)
    assert f"repo1-s3-key-secret={c.settings['nx_secret_s3_secret_key']}" in text.splitlines()
    assert f"repo1-cipher-pass={c.settings['nx_secret_backup_cipher_pass']}" in text.splitlines()


def test_cipher_secret_needed_only_with_backups(make_inv):
    missing = run_rules(cluster(make_inv("compact", drop_secrets=["nx_secret_backup_cipher_pass"])))
    assert any(f.rule == "secrets.missing" and "nx_secret_backup_cipher_pass" in f.message for f in missing)
    mongo = run_rules(cluster(make_inv("compact", database="mongodb", drop_secrets=["nx_secret_backup_cipher_pass"])))
    assert not any(f.rule == "secrets.missing" for f in mongo)


def test_backup_records_beside_the_inventory(tmp_path):
    assert records_dir(tmp_path) == tmp_path / ".backups"
    assert records_dir(tmp_path / "hosts.yml") == tmp_path / ".backups"
    assert latest(tmp_path) is None
    records_dir(tmp_path).mkdir(parents=True)
    for name in ("20261125T220000Z", "20261125T230000Z", "20261124T235959Z"):
        (records_dir(tmp_path) / f"{name}.json").write_text("{}")
    assert latest(tmp_path) == "20261125T230000Z"


def test_former_records_are_moved_to_the_hidden_folder(tmp_path):
    old = tmp_path / "runs" / "backups"
    old.mkdir(parents=True)
    (old / "20261125T220000Z.json").write_text('{"id": "a"}')
    (old / "20261125T230000Z.json").write_text('{"id": "old copy"}')
    records_dir(tmp_path).mkdir()
    (records_dir(tmp_path) / "20261125T230000Z.json").write_text('{"id": "kept"}')
    assert latest(tmp_path) == "20261125T230000Z"  # found before the migration too
    assert migrate(tmp_path / "hosts.yml") == ["20261125T220000Z"]
    assert sorted(p.name for p in records_dir(tmp_path).iterdir()) == ["20261125T220000Z.json",
                                                                       "20261125T230000Z.json"]
    assert json.loads((records_dir(tmp_path) / "20261125T230000Z.json").read_text()) == {"id": "kept"}
    assert not (tmp_path / "runs").exists()  # nothing else lived there
    assert migrate(tmp_path) == []


def test_records_are_not_read_as_inventory(make_inv):
    """Ansible reads every file of an inventory folder, sub-folders too (the former runs/backups held JSON it took
    for groups); it skips hidden names."""
    inv = make_inv("compact")
    record = {"id": "20261125T230000Z", "cluster": "c", "complete": True,
              "database": {"label": "20261125-230000F", "stanza": "nuxeo"},
              "binaries": {"count": 1, "objects": [{"key": "k", "size": 1, "md5": "m"}]}}
    records_dir(inv).mkdir()
    (records_dir(inv) / "20261125T230000Z.json").write_text(json.dumps(record))
    view = load_inventory(inv)
    assert not {"binaries", "database", "id", "cluster"} & set(view.groups)
    assert ".backups/" in (ROOT / ".gitignore").read_text().splitlines()


LIST_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><IsTruncated>true</IsTruncated>
<NextContinuationToken>tok</NextContinuationToken>
<Contents><Key>0cc175b9c0f1b6a831c399e269772661</Key><Size>1</Size><ETag>"0cc175b9c0f1b6a831c399e269772661"</ETag></Contents>
<Contents><Key>big</Key><Size>20000000</Size><ETag>"abc-3"</ETag></Contents>
</ListBucketResult>"""


def test_parse_list_page():
    s3 = _nx_s3()
    objects, token = s3.parse_list(LIST_XML)
    assert token == "tok"
    md5 = "0cc175b9c0f1b6a831c399e269772661"
    assert objects == [{"key": md5, "size": 1, "etag": md5}, {"key": "big", "size": 20000000, "etag": "abc-3"}]
    last, none = s3.parse_list(LIST_XML.replace(b"<IsTruncated>true", b"<IsTruncated>false"))
    assert none is None and len(last) == 2


@pytest.mark.parametrize(("source", "target", "md5", "copy"), [
    ({"size": 1, "etag": "a" * 32}, None, None, True),
    ({"size": 1, "etag": "a" * 32}, {"size": 2, "etag": "a" * 32}, None, True),
    ({"size": 1, "etag": "a" * 32}, {"size": 1, "etag": "b" * 32}, None, True),
    ({"size": 1, "etag": "a" * 32}, {"size": 1, "etag": "a" * 32}, None, False),
    ({"size": 1, "etag": "x-2"}, {"size": 1, "etag": "y-2"}, None, False),  # multipart: size only
    ({"size": 1}, {"size": 1, "etag": "b" * 32}, "a" * 32, True),
])
def test_needs_copy(source, target, md5, copy):
    assert _nx_s3().needs_copy(source, target, md5) is copy


def test_sigv4_signature_is_stable_and_scoped():
    s3 = _nx_s3()
    when = datetime.datetime(2026, 11, 25, 22, 0, 0, tzinfo=datetime.UTC)
    q = s3.canonical_query({"prefix": "binaries/", "list-type": "2"})
    assert q == "list-type=2&prefix=binaries%2F"
    h1 = s3.sign("GET", "s3:8333", "/b", q, s3.EMPTY_SHA256, "us-east-1", "AK", "SK", when)
    h2 = s3.sign("GET", "s3:8333", "/b", q, s3.EMPTY_SHA256, "us-east-1", "AK", "SK", when)
    assert h1 == h2 and h1["x-amz-date"] == "20261125T220000Z"
    assert h1["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/20261125/us-east-1/s3/aws4_request, "
                                          "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=")
    assert s3.sign("GET", "s3:8333", "/c", q, s3.EMPTY_SHA256, "us-east-1", "AK", "SK", when) != h1
    assert s3.quote_key("a b/c+d") == "a%20b/c%2Bd"


# --------------------------------------------------------------------------- the audit index's snapshot repository


def test_audit_snapshot_repository_model(make_inv):
    c = cluster(make_inv("compact"))
    b = c.derived["backup"]
    a = b["audit_snapshot"]
    s3_host = c.hosts[c.s3_hosts[0]].address
    assert a["enabled"] is True and a["repository"] == "nxprovision-backup" and a["type"] == "s3"
    # in the backup bucket beside pgBackRest's repository, the binaries pool and the manifests; strings, as
    # OpenSearch answers them (the role compares them as they are)
    assert a["settings"] == {"bucket": "nuxeo-binaries-backup", "base_path": "audit-snapshots",
                             "endpoint": f"{s3_host}:8333", "protocol": "https", "path_style_access": "true"}
    assert a["settings"]["base_path"] not in (b["repo_path"].strip("/"), b["binaries_prefix"].strip("/"),
                                              b["manifests_prefix"].strip("/"))
    assert a["keystore"] == {"s3.client.default.access_key": "nx_secret_s3_access_key",
                             "s3.client.default.secret_key": "nx_secret_s3_secret_key"}
    # the store serves https with the cluster CA: OpenSearch's JVM trusts it through its own trust store
    assert a["truststore"] == {"path": "/opt/opensearch/config/s3-truststore.jks", "type": "JKS",
                               "ca_file": "/etc/nxprovision/tls/ca.crt", "password": "changeit"}
    # registered and used through the node the backups talk to
    assert a["host"] == c.search_hosts[0] and a["url"] == b["search_url"] == c.derived["search"]["urls"][0]
    assert a["plugin"] == "repository-s3"
    # secret names only in the `nx` fact, never values
    facts = json.dumps(c.to_facts())
    for name in ("nx_secret_s3_access_key", "nx_secret_s3_secret_key"):
        assert str(c.settings[name]) not in facts


def test_audit_snapshot_follows_the_store(make_inv):
    plain = cluster(make_inv("compact", set={"nx_tls_s3": False})).derived["backup"]["audit_snapshot"]
    assert plain["settings"]["protocol"] == "http" and plain["truststore"] == {}
    ext = cluster(make_inv("compact", set={"s3_mode": "external", "s3_endpoint": "https://s3.example.com",
                                           "pgbackrest_s3_bucket": "bk"})).derived["backup"]["audit_snapshot"]
    # an external store keeps its own certificate: the JVM's default CAs
    assert ext["settings"] == {"bucket": "bk", "base_path": "audit-snapshots", "endpoint": "s3.example.com:443",
                               "protocol": "https", "path_style_access": "true"}
    assert ext["truststore"] == {}


def test_audit_snapshot_only_with_backups_and_a_repository_name(make_inv):
    assert cluster(make_inv("compact", set={"pgbackrest_search_repository": ""})).derived["backup"][
        "audit_snapshot"]["enabled"] is False
    assert cluster(make_inv("compact", database="mongodb")).derived["backup"]["audit_snapshot"]["enabled"] is False
    assert cluster(make_inv("compact", set={"pgbackrest_enabled": False})).derived["backup"]["audit_snapshot"][
        "enabled"] is False
    named = cluster(make_inv("compact", set={"pgbackrest_search_repository": "audit"})).derived["backup"]
    assert named["audit_snapshot"]["repository"] == named["audit_snapshot_repository"] == "audit"


def _role_env():
    import jinja2

    from nxprovision.plan import _environment

    env: jinja2.Environment = _environment()
    from ansible.plugins.filter.core import FilterModule
    from ansible.plugins.test.core import TestModule

    env.filters.update(FilterModule().filters())
    env.tests.update(TestModule().tests())
    return env


def test_jvm_trust_store_options_rendered(make_inv):
    c = cluster(make_inv("compact"))
    text = _role_env().get_template(
        "opensearch/templates/opt/opensearch/config/jvm.options.d/s3-truststore.options.j2").render(nx=c.to_facts())
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert lines == ["-Djavax.net.ssl.trustStore=/opt/opensearch/config/s3-truststore.jks",
                     "-Djavax.net.ssl.trustStorePassword=changeit", "-Djavax.net.ssl.trustStoreType=JKS"]
    # the OpenSearch stand-in reads it as the JVM does
    from nxprovision_lab.standins.runtime import confparse, opensearch_snapshots

    opts = confparse.jvm_options_lines(text, 11)
    assert opensearch_snapshots.jvm_trust_store(opts) == ("/opt/opensearch/config/s3-truststore.jks", "changeit",
                                                          "JKS")


def test_keystore_values_follow_the_names(make_inv):
    """`opensearch-keystore add --stdin NAME...` reads one value a line in the order of the names."""
    import ast

    import yaml

    c = cluster(make_inv("compact"))
    role_vars = yaml.safe_load((ROOT / "roles" / "opensearch" / "vars" / "main.yml").read_text())
    env = _role_env()
    values = {"nx": c.to_facts(), "query": lambda _plugin, *names: [c.settings[n] for n in names],
              "__opensearch_newline": yaml.safe_load(
                  (ROOT / "roles" / "opensearch" / "vars" / "main.yml").read_text())["__opensearch_newline"]}
    names = env.from_string(role_vars["__opensearch_keystore_names"]).render(values)
    values["__opensearch_keystore_names"] = ast.literal_eval(names)  # Jinja renders the list as Python's repr
    assert values["__opensearch_keystore_names"] == ["s3.client.default.access_key", "s3.client.default.secret_key"]
    stdin = env.from_string(role_vars["__opensearch_keystore_values"]).render(values)
    assert stdin.split("\n") == [c.settings["nx_secret_s3_access_key"], c.settings["nx_secret_s3_secret_key"]]
