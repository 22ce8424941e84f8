# The streaming standby: Debian's package, its fresh cluster's data replaced by a base backup of the primary
# (pg_basebackup -R writes standby.signal and primary_conninfo), the same hand-written settings as the primary.
# Env: PG_MAJOR, NODE_IP, NUXEO_IPS, REPLICA_IP, PRIMARY_IP, REPLICATION_PASSWORD
apt_install postgresql
pg_settings
DATA=/var/lib/postgresql/$PG_MAJOR/main
if [ ! -f "$DATA/standby.signal" ]; then
    systemctl stop "postgresql@$PG_MAJOR-main"
    rm -rf "$DATA"
    install -d -o postgres -g postgres -m 0700 "$DATA"
    PGPASSWORD=$REPLICATION_PASSWORD runuser -u postgres --preserve-environment -- \
        pg_basebackup -h "$PRIMARY_IP" -U replicator -D "$DATA" -R -X stream -c fast
fi
systemctl start "postgresql@$PG_MAJOR-main"
wait_until 60 "the standby" runuser -u postgres -- pg_isready -q -h "$NODE_IP"
test "$(runuser -u postgres -- psql -tAc 'select pg_is_in_recovery()')" = t
echo "postgresql standby up"
