# SeaweedFS as its wiki's "weed server" quick start: the release's single `weed` binary under /opt, master + volume
# + filer + S3 gateway in one process, data under /srv/seaweedfs, S3 identities in a JSON file, one bucket.
# Env: MIRROR, SEAWEEDFS_VERSION, NODE_IP, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET
id seaweedfs >/dev/null 2>&1 || useradd --system --home-dir /srv/seaweedfs --shell /usr/sbin/nologin seaweedfs
install -d /opt/seaweedfs /etc/seaweedfs
if [ ! -x /opt/seaweedfs/weed ]; then
    fetch "$MIRROR/seaweedfs/$SEAWEEDFS_VERSION/linux_amd64.tar.gz" /tmp/seaweedfs.tar.gz
    tar -xzf /tmp/seaweedfs.tar.gz -C /opt/seaweedfs
    rm /tmp/seaweedfs.tar.gz
fi
install -d -o seaweedfs -g seaweedfs /srv/seaweedfs
umask 027
cat > /etc/seaweedfs/s3.json <<JSON
{
  "identities": [
    {
      "name": "nuxeo",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
JSON
umask 022
chgrp seaweedfs /etc/seaweedfs/s3.json

cat > /etc/systemd/system/seaweedfs.service <<UNIT
[Unit]
Description=SeaweedFS (master, volume, filer, S3 gateway)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User=seaweedfs
Group=seaweedfs
WorkingDirectory=/srv/seaweedfs
ExecStart=/opt/seaweedfs/weed server -dir=/srv/seaweedfs -ip=$NODE_IP -ip.bind=$NODE_IP \\
  -master.volumeSizeLimitMB=1024 -volume.port=8081 -filer -s3 -s3.port=8333 -s3.config=/etc/seaweedfs/s3.json
# weed does not stop on SIGTERM
TimeoutStopSec=15
LimitNOFILE=65535
Restart=on-failure

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now seaweedfs.service >/dev/null 2>&1
wait_until 90 "the S3 gateway on $NODE_IP:8333" bash -c "exec 3<>/dev/tcp/$NODE_IP/8333"
# the volume server registers with the master a few seconds after the ports open: retry the bucket creation
create_bucket() {
    /opt/seaweedfs/weed shell -master="$NODE_IP:9333" <<<"s3.bucket.create -name $S3_BUCKET" 2>&1 | tee /tmp/bucket.out
    /opt/seaweedfs/weed shell -master="$NODE_IP:9333" <<<"s3.bucket.list" 2>&1 | grep -qw "$S3_BUCKET"
}
wait_until 90 "the bucket $S3_BUCKET" create_bucket
echo "seaweedfs up, bucket $S3_BUCKET"
