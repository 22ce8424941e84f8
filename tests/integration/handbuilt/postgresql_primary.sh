# PostgreSQL from Debian (its default cluster <major>/main), opened to the Nuxeo nodes and to the standby:
# a conf.d file and pg_hba.conf lines written by hand, the nuxeo role and database, a replication role.
# Env: PG_MAJOR, NODE_IP, NUXEO_IPS, REPLICA_IP, DB_PASSWORD, REPLICATION_PASSWORD
apt_install postgresql
pg_settings
systemctl restart "postgresql@$PG_MAJOR-main"
wait_until 60 "PostgreSQL" runuser -u postgres -- pg_isready -q -h "$NODE_IP"
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 \
    -v db_password="$DB_PASSWORD" -v repl_password="$REPLICATION_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE nuxeo LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nuxeo') \gexec
ALTER ROLE nuxeo WITH PASSWORD :'db_password';
SELECT 'CREATE DATABASE nuxeo OWNER nuxeo ENCODING ''UTF8''' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'nuxeo') \gexec
SELECT 'CREATE ROLE replicator REPLICATION LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replicator') \gexec
ALTER ROLE replicator WITH PASSWORD :'repl_password';
SQL
echo "postgresql primary up"
