# Prepended to both database steps: the settings each database host gets by hand.
pg_settings() {
    local conf=/etc/postgresql/$PG_MAJOR/main
    cat > "$conf/conf.d/nuxeo.conf" <<PGCONF
# Nuxeo cluster: listen on the private address, settings from Nuxeo's PostgreSQL page
listen_addresses = 'localhost,$NODE_IP'
max_connections = 200
max_prepared_transactions = 100
shared_buffers = 256MB
wal_level = replica
max_wal_senders = 5
hot_standby = on
PGCONF
    if ! grep -q '^# nuxeo cluster' "$conf/pg_hba.conf"; then
        {
            echo "# nuxeo cluster"
            for ip in $NUXEO_IPS; do
                echo "host    nuxeo           nuxeo           $ip/32        scram-sha-256"
            done
            echo "host    replication     replicator      $REPLICA_IP/32        scram-sha-256"
        } >> "$conf/pg_hba.conf"
    fi
}
