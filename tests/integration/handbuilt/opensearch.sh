# One node of the 3-node search cluster, from the tarball as OpenSearch's "install from tar" page describes it:
# unpack under /opt, its own user, config/opensearch.yml edited, a systemd unit of our own.
# Env: MIRROR, SEARCH_VERSION, NODE_NAME, NODE_IP, SEARCH_IPS (space-separated), SEARCH_NAMES (same order)
OS_HOME=/opt/opensearch-$SEARCH_VERSION
id opensearch >/dev/null 2>&1 || useradd --system --home-dir /var/lib/opensearch --shell /usr/sbin/nologin opensearch
if [ ! -x "$OS_HOME/bin/opensearch" ]; then
    fetch "$MIRROR/opensearch/$SEARCH_VERSION/opensearch-$SEARCH_VERSION-linux-x64.tar.gz" /tmp/opensearch.tar.gz
    tar -xzf /tmp/opensearch.tar.gz -C /opt
    rm /tmp/opensearch.tar.gz
fi
ln -sfn "$OS_HOME" /opt/opensearch
install -d -o opensearch -g opensearch /var/lib/opensearch /var/log/opensearch

seeds=""; managers=""
for ip in $SEARCH_IPS; do seeds="$seeds\"$ip:9300\", "; done
for n in $SEARCH_NAMES; do managers="$managers\"$n\", "; done
cat > "$OS_HOME/config/opensearch.yml" <<YML
cluster.name: nuxeo-search
node.name: $NODE_NAME
path.data: /var/lib/opensearch
path.logs: /var/log/opensearch
network.host: $NODE_IP
http.port: 9200
transport.port: 9300
discovery.seed_hosts: [${seeds%, }]
cluster.initial_cluster_manager_nodes: [${managers%, }]
# plain http inside the private network: no demo certificates
plugins.security.disabled: true
YML
cat > "$OS_HOME/config/jvm.options.d/heap.options" <<'OPT'
-Xms512m
-Xmx512m
OPT
chown -R opensearch:opensearch "$OS_HOME"

cat > /etc/systemd/system/opensearch.service <<UNIT
[Unit]
Description=OpenSearch
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=opensearch
Group=opensearch
Environment=OPENSEARCH_HOME=/opt/opensearch
Environment=OPENSEARCH_PATH_CONF=/opt/opensearch/config
WorkingDirectory=/opt/opensearch
ExecStart=/opt/opensearch/bin/opensearch
LimitNOFILE=65535
TimeoutStopSec=60
SuccessExitStatus=143
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now opensearch.service >/dev/null 2>&1
wait_until 120 "OpenSearch on $NODE_IP:9200" curl -fsS "http://$NODE_IP:9200/"
echo "opensearch $NODE_NAME up"
