# Shared by scripts/run, scripts/test and scripts/build-site. Every step
# checks before it installs, so the scripts are safe to rerun.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
export CARGO_TARGET_DIR="$TARGET_DIR"
SITE_DIR="$TARGET_DIR/site"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=""
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "Please install: ${missing[*]} (this script knows only Debian's apt-get)" >&2
    return 1
  fi
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    echo "Rust is required: install it from rustup (https://rustup.rs) and rerun." >&2
    exit 1
  fi
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    log "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
}

# The wasm-bindgen command-line tool must match the wasm-bindgen library the
# project is locked to, to the patch version.
ensure_wasm_bindgen() {
  local want have
  want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock")"
  have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
  if [ "$have" != "$want" ]; then
    log "installing wasm-bindgen-cli $want (found: ${have:-none}); this takes a few minutes once"
    # Not --locked: its lock file names a yanked crate.
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

# A C compiler: SQLite (bundled by sqlx) and ring are built from C sources.
ensure_c_compiler() {
  command -v cc >/dev/null || apt_install build-essential
  command -v pkg-config >/dev/null || apt_install pkg-config
}

ensure_node() {
  command -v npm >/dev/null || apt_install nodejs npm
}

ensure_chromium() {
  [ -x /usr/bin/chromium ] || apt_install chromium
}

# Real peers for the node's tests: nginx as a local origin, BIRD 2 and
# GoBGP as the ISP's router, curl as a plain download client, sudo
# because the install command the portal shows runs the script with it.
ensure_node_test_tools() {
  apt_install nginx bird2 gobgpd curl sudo
}

# The tests need a PostgreSQL server they may create databases on. Use
# LASTMILE_TEST_POSTGRES_URL when set; otherwise the local server on
# 127.0.0.1:5432, started (and installed, on a machine without one) here.
ensure_postgres() {
  if [ -n "${LASTMILE_TEST_POSTGRES_URL:-}" ]; then return 0; fi
  local url="postgres://postgres@127.0.0.1:5432/postgres"
  command -v pg_isready >/dev/null || apt_install postgresql
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then apt_install postgresql; fi
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  if ! psql "$url" -Atc 'select 1' >/dev/null 2>&1; then
    # A stock Debian server asks for a password over TCP: give the postgres
    # role one for the tests.
    log "setting a password for the postgres role for the tests"
    as_root su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'lastmile-tests'\"" >/dev/null
    url="postgres://postgres:lastmile-tests@127.0.0.1:5432/postgres"
  fi
  export LASTMILE_TEST_POSTGRES_URL="$url"
}
