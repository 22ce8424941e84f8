"""The compatibility page (docs/compatibility.md), generated from the matrix data (model/compatibility.yml).

`python -m nxprovision.compatdocs` rewrites it; a unit test fails when it is out of date.
"""

from __future__ import annotations

import sys

from nxprovision.model.compat import PRODUCT_LABELS, Entry, Lts, load
from nxprovision.model.roledefaults import project_root

_JAVA_FROM = {
    "archive": "OpenJDK from the release's own archive",
    "mirror": "JDK archive on the operator's mirror",
    "operator": "a JDK package named by common_java_package",
}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _link(text: str, url: str) -> str:
    return f"[{_cell(text)}]({url})"


def _entry(e: Entry) -> str:
    label = f"{e.product} {e.describe()}" if e.product else e.describe()
    return _link(label, e.source)


def _search(m: Lts) -> str:
    parts = []
    for sc in m.search_clients:
        name = f"`{sc.package}`: " if sc.package else "built in: "
        parts.append(_link(name + sc.describe(), sc.source))
    return "<br>".join(parts)


def _audit(m: Lts) -> str:
    if not m.packaged_search:
        return _link(m.audit.note, m.audit.source)
    packages = [f"`{p}`" for p, _n in m.audit_backends().values()]
    needed = "; required in a cluster" if m.audit.required_in_cluster else ""
    return _link(f"a package: {', '.join(packages)}{needed}", m.audit.source)


def _kafka(m: Lts) -> str:
    k = m.kafka
    kraft = (f"KRaft from {m.lts}.{k.kraft_from_hotfix} (Kafka {k.kraft_min_kafka}+)"
             if k.kraft_from_hotfix is not None else "ZooKeeper only")
    return _link(f"{k.versions.describe()}; tested with {k.tested}; {kraft}", k.source)


def _os(m: Lts) -> str:
    return "<br>".join(_link(f"{o.release} ({_JAVA_FROM[o.java]})", o.source) for o in m.os)


def render() -> str:
    matrix = load()
    ltss = list(matrix.lts.values())
    out = [
        "# Compatibility matrix",
        "",
        "Generated from `nxprovision/model/compatibility.yml` by `python -m nxprovision.compatdocs`. Every cell",
        "links the page it comes from: Nuxeo's compatibility matrix and upgrade notes for each LTS, Debian's",
        "package index for the OS releases. `validate` applies the same data: a version outside it is an error,",
        "which `nx_compat_overrides: {<component>: '<reason>'}` turns into a warning when you run outside the",
        "matrix on purpose (the component is the rule id's last part: `postgresql`, `mongodb`, `opensearch`,",
        "`elasticsearch`, `search_client`, `audit_backend`, `kafka`, `os`; `postgresql_package`: a PostgreSQL",
        "major the database hosts' Debian release does not ship).",
        "",
        "Version lists: `13` means 13.x; `greater than 11` means any version above 11.",
        "",
        "| | " + " | ".join(f"LTS {m.lts}" for m in ltss) + " |",
        "|---|" + "---|" * len(ltss),
    ]
    rows = [
        ("nxprovision deploys it", lambda m: "yes" if m.deployable else "not yet (validate checks it)"),
        ("Java", lambda m: _entry(m.java)),
        ("Application server", lambda m: _entry(m.app_server)),
        ("PostgreSQL", lambda m: _entry(m.postgresql)),
        ("MongoDB", lambda m: _entry(m.mongodb)),
        ("Search client and cluster", _search),
        ("Audit store", _audit),
        ("Kafka", _kafka),
        ("OS releases (`nx_os_release`)", _os),
    ]
    for title, cell in rows:
        out.append(f"| {title} | " + " | ".join(cell(m) for m in ltss) + " |")
    out += ["", "## Notes", ""]
    for m in ltss:
        notes = [sc.note for sc in m.search_clients if sc.note]
        notes += [m.audit.note] if m.packaged_search and m.audit.note else []
        notes += [f"{o.release}: {o.note}" for o in m.os if o.note]
        out += [f"- LTS {m.lts}: {_cell(n)}" for n in notes]
    out += ["", "## LTS 2025 search and audit packages", "",
            "From LTS 2025 the search client is a package: the nuxeo role's `nuxeo_search_client` names it by its",
            "client key (`auto`: the first below that supports `search_distribution` / `search_version`), and",
            "`nuxeo_audit_backend` the audit store (`auto`: the search client's audit package; `memory`: none,",
            "refused for more than one Nuxeo node).", "",
            "| client key | search package | audit package | " + " | ".join(PRODUCT_LABELS.values()) + " |",
            "|---|---|---|" + "---|" * len(PRODUCT_LABELS)]
    for m in ltss:
        for sc in m.search_clients:
            if sc.package:
                out.append(f"| `{sc.key}` | {_link(sc.package, sc.source)} | `{sc.audit_package}` | "
                           + " | ".join(sc.products[p].describe() for p in PRODUCT_LABELS) + " |")
    out += ["", "## OS releases", "", "| release | OpenJDK in its archive | PostgreSQL in its archive |",
            "|---|---|---|"]
    for r in matrix.os_releases.values():
        out.append(f"| `{r.name}`: {r.label} | {_link(', '.join(r.openjdk), r.source)} | "
                   f"{_link(', '.join(r.postgresql), r.postgresql_source)} |")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    target = project_root() / "docs" / "compatibility.md"
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
