"""Random inventories never produce a traceback: only exit 0 (valid) or 2 (findings or a clear error)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nxprovision.cli import main
from nxprovision.model.architectures import GROUPS

ROOT = Path(__file__).resolve().parents[2]
hostnames = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.text(max_size=12),
    st.sampled_from(
        [
            "compact",
            "single",
            "distributed",
            "2023.35",
            "2021.1",
            "3.6.2",
            "1.3.20",
            "http://lb/nuxeo",
            "external",
            "kraft",
            "zookeeper",
            "mongodb",
        ]
    ),
)
settings_keys = st.sampled_from(
    [
        "nx_architecture",
        "nx_public_url",
        "nuxeo_version",
        "search_version",
        "kafka_version",
        "kafka_mode",
        "s3_mode",
        "s3_endpoint",
        "nx_database",
        "nuxeo_packages",
        "nuxeo_http_port",
        "nx_cluster_name",
        "nx_vip",
        "seaweedfs_volume_port",
        "nuxeo_cluster_nodeid",
        "nx_compat_overrides",
        "mongodb_version",
        "postgresql_version",
        "search_distribution",
    ]
)
groups = st.dictionaries(st.sampled_from([*GROUPS, "misc", "nuxeo_frnt"]), st.lists(hostnames, max_size=5), max_size=8)
overrides = st.dictionaries(settings_keys, st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=6)


def _hosts_yaml(layout: dict[str, list[str]]) -> dict:
    children: dict = {}
    for g, hosts in layout.items():
        block = {"hosts": {h: None for h in hosts}} if hosts else {}
        if g in ("nuxeo_front", "nuxeo_worker"):
            children.setdefault("nuxeo", {}).setdefault("children", {})[g] = block
        else:
            children[g] = block
    return {"all": {"children": children}}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=groups, extra=overrides, host_extra=overrides)
def test_random_inventories_never_crash(layout: dict[str, list[str]], extra: dict, host_extra: dict) -> None:
    d = Path(tempfile.mkdtemp(prefix="nxfuzz-"))
    try:
        shutil.copytree(ROOT / "inventories" / "compact", d / "inv")
        inv = d / "inv"
        (inv / "hosts.yml").write_text(yaml.safe_dump(_hosts_yaml(layout)))
        main_yml = inv / "group_vars" / "all" / "main.yml"
        data = yaml.safe_load(main_yml.read_text())
        data.update(extra)
        main_yml.write_text(yaml.safe_dump(data))
        some_host = next((h for hs in layout.values() for h in hs), None)
        if some_host and host_extra:
            # git keeps no empty folder: a clean clone of the samples has no host_vars/
            (inv / "host_vars").mkdir(exist_ok=True)
            (inv / "host_vars" / f"{some_host}.yml").write_text(yaml.safe_dump(host_extra))
        for verb in ("validate", "plan"):
            code = main([verb, "-i", str(inv)])
            assert code in (0, 2), f"{verb} exited {code}"
    finally:
        shutil.rmtree(d, ignore_errors=True)
