# A Nuxeo node as Nuxeo's "Installing the Nuxeo Platform on Linux" page goes: a system user, the server zip
# unpacked under /opt, the JRE LTS 2025 needs from Debian, offline marketplace packages with nuxeoctl, then
# /etc/nuxeo/nuxeo.conf (written by nuxeo_configure.sh) and a systemd unit of our own.
# Env: MIRROR, NUXEO_VERSION, NUXEO_PACKAGES (space-separated names)
apt_install openjdk-21-jre-headless
NX_HOME=/opt/nuxeo-server-$NUXEO_VERSION-tomcat
id nuxeo >/dev/null 2>&1 || useradd --system --home-dir /var/lib/nuxeo --shell /usr/sbin/nologin nuxeo
install -d -o nuxeo -g nuxeo /var/lib/nuxeo /var/lib/nuxeo/data /var/lib/nuxeo/tmp /var/log/nuxeo /etc/nuxeo
if [ ! -x "$NX_HOME/bin/nuxeoctl" ]; then
    fetch "$MIRROR/nuxeo/nuxeo-server-$NUXEO_VERSION-tomcat.zip" /tmp/nuxeo.zip
    unzip -q /tmp/nuxeo.zip -d /opt
    rm /tmp/nuxeo.zip
fi
# nuxeoctl writes the package store and nuxeo.templates while installing packages: the shipped nuxeo.conf as a
# start, replaced by our own once the packages' templates exist
[ -f /etc/nuxeo/nuxeo.conf ] || install -o nuxeo -g nuxeo -m 0640 "$NX_HOME/bin/nuxeo.conf" /etc/nuxeo/nuxeo.conf
chown -R nuxeo:nuxeo "$NX_HOME"
zips=""
for p in $NUXEO_PACKAGES; do
    fetch "$MIRROR/nuxeo/packages/$p-$NUXEO_VERSION.zip" "/var/lib/nuxeo/tmp/$p-$NUXEO_VERSION.zip"
    zips="$zips /var/lib/nuxeo/tmp/$p-$NUXEO_VERSION.zip"
done
chown nuxeo:nuxeo /var/lib/nuxeo/tmp/*.zip
# shellcheck disable=SC2086
runuser -u nuxeo -- env NUXEO_CONF=/etc/nuxeo/nuxeo.conf "$NX_HOME/bin/nuxeoctl" --accept=true mp-install $zips >/dev/null
rm -f /var/lib/nuxeo/tmp/*.zip
runuser -u nuxeo -- env NUXEO_CONF=/etc/nuxeo/nuxeo.conf "$NX_HOME/bin/nuxeoctl" mp-list
