# Sourced first by every step: strict mode and the helpers an operator would type by hand.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt_install() {
    # the lab hosts reach the Debian archive through the lab's apt proxy (already in /etc/apt/apt.conf.d)
    if [ ! -f /var/lib/apt/periodic/handbuilt-updated ]; then
        apt-get update -q >/dev/null
        mkdir -p /var/lib/apt/periodic && touch /var/lib/apt/periodic/handbuilt-updated
    fi
    apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

fetch() {  # fetch URL DEST
    curl -fsSL --retry 3 -o "$2" "$1"
}

wait_until() {  # wait_until SECONDS WHAT COMMAND...
    local deadline=$((SECONDS + $1)) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "timed out waiting for $what" >&2
            return 1
        fi
        sleep 1
    done
}
