#!/usr/bin/env bash
# Install the system services wardwatch runs against (mosquitto, InfluxDB 1.x) and the
# PostgreSQL server the registry's tests also run on, if missing.
# Debian/Ubuntu: apt-get, as root or via sudo. Elsewhere: say what to install and stop.
# The packages' post-install scripts must not leave daemons running on the default ports
# (our services run as plain processes on random loopback ports): a policy-rc.d that
# denies service starts is installed first if the machine has none.
set -euo pipefail

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_passwd >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v influxd >/dev/null 2>&1 || need+=(influxdb)
command -v influx >/dev/null 2>&1 || need+=(influxdb-client)
# the registry's test suite starts its own PostgreSQL (initdb + pg_ctl as the postgres user);
# Debian keeps the server binaries in /usr/lib/postgresql/<version>/bin, off the PATH
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || command -v pg_ctl >/dev/null 2>&1 \
  || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "wardwatch needs: ${need[*]} (mosquitto 2.x with mosquitto_passwd, InfluxDB 1.x influxd," \
    "a PostgreSQL server for the registry's tests)." >&2
  echo "This is not a Debian/Ubuntu machine: install them with your package manager and retry." >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "installing ${need[*]} needs root (or sudo)." >&2; exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
fi
echo "installing ${need[*]} ..."
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends mosquitto mosquitto-clients influxdb influxdb-client \
  postgresql >/dev/null
# Belt and braces: if an init system started the distro daemons anyway, stop them.
for svc in mosquitto influxdb postgresql; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
