#!/usr/bin/env bash
# The main job: build a local lab of real systemd hosts for an architecture, deploy Nuxeo into it,
# and end with the load balancer's URL and a health table. Run again: it reuses the running lab
# and the second deploy changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-compact}
NAME=${NXLAB_NAME:-nxlab}
NXP=.venv/bin/nxprovision

if ! $NXP lab status --name "$NAME" >/dev/null 2>&1; then
  $NXP lab up --name "$NAME" --architecture "$ARCH"
else
  echo "lab-demo: lab '$NAME' is already up; reusing it"
fi
INV=$($NXP lab inventory --name "$NAME")
$NXP validate -i "$INV"
PICTURE="$(dirname "$INV")/cluster.svg"
$NXP plan -i "$INV" --graph "$PICTURE" >/dev/null
$NXP deploy -i "$INV"
URL=$(.venv/bin/python -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['nx_public_url'])" \
      "$INV/group_vars/all/main.yml")
echo
echo "Nuxeo is at $URL  (user Administrator; password: ansible-vault view --vault-password-file" \
     "$INV/.vault-pass $INV/group_vars/all/secrets.yml, key nx_secret_nuxeo_admin_password)"
echo "HTTPS with the lab's own CA: curl --cacert $INV/.pki/ca.crt $URL/runningstatus (http:// redirects to it)"
echo "Stand-ins in this lab: Nuxeo server, Kafka, OpenSearch, MongoDB (see README, 'The lab')."
echo "A picture of the cluster: $PICTURE"
echo
$NXP status -i "$INV"
