"""`nxprovision plan`: what a deploy would build, computed without contacting any host.

Configuration files are rendered from the roles' own templates with the model's values (the same
`nx` fact the playbooks use), so the plan cannot drift from what the roles write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from nxprovision.model.cluster import Cluster, components_of
from nxprovision.model.roledefaults import project_root
from nxprovision.rotation import masked_names

MASK = "********"

# (role, template path under the role's templates/, group whose hosts get it)
RENDERED_FILES: tuple[tuple[str, str, str], ...] = (
    ("nuxeo", "etc/nuxeo/nuxeo.conf.j2", "nuxeo"),
    ("haproxy", "etc/haproxy/haproxy.cfg.j2", "loadbalancers"),
)


@dataclass
class Plan:
    topology: list[dict[str, Any]]
    endpoints: dict[str, Any]
    lb_backends: list[dict[str, Any]]
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # host -> {target path: content}
    plays: list[dict[str, Any]] = field(default_factory=list)


def _lookup_factory(values: dict[str, Any], reveal: bool) -> Any:
    def lookup(plugin: str, name: str, *args: Any, **kwargs: Any) -> Any:
        if plugin not in ("vars", "ansible.builtin.vars"):
            raise jinja2.TemplateError(f"lookup plugin {plugin!r} is not available to plan")
        if name in masked_names() and not reveal:
            return MASK
        if name not in values:
            raise jinja2.UndefinedError(f"'{name}' is undefined")
        return values[name]

    return lookup


def _environment() -> jinja2.Environment:
    # Same whitespace handling as Ansible's template module.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(project_root() / "roles")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


class Renderer:
    """Renders role templates for many hosts with one environment and one copy of the `nx` fact."""

    def __init__(self, cluster: Cluster, reveal: bool = False) -> None:
        self.cluster = cluster
        self.reveal = reveal
        self.env = _environment()
        self.facts = cluster.to_facts()
        self.secrets = [str(cluster.settings.get(n) or "") for n in masked_names()]
        self.secrets = [s for s in self.secrets if len(s) >= 6]

    def render(self, host: str, role: str, template: str) -> str:
        values: dict[str, Any] = dict(self.cluster.settings)
        values.update(self.cluster.hosts[host].vars if host in self.cluster.hosts else {})
        values["nx"] = self.facts
        values["inventory_hostname"] = host
        values["lookup"] = _lookup_factory(values, self.reveal)
        text = self.env.get_template(f"{role}/templates/{template}").render(values)
        if not self.reveal:
            for secret in self.secrets:
                if secret in text:
                    text = text.replace(secret, MASK)
        return text


def render_file(cluster: Cluster, host: str, role: str, template: str, reveal: bool = False) -> str:
    return Renderer(cluster, reveal).render(host, role, template)


def site_plays() -> list[dict[str, Any]]:
    site = project_root() / "playbooks" / "site.yml"
    if not site.exists():
        return []
    plays = yaml.safe_load(site.read_text()) or []
    out = []
    for p in plays:
        if not isinstance(p, dict):
            continue
        if "import_playbook" in p:
            out.append({"name": p.get("name", p["import_playbook"]), "hosts": "", "roles": []})
            continue
        roles = [r["role"] if isinstance(r, dict) else r for r in p.get("roles", [])]
        out.append({"name": p.get("name", ""), "hosts": p.get("hosts", ""), "serial": p.get("serial"),
                    "roles": roles})
    return out


def make_plan(cluster: Cluster, reveal: bool = False) -> Plan:
    d = cluster.derived
    topology = [
        {"host": h.name, "address": h.address, "components": components_of(cluster, h.name)}
        for h in cluster.hosts.values()
    ]
    endpoints = {
        "public_url": cluster.settings.get("nx_public_url"),
        "database": {k: d["db"].get(k) for k in ("flavour", "primary", "replicas", "address", "port", "members",
                                                  "replica_set", "max_connections") if k in d["db"]},
        "search": {"urls": d["search"]["urls"], "index": d["search"]["index_name"],
                   "distribution": d["search"]["distribution"]},
        "kafka": {"mode": d["kafka"]["mode"], "bootstrap_servers": d["kafka"]["bootstrap_servers"],
                  "replication_factor": d["kafka"]["replication_factor"],
                  "min_insync_replicas": d["kafka"]["min_insync_replicas"],
                  "controller_quorum_voters": d["kafka"]["controller_quorum_voters"],
                  "zookeeper_connect": d["kafka"]["zookeeper_connect"]},
        "s3": {"mode": d["s3"]["mode"], "endpoint": d["s3"]["endpoint"], "bucket": d["s3"]["bucket"]},
        "tls": {"enabled": d["tls"]["enabled"], "https": d["tls"]["lb"], "database": d["db"].get("ssl", False),
                "search": d["tls"]["search"], "kafka": d["tls"]["kafka"], "s3": d["tls"]["s3"],
                "truststore": d["tls"]["truststore"]["path"],
                "http_redirect_port": d["lb"].get("redirect_port", 0), "ca": d["tls"]["ca_cert_file"],
                "certificates": [{"host": h, "names": c["dns"] + c["ips"], "services": c["services"],
                                  "source": "operator" if c["source_cert"] else "cluster CA"}
                                 for h, c in d["tls"]["certs"].items()]},
    }
    plan = Plan(topology=topology, endpoints=endpoints, lb_backends=list(d["lb"]["backends"]),
                plays=site_plays())
    renderer = Renderer(cluster, reveal)
    for role, template, group in RENDERED_FILES:
        if not (project_root() / "roles" / role / "templates" / template).exists():
            continue
        target = "/" + template.removesuffix(".j2")
        for host in cluster.view.groups.get(group, []):
            if group == "nuxeo" and cluster.node(host) is None:
                continue
            plan.files.setdefault(host, {})[target] = renderer.render(host, role, template)
    return plan


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {"topology": plan.topology, "endpoints": plan.endpoints, "lb_backends": plan.lb_backends,
            "files": plan.files, "plays": plan.plays}


def parse_properties(text: str) -> dict[str, str]:
    """nuxeo.conf as key -> value (comments and blank lines skipped), for tests and diffs."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#") or "=" not in s:
            continue
        k, v = s.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def write_plan_files(plan: Plan, directory: Path, planned: list[Any] | None = None) -> list[Path]:
    """Rendered files under DIR/<host>/<path>: every role's files when `planned` is given, else the plan's."""
    written = []
    files_by_host: dict[str, dict[str, str]] = plan.files
    if planned is not None:
        files_by_host = {}
        for f in planned:
            if f.content is not None:
                files_by_host.setdefault(f.host, {})[f.path] = f.content
    for host, files in files_by_host.items():
        for target, content in files.items():
            p = directory / host / target.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
            written.append(p)
    return written
