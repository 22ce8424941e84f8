# nuxeo.conf by hand, then the systemd unit, then the start. NUXEO_CONF_TEXT is the whole file (built by the
# caller: it differs per node on purpose).
# Env: NUXEO_VERSION, NODE_IP, NUXEO_CONF_TEXT
NX_HOME=/opt/nuxeo-server-$NUXEO_VERSION-tomcat
printf '%s\n' "$NUXEO_CONF_TEXT" > /etc/nuxeo/nuxeo.conf
chown root:nuxeo /etc/nuxeo/nuxeo.conf
chmod 0640 /etc/nuxeo/nuxeo.conf
runuser -u nuxeo -- env NUXEO_CONF=/etc/nuxeo/nuxeo.conf "$NX_HOME/bin/nuxeoctl" --quiet register --offline </dev/null >/dev/null

cat > /etc/systemd/system/nuxeo.service <<UNIT
[Unit]
Description=Nuxeo Platform $NUXEO_VERSION
After=network-online.target
Wants=network-online.target

[Service]
Type=forking
User=nuxeo
Group=nuxeo
Environment=NUXEO_CONF=/etc/nuxeo/nuxeo.conf
RuntimeDirectory=nuxeo
ExecStart=$NX_HOME/bin/nuxeoctl startbg
ExecStop=$NX_HOME/bin/nuxeoctl stop
LimitNOFILE=65536
TimeoutStartSec=300
TimeoutStopSec=90

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now nuxeo.service >/dev/null 2>&1
wait_until 240 "Nuxeo on $NODE_IP:8080" curl -fsS "http://$NODE_IP:8080/nuxeo/runningstatus"
echo "nuxeo up on $NODE_IP"
