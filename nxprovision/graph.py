"""`nxprovision plan --graph FILE.svg`: a picture of the cluster, drawn from the model alone."""

from __future__ import annotations

from html import escape

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


Box = tuple[str, str]  # (kind, host): one host may hold several parts (the single architecture)


def _links(c: Cluster) -> set[tuple[Box, Box]]:
    """Who talks to whom, as the rendered configs wire it (not every column to every column)."""
    d = c.derived
    fronts: list[Box] = [("front", n.host) for n in c.nuxeo_nodes if n.role == "front"]
    nodes: list[Box] = fronts + [("worker", n.host) for n in c.nuxeo_nodes if n.role == "worker"]
    db = d["db"]
    if c.database == "postgresql" and db.get("manager") != "patroni":
        # plain streaming: Nuxeo connects to the primary only; the replicas follow it
        databases = [db["primary"]] if db.get("primary") else []
    else:
        # Patroni (multi-host JDBC URL, the leader answers) and a MongoDB replica set: every member
        databases = list(c.db_hosts)
    services: list[Box] = [("db", h) for h in databases] + [("search", h) for h in c.search_hosts]
    services += [("kafka", b.host) for b in c.kafka_brokers]
    services += [("s3", "s3")] if d["s3"]["mode"] == "external" else [("s3", h) for h in c.s3_hosts]
    lbs: list[Box] = [("lb", h) for h in c.lb_hosts]
    users: Box = ("user", "users")
    links = {(users, lb) for lb in lbs} or {(users, f) for f in fronts}
    links |= {(lb, f) for lb in lbs for f in fronts}
    links |= {(n, svc) for n in nodes for svc in services}
    return links


def _width(items: list[tuple[str, str, str]]) -> int:
    # about 7 px per character at 12 px sans-serif: labels are shown whole, never cut
    return max([BOX_W] + [len(label) * 7 + 16 for _k, _h, label in items])


def render_svg(c: Cluster) -> str:
    tiers = _tiers(c)
    rows = max(len(items) for _t, items in tiers) or 1
    widths = [_width(items) for _t, items in tiers]
    width = MARGIN * 2 + sum(widths) + (len(tiers) - 1) * COL_GAP
    height = MARGIN * 2 + 30 + rows * (BOX_H + GAP)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{MARGIN}" y="18" font-size="14" font-weight="bold">'
           f'{escape(str(c.settings.get("nx_cluster_name")))}: {escape(c.architecture)} architecture</text>']
    boxes: dict[Box, tuple[float, float, float]] = {}  # (kind, host) -> (left, right, middle y)
    x = MARGIN
    for (title, items), w in zip(tiers, widths, strict=True):
        out.append(f'<text x="{x}" y="{MARGIN + 16}" font-weight="bold">{escape(title)}</text>')
        for j, (kind, host, label) in enumerate(items):
            y = MARGIN + 30 + j * (BOX_H + GAP)
            fill = COLOURS.get(kind, "#f3f4f6")
            out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{BOX_H}" rx="6" fill="{fill}" stroke="#374151"/>')
            out.append(f'<text x="{x + 8}" y="{y + 21}">{escape(label)}</text>')
            boxes[(kind, host)] = (x, x + w, y + BOX_H / 2)
        x += w + COL_GAP
    for a, b in sorted(_links(c)):
        if a not in boxes or b not in boxes:
            continue
        _al, ar, ay = boxes[a]
        bl, _br, by = boxes[b]
        dash = ' stroke-dasharray="4 3"' if b[0] in ("db", "search", "kafka", "s3", "zookeeper") else ""
        out.append(f'<line x1="{ar}" y1="{ay}" x2="{bl}" y2="{by}" stroke="#9ca3af"{dash} '
                   f'data-from="{escape(a[1])}" data-to="{escape(b[1])}"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
