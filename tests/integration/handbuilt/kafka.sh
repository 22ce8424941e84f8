# The one Kafka broker, KRaft combined mode, as Kafka's quickstart does it: unpack, format the log dir with a fresh
# cluster id, start with config/kraft/server.properties (edited for this host's address and a durable log dir).
# Env: MIRROR, KAFKA_VERSION, NODE_IP
apt_install openjdk-21-jre-headless
K_HOME=/opt/kafka_2.13-$KAFKA_VERSION
id kafka >/dev/null 2>&1 || useradd --system --home-dir /var/lib/kafka --shell /usr/sbin/nologin kafka
if [ ! -x "$K_HOME/bin/kafka-server-start.sh" ]; then
    fetch "$MIRROR/kafka/$KAFKA_VERSION/kafka_2.13-$KAFKA_VERSION.tgz" /tmp/kafka.tgz
    tar -xzf /tmp/kafka.tgz -C /opt
    rm /tmp/kafka.tgz
fi
ln -sfn "$K_HOME" /opt/kafka
install -d -o kafka -g kafka /var/lib/kafka /var/log/kafka
CONF=$K_HOME/config/kraft/server.properties
sed -i \
    -e "s|^controller.quorum.voters=.*|controller.quorum.voters=1@$NODE_IP:9093|" \
    -e "s|^listeners=.*|listeners=PLAINTEXT://$NODE_IP:9092,CONTROLLER://$NODE_IP:9093|" \
    -e "s|^advertised.listeners=.*|advertised.listeners=PLAINTEXT://$NODE_IP:9092|" \
    -e "s|^log.dirs=.*|log.dirs=/var/lib/kafka/kraft-combined-logs|" \
    "$CONF"
chown -R kafka:kafka "$K_HOME"
if [ ! -f /var/lib/kafka/kraft-combined-logs/meta.properties ]; then
    cluster_id=$(runuser -u kafka -- "$K_HOME/bin/kafka-storage.sh" random-uuid)
    runuser -u kafka -- "$K_HOME/bin/kafka-storage.sh" format -t "$cluster_id" -c "$CONF" >/dev/null
fi

cat > /etc/systemd/system/kafka.service <<UNIT
[Unit]
Description=Apache Kafka broker (KRaft)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=kafka
Group=kafka
Environment="KAFKA_HEAP_OPTS=-Xms512m -Xmx512m"
Environment=LOG_DIR=/var/log/kafka
ExecStart=/opt/kafka/bin/kafka-server-start.sh /opt/kafka/config/kraft/server.properties
ExecStop=/opt/kafka/bin/kafka-server-stop.sh
LimitNOFILE=100000
SuccessExitStatus=143
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now kafka.service >/dev/null 2>&1
wait_until 90 "Kafka on $NODE_IP:9092" bash -c "exec 3<>/dev/tcp/$NODE_IP/9092"
echo "kafka up"
