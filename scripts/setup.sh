#!/usr/bin/env bash
# Installs everything nxprovision and its tests need on a fresh Debian 12 machine, as root:
# the Debian packages the lab uses, then a virtualenv (.venv) with nxprovision and its test tools.
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(debootstrap systemd-container apt-cacher-ng iproute2 openssh-client
              haproxy postgresql-client postgresql zip unzip python3-venv curl prometheus)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then echo "setup: run as root to install packages" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# apt-cacher-ng's packaged service would hold the port the lab's own instance needs. prometheus is here for
# promtool (the alert rules' tests): its packaged server must not run (nor start at boot) on this machine.
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl disable --now apt-cacher-ng >/dev/null 2>&1 || true
  systemctl disable --now prometheus >/dev/null 2>&1 || true
elif [[ -x /etc/init.d/prometheus ]]; then
  # no systemd (a CI container): the package's SysV script may have started it
  /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  update-rc.d prometheus disable >/dev/null 2>&1 || true
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.nxprovision-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp || lab/pyproject.toml -nt $stamp ]]; then
  echo "setup: installing nxprovision and test tools into .venv (first time takes a few minutes)"
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[test]'
  # the lab and its stand-ins, a distribution of their own (lab/pyproject.toml): it adds `nxprovision lab`
  .venv/bin/pip install -q -e ./lab
  touch "$stamp"
fi
echo "setup: ready (.venv/bin/nxprovision)"
