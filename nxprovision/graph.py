"""`nxprovision plan --graph FILE.svg`: a picture of the cluster, drawn from the model alone."""

from __future__ import annotations

from html import escape
from itertools import pairwise

from nxprovision.model.cluster import Cluster

BOX_W, BOX_H, GAP, COL_GAP, MARGIN = 190, 34, 10, 80, 30
COLOURS = {"lb": "#dbeafe", "front": "#dcfce7", "worker": "#fef9c3", "db": "#fee2e2", "search": "#ede9fe",
           "kafka": "#ffedd5", "zookeeper": "#ffedd5", "s3": "#e0f2fe", "etcd": "#fae8ff"}


def _tiers(c: Cluster) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Columns left to right: (title, [(kind, host, label)])."""
    d = c.derived
    lb_title = "Load balancers" + (f" (VIP {c.settings.get('nx_vip')})" if c.settings.get("nx_vip") else "")
    lbs = [("lb", h, f"{h} :{d['lb']['frontend_port']}") for h in c.lb_hosts]
    nuxeo = [("front", n.host, f"{n.host} front") for n in c.nuxeo_nodes if n.role == "front"]
    nuxeo += [("worker", n.host, f"{n.host} worker") for n in c.nuxeo_nodes if n.role == "worker"]
    backends: list[tuple[str, str, str]] = []
    db = d["db"]
    for h in c.db_hosts:
        role = "primary" if h == db.get("primary") else "replica"
        backends.append(("db", h, f"{h} {c.database} {role}"))
    backends += [("search", h, f"{h} {d['search']['distribution']}") for h in c.search_hosts]
    backends += [("kafka", b.host, f"{b.host} kafka #{b.node_id}") for b in c.kafka_brokers]
    backends += [("zookeeper", h, f"{h} zookeeper") for h in c.zookeeper_hosts]
    if d["s3"]["mode"] == "external":
        backends.append(("s3", "s3", f"external S3 {d['s3']['bucket']}"))
    backends += [("s3", h, f"{h} S3 {d['s3']['bucket']}") for h in c.s3_hosts]
    return [("Users", [("user", "users", c.settings.get("nx_public_url") or "users")]),
            (lb_title, lbs), ("Nuxeo nodes", nuxeo), ("Shared services", backends)]


def render_svg(c: Cluster) -> str:
    tiers = _tiers(c)
    rows = max(len(items) for _t, items in tiers) or 1
    width = MARGIN * 2 + len(tiers) * BOX_W + (len(tiers) - 1) * COL_GAP + 60
    height = MARGIN * 2 + 30 + rows * (BOX_H + GAP)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 80}" height="{height}" '
           f'viewBox="0 0 {width + 80} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width + 80}" height="{height}" fill="white"/>',
           f'<text x="{MARGIN}" y="18" font-size="14" font-weight="bold">'
           f'{escape(str(c.settings.get("nx_cluster_name")))}: {escape(c.architecture)} architecture</text>']
    centers: list[list[tuple[float, float, str]]] = []
    for i, (title, items) in enumerate(tiers):
        x = MARGIN + i * (BOX_W + COL_GAP + 20)
        out.append(f'<text x="{x}" y="{MARGIN + 16}" font-weight="bold">{escape(title)}</text>')
        col = []
        for j, (kind, _host, label) in enumerate(items):
            y = MARGIN + 30 + j * (BOX_H + GAP)
            fill = COLOURS.get(kind, "#f3f4f6")
            out.append(f'<rect x="{x}" y="{y}" width="{BOX_W + 20}" height="{BOX_H}" rx="6" fill="{fill}" '
                       'stroke="#374151"/>')
            out.append(f'<text x="{x + 8}" y="{y + 21}">{escape(label[:30])}</text>')
            col.append((x, y + BOX_H / 2, kind))
        centers.append(col)
    for a, b in pairwise(centers):
        for ax, ay, akind in a:
            for bx, by, bkind in b:
                if akind == "lb" and bkind == "worker":
                    continue  # workers take no user traffic
                dash = ' stroke-dasharray="4 3"' if bkind in ("db", "search", "kafka", "s3", "zookeeper") else ""
                out.append(f'<line x1="{ax + BOX_W + 20}" y1="{ay}" x2="{bx}" y2="{by}" stroke="#9ca3af"{dash}/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
