# Shared set-up for scripts/demo and scripts/test: make sure redis-server exists (installing it
# through the system package manager on Debian/Ubuntu), and start/stop a private one.
# shellcheck shell=bash

ensure_redis_server() {
  # redis-server (and redis-cli) for every test; openssl for the TLS tests' certificates.
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return 0
  if command -v apt-get >/dev/null 2>&1; then
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
      if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "Missing: ${missing[*]}. Install with: apt-get install -y ${missing[*]} (as root)" >&2
        exit 1
      fi
    fi
    echo ">> ${missing[*]} not installed: installing with apt-get install -y ${missing[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    # The redis-server package may start a system service on 6379; our scripts and tests
    # never use it.
    command -v redis-server >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1 && return 0
  fi
  cat >&2 <<MSG
Needed and could not be installed automatically: ${missing[*]}
(redis-server is Redis >= 6). Install, then run this command again:
  Debian/Ubuntu:  sudo apt-get install -y redis-server openssl
  Fedora:         sudo dnf install -y redis openssl
  macOS:          brew install redis openssl
MSG
  exit 1
}

# Starts a private redis-server on a free port in a temporary directory; sets REDIS_PRIVATE_URL.
start_private_redis() {
  REDIS_TMP=$(mktemp -d)
  local port
  for _ in $(seq 1 20); do
    port=$(( 20000 + RANDOM % 30000 ))
    if redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$REDIS_TMP" --pidfile "$REDIS_TMP/redis.pid" --logfile "$REDIS_TMP/redis.log" \
        --daemonize yes >/dev/null 2>&1; then
      for _ in $(seq 1 100); do
        if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
          REDIS_PRIVATE_URL="redis://127.0.0.1:$port"
          export REDIS_PRIVATE_URL
          return 0
        fi
        sleep 0.05
      done
      stop_private_redis
      REDIS_TMP=$(mktemp -d)
    fi
  done
  echo "could not start a private redis-server" >&2
  exit 1
}

stop_private_redis() {
  if [ -n "${REDIS_TMP:-}" ] && [ -f "$REDIS_TMP/redis.pid" ]; then
    kill "$(cat "$REDIS_TMP/redis.pid")" 2>/dev/null || true
  fi
  [ -n "${REDIS_TMP:-}" ] && rm -rf "$REDIS_TMP"
  REDIS_TMP=""
}
