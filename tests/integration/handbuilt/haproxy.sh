# HAProxy from Debian, /etc/haproxy/haproxy.cfg rewritten by hand: plain http on this host's address, /nuxeo to
# both Nuxeo nodes, sticky by an inserted cookie, health check on Nuxeo's runningstatus.
# Env: NODE_IP, NUXEO_IPS (space-separated, in node order)
apt_install haproxy
servers=""
i=1
for ip in $NUXEO_IPS; do
    servers="$servers    server nuxeo$i $ip:8080 check cookie nuxeo$i
"
    i=$((i + 1))
done
cat > /etc/haproxy/haproxy.cfg <<CFG
global
    log /dev/log local0
    log /dev/log local1 notice
    chroot /var/lib/haproxy
    stats socket /run/haproxy/admin.sock mode 660 level admin
    stats timeout 30s
    user haproxy
    group haproxy
    daemon

defaults
    log global
    mode http
    option httplog
    option dontlognull
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 120s

frontend http_in
    bind $NODE_IP:80
    acl is_nuxeo path_beg /nuxeo
    http-request redirect location /nuxeo/ if { path / }
    use_backend nuxeo if is_nuxeo

backend nuxeo
    balance roundrobin
    cookie SERVERID insert indirect nocache
    option httpchk GET /nuxeo/runningstatus
    http-check expect status 200
    default-server inter 3s fall 3 rise 2
$servers
CFG
haproxy -c -f /etc/haproxy/haproxy.cfg >/dev/null
systemctl enable haproxy >/dev/null 2>&1
systemctl restart haproxy
echo "haproxy up"
