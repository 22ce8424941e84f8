"""nuxeo.conf reading in the Nuxeo stand-in: syntax, substitution, template layering, refusal rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from nxprovision_lab.standins.nuxeo import write_distribution
from nxprovision_lab.standins.nuxeo.runtime import conf

DB_OK = "nuxeo.db.host=db1\nnuxeo.db.name=nuxeo\nnuxeo.db.user=nuxeo\nnuxeo.db.password=pw\n"
SEARCH = "elasticsearch.addressList=http://es1:9200\n"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    write_distribution(tmp_path / "nx", "2023.34")
    return tmp_path / "nx"


def load(home: Path, text: str, env: dict[str, str] | None = None) -> conf.NuxeoConfig:
    p = home / "nuxeo.conf"
    p.write_text(text)
    return conf.load(home, p, env or {})


def test_properties_syntax_and_java_opts_append() -> None:
    props = conf.parse_properties(
        "# comment\n! also\nJAVA_OPTS=-Xmx1g\nJAVA_OPTS=$JAVA_OPTS -Dx=1\nkey : v\\\n  continued\nsp ace=\\u00e9\n"
    )
    assert props == {"JAVA_OPTS": "-Xmx1g -Dx=1", "key": "vcontinued", "sp": "ace=é"}


def test_substitution_env_escape_and_unknown() -> None:
    lookup = {"a": "${b}/x", "b": "B"}
    assert conf.substitute("${a}-${env:HOME_X:dflt}-${env:V}", lookup, {"V": "v"}) == "B/x-dflt-v"
    assert conf.substitute("$${nuxeo.data.dir}/h2 ${nope}", lookup, {}) == "${nuxeo.data.dir}/h2 ${nope}"


def test_template_layering_includes_and_appends(home: Path) -> None:
    cfg = load(
        home,
        "nuxeo.templates=default,postgresql-quartz-cluster\nnuxeo.append.templates.b=mongodb\n"
        "nuxeo.append.templates.a=aws\n" + DB_OK,
    )
    # includes first, each template once, appends sorted by suffix (a before b)
    assert cfg.templates == [
        "common-base",
        "common",
        "default",
        "postgresql",
        "postgresql-quartz-cluster",
        "aws",
        "mongodb",
    ]
    assert cfg.get("nuxeo.quartz.enable") == "true"  # later template overrides common-base
    assert cfg.get("nuxeo.db.host") == "db1"  # nuxeo.conf overrides templates
    assert cfg.get("nuxeo.db.jdbc.url") == "jdbc:postgresql://db1:5432/nuxeo"
    assert cfg.get("audit.elasticsearch.indexName") == "nuxeo-audit"
    assert cfg.path("nuxeo.log.dir", "log") == home / "log"  # relative to NUXEO_HOME


def test_default_conf_path_honours_nuxeo_conf(tmp_path: Path) -> None:
    assert conf.default_conf_path(tmp_path, {}) == tmp_path / "bin" / "nuxeo.conf"
    assert conf.default_conf_path(tmp_path, {"NUXEO_CONF": "/etc/nuxeo/nuxeo.conf"}) == Path("/etc/nuxeo/nuxeo.conf")


def test_missing_template_is_an_error(home: Path) -> None:
    with pytest.raises(conf.ConfigError, match="Template 'nope' not found"):
        load(home, "nuxeo.templates=default,nope\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nuxeo.templates=default,postgresql\n" + SEARCH, "nuxeo.db.host, nuxeo.db.name"),
        ("nuxeo.templates=default,mongodb\n" + SEARCH, "nuxeo.mongodb.server"),
        ("nuxeo.templates=default\n" + SEARCH, "embedded H2"),
        ("nuxeo.templates=default,postgresql,s3binaries\n" + DB_OK + SEARCH, "nuxeo.s3storage.bucket is empty"),
        ("nuxeo.templates=default,postgresql\nnuxeo.cluster.enabled=true\n" + DB_OK + SEARCH, "shared binary store"),
        ("nuxeo.templates=default,postgresql\n" + DB_OK, "elasticsearch.addressList is empty"),
    ],
)
def test_refusals(home: Path, text: str, expected: str) -> None:
    (home / "templates" / "s3binaries").mkdir()
    (home / "templates" / "s3binaries" / "nuxeo.defaults").write_text(
        "nuxeo.template.includes=aws\nnuxeo.s3storage.bucket=\n"
    )
    problems = conf.refusals(load(home, text))
    assert any(expected in p for p in problems), problems


def test_accepted_cluster_configs(home: Path) -> None:
    pg = load(
        home,
        "nuxeo.templates=default,postgresql-quartz-cluster\nnuxeo.cluster.enabled=true\n"
        "nuxeo.binarystores.root=/mnt/binaries\n" + DB_OK + SEARCH,
    )
    assert conf.refusals(pg) == []
    mongo = load(home, "nuxeo.templates=default,mongodb\nnuxeo.mongodb.server=mongodb://m1/\n" + SEARCH)
    assert conf.refusals(mongo) == []


def test_set_in_conf_keeps_comments_and_replaces_in_place(tmp_path: Path) -> None:
    p = tmp_path / "nuxeo.conf"
    p.write_text("# header\na=1\nnuxeo.templates=default\nb=2\n")
    conf.set_in_conf(p, "nuxeo.templates", "default,s3binaries")
    conf.set_in_conf(p, "c", "3")
    assert p.read_text() == "# header\na=1\nnuxeo.templates=default,s3binaries\nb=2\nc=3\n"
