#!/bin/sh
# Installs the Lastmile node agent on this Linux server and registers it
# with the portal. The portal shows the one command that runs this script;
# the registration key comes in the LASTMILE_REGISTRATION_KEY environment
# variable and is never printed or written to a log.
#
# Safe to rerun: the agent binary and the systemd unit are replaced, and
# without a key an existing registration is kept.
#
# Options:
#   --portal URL     the portal (required)
#   --pin PIN        trust a self-signed portal by its key (sha256//BASE64)
#   --ca-file PATH   trust the portal if this CA signed its certificate
#   --root DIR       install under DIR instead of / (tests, images); the
#                    service is then not started
#   --no-start       install and register, but do not start the service
set -eu

PORTAL=""
PIN=""
CA_FILE=""
ROOT=""
START=yes

die() {
    echo "lastmile install: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --portal) [ $# -ge 2 ] || die "--portal needs a URL"; PORTAL="$2"; shift 2 ;;
        --pin) [ $# -ge 2 ] || die "--pin needs a value"; PIN="$2"; shift 2 ;;
        --ca-file) [ $# -ge 2 ] || die "--ca-file needs a path"; CA_FILE="$2"; shift 2 ;;
        --root) [ $# -ge 2 ] || die "--root needs a folder"; ROOT="$2"; shift 2 ;;
        --no-start) START=no; shift ;;
        *) die "unknown option $1 (see the comment at the top of this script)" ;;
    esac
done
[ -n "$PORTAL" ] || die "--portal URL is required"
case "$PORTAL" in
    https://*|http://*) ;;
    *) die "--portal must start with https://" ;;
esac
PORTAL="${PORTAL%/}"
[ "$(uname -s)" = Linux ] || die "the agent runs on Linux"
[ "$(uname -m)" = x86_64 ] || die "the portal serves the agent for x86_64; this is $(uname -m)"
command -v curl >/dev/null 2>&1 || die "curl is required"
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (the command from the portal uses sudo)"
fi

BIN_DIR="$ROOT/usr/local/bin"
STATE_DIR="$ROOT/var/lib/lastmile"
CONF_DIR="$ROOT/etc/lastmile"
UNIT_DIR="$ROOT/etc/systemd/system"
mkdir -p "$BIN_DIR" "$STATE_DIR" "$CONF_DIR" "$UNIT_DIR"
chmod 0700 "$STATE_DIR"

set -- -fsS --retry 3 --proto =https,http
if [ -n "$PIN" ]; then
    # The certificate is self-signed: curl checks the pinned key instead.
    set -- "$@" --insecure --pinnedpubkey "$PIN"
elif [ -n "$CA_FILE" ]; then
    set -- "$@" --cacert "$CA_FILE"
fi

echo "Downloading the agent from $PORTAL"
TMP="$(mktemp "$BIN_DIR/.lastmile-agent.XXXXXX")"
trap 'rm -f "$TMP"' EXIT
curl "$@" -o "$TMP" "$PORTAL/downloads/lastmile-agent-x86_64-linux" || die "downloading the agent failed"
chmod 0755 "$TMP"
"$TMP" --version >/dev/null 2>&1 || die "the downloaded agent does not run on this server"
# A rename replaces the binary even while the old one runs.
mv -f "$TMP" "$BIN_DIR/lastmile-agent"
trap - EXIT

set --
[ -n "$PIN" ] && set -- --pin "$PIN"
[ -n "$CA_FILE" ] && set -- --ca-file "$CA_FILE"
if [ -n "${LASTMILE_REGISTRATION_KEY:-}" ]; then
    "$BIN_DIR/lastmile-agent" register --portal "$PORTAL" --state-dir "$STATE_DIR" "$@" \
        || die "registration failed (see above); issue a new key in the portal if this one was used or expired"
elif [ -f "$STATE_DIR/agent.json" ]; then
    echo "No registration key given: keeping this server's existing registration."
else
    die "set LASTMILE_REGISTRATION_KEY to the key the portal issued"
fi

if [ ! -f "$CONF_DIR/agent.env" ]; then
    cat > "$CONF_DIR/agent.env" <<'ENV'
# Settings of the Lastmile agent service (see `lastmile-agent run --help`).
# LASTMILE_LISTEN=0.0.0.0:80
# LASTMILE_ADMIN_LISTEN=127.0.0.1:9180
# LASTMILE_BGP_LISTEN=0.0.0.0:179
# LASTMILE_LOG=info
ENV
fi

cat > "$UNIT_DIR/lastmile-agent.service" <<'UNIT'
[Unit]
Description=Lastmile cache node agent
Wants=network-online.target
After=network-online.target

[Service]
EnvironmentFile=-/etc/lastmile/agent.env
ExecStart=/usr/local/bin/lastmile-agent run --state-dir /var/lib/lastmile
Restart=always
RestartSec=2
# Ports 80 and 179 and the operator's cache folders need root; nothing it
# starts may gain more.
NoNewPrivileges=yes
PrivateTmp=yes
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
UNIT

if [ -n "$ROOT" ] || [ "$START" = no ] || [ ! -d /run/systemd/system ]; then
    echo "Installed. Start the agent with: $BIN_DIR/lastmile-agent run --state-dir $STATE_DIR"
    exit 0
fi
systemctl daemon-reload
systemctl enable lastmile-agent.service >/dev/null
systemctl restart lastmile-agent.service
echo "Installed and started: systemctl status lastmile-agent"
