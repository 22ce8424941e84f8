"""Co-location advice (nuxeo-facts.md 1.2): warnings, never errors."""

from __future__ import annotations

from collections.abc import Iterator

from nxprovision.model.cluster import Cluster
from nxprovision.rules._where import of_group
from nxprovision.rules.finding import Finding, warning


def check(c: Cluster) -> Iterator[Finding]:
    if c.architecture not in ("compact", "distributed"):
        return
    nuxeo_hosts = {n.host for n in c.nuxeo_nodes}
    for group, why in (("opensearch", "search takes half the RAM for its heap and must not share memory with "
                                      "another JVM"),
                       ("kafka", "Kafka belongs on dedicated machines for isolation")):
        for h in sorted(set(c.view.groups.get(group, [])) & nuxeo_hosts):
            yield warning(f"placement.{group}_on_nuxeo", f"host {h}",
                          f"runs both Nuxeo and {group}: {why}",
                          f"move {group} off {h} to a dedicated host", of_group(c, group))
    for h in sorted(set(c.lb_hosts) & nuxeo_hosts):
        yield warning("placement.lb_on_nuxeo", f"host {h}",
                      "runs both a load balancer and Nuxeo: stopping that node would also stop the LB",
                      f"move the load balancer off {h}", of_group(c, "loadbalancers"))
