#!/bin/sh
# Provision wardwatch identities on a broker running deploy/mosquitto/mosquitto.conf, through
# the dynamic-security plugin (mosquitto_ctrl). The same model as wardwatch/devstack.py:
#
#   wardwatch-dynsec.sh roles                      the service roles (once per broker)
#   wardwatch-dynsec.sh service USER ROLE          a service client (ROLE: ingest|alerting|console|
#                                                  registry)
#   wardwatch-dynsec.sh gateway ID SITE UNIT       a gateway: client id bound to ID, may publish
#                                                  only below $WM_TOPIC_ROOT/gw/SITE/UNIT/ID/
#   wardwatch-dynsec.sh revoke-gateway ID          delete it (its live session is disconnected)
#
# Gateways are normally enrolled by the registry (wardwatch registry gateway enroll|rotate|
# revoke, as the registry identity); the gateway commands here are the by-hand equivalent.
#
# The new client's password comes from $WM_NEW_PASSWORD (never an argument of this script;
# mosquitto_ctrl does receive it as an argument for a moment). mosquitto_ctrl's connection
# options (-h, -p, --cafile, -u provisioner, -P …) come from its config file,
# $XDG_CONFIG_HOME/mosquitto_ctrl or ~/.config/mosquitto_ctrl (one "-option value" per line,
# mode 0600). Not `mosquitto_ctrl -o FILE`: 2.0.11 ignores that file (measured).
# The provisioner is the plugin's admin, made with
#   mosquitto_ctrl dynsec init /var/lib/mosquitto/dynamic-security.json provisioner
# before the broker's first start.
set -eu

ROOT="${WM_TOPIC_ROOT:-wm/v1}"
ID_RE='^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'
printf '%s' "$ROOT" | grep -Eq '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,63})*$' \
    || { echo "WM_TOPIC_ROOT '$ROOT' is not a literal topic root" >&2; exit 2; }

ctrl() {
    # mosquitto_ctrl exits 0 even when the plugin answers "Error: …": check the output.
    out=$(mosquitto_ctrl dynsec "$@" 2>&1) || { echo "$out" >&2; exit 1; }
    case "$out" in
        *"Error:"*) echo "dynsec $1: $out" >&2; return 1 ;;
    esac
}

role() {  # role NAME ACLTYPE TOPIC [ACLTYPE TOPIC ...]
    name=$1; shift
    ctrl createRole "$name"
    while [ $# -gt 0 ]; do
        ctrl addRoleACL "$name" "$1" "$2" allow
        shift 2
    done
}

literal_id() {
    printf '%s' "$2" | grep -Eq "$ID_RE" || { echo "$1 '$2' is not a literal id" >&2; exit 2; }
}

password() {
    [ -n "${WM_NEW_PASSWORD:-}" ] || { echo "set WM_NEW_PASSWORD" >&2; exit 2; }
}

case "${1:-}" in
roles)
    role ingest \
        subscribePattern "$ROOT/gw/#" \
        subscribePattern "\$share/+/$ROOT/gw/#" \
        subscribePattern "$ROOT/chart/#" \
        subscribePattern "\$share/+/$ROOT/chart/#" \
        subscribePattern "$ROOT/registry/#" \
        publishClientSend "$ROOT/dlq/#" \
        publishClientSend "$ROOT/tech/#"
    role alerting \
        subscribePattern "$ROOT/gw/#" \
        subscribePattern "$ROOT/cmd/#" \
        subscribePattern "$ROOT/chart/#" \
        subscribePattern "$ROOT/alerting/#" \
        subscribePattern "$ROOT/tech/+/+/ingest" \
        subscribePattern "$ROOT/registry/#" \
        publishClientSend "$ROOT/alerting/#" \
        publishClientSend "$ROOT/dlq/#" \
        publishClientSend "$ROOT/tech/#"
    role console \
        subscribePattern "$ROOT/gw/#" \
        subscribePattern "$ROOT/alerting/#" \
        subscribePattern "$ROOT/registry/#"
    # the registry: the plugin's admin (enrols, rotates, revokes gateways), change events
    role registry \
        publishClientSend '$CONTROL/dynamic-security/#' \
        subscribePattern '$CONTROL/dynamic-security/#' \
        publishClientReceive '$CONTROL/dynamic-security/#' \
        publishClientSend "$ROOT/registry/#" \
        publishClientSend "$ROOT/cmd/+/+/alert" \
        publishClientSend "$ROOT/chart/+/+"
    ;;
service)
    [ $# -eq 3 ] || { echo "usage: $0 service USER ROLE" >&2; exit 2; }
    literal_id user "$2"; password
    ctrl createClient "$2" -p "$WM_NEW_PASSWORD"
    ctrl addClientRole "$2" "$3"
    ;;
gateway)
    [ $# -eq 4 ] || { echo "usage: $0 gateway ID SITE UNIT" >&2; exit 2; }
    literal_id gateway "$2"; literal_id site "$3"; literal_id unit "$4"; password
    role "gateway-$2" publishClientSend "$ROOT/gw/$3/$4/$2/#"
    ctrl createClient "$2" -c "$2" -p "$WM_NEW_PASSWORD"
    ctrl addClientRole "$2" "gateway-$2"
    ;;
revoke-gateway)
    [ $# -eq 2 ] || { echo "usage: $0 revoke-gateway ID" >&2; exit 2; }
    literal_id gateway "$2"
    ctrl deleteClient "$2"
    ctrl deleteRole "gateway-$2"
    ;;
*)
    sed -n '2,22p' "$0" >&2
    exit 2
    ;;
esac
