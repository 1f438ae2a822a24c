#!/usr/bin/env bash
# Serving throughput and server CPU: `hfd-rs serve` against nginx (sendfile on) serving the same
# file of the same hub cache over loopback, fetched by the same client: N parallel `curl` range
# requests into /dev/null (one file split into N equal ranges), servers alternating run by run.
# Every byte is checked once per server (sha256 of a whole-file GET); every run checks the byte count.
#
# Usage: benches/serve.sh [--size MIB] [--runs N] [--conns "1 8 32"] [--work DIR]
# Needs nginx and curl (installed with apt-get when missing and run as root).
# Output: a Markdown table on stdout (and WORK/results.md). CPU is the server processes'
# user+system time (/proc/PID/stat; nginx: master and workers) during the run.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=1024
RUNS=3
CONNS="1 8 32"
WORK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE_MIB="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --conns) CONNS="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

need_apt=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release -q --bin hfd-rs
BIN="${CARGO_TARGET_DIR:-target}/release/hfd-rs"

[ -n "$WORK" ] || WORK=$(mktemp -d /tmp/hfd-serve-bench.XXXXXX)
mkdir -p "$WORK/tmp"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

# A hub cache as hfd-rs writes it: blobs/<sha256>, a snapshot symlink, refs/main.
COMMIT=0123456789abcdef0123456789abcdef01234567
REPO="$WORK/cache/models--bench--model"
SIZE=$((SIZE_MIB * 1024 * 1024))
if [ ! -e "$REPO/refs/main" ]; then
  mkdir -p "$REPO/blobs" "$REPO/snapshots/$COMMIT" "$REPO/refs"
  head -c "$SIZE" /dev/urandom > "$WORK/model.bin"
  SHA=$(sha256sum "$WORK/model.bin" | cut -d' ' -f1)
  mv "$WORK/model.bin" "$REPO/blobs/$SHA"
  ln -s "../../blobs/$SHA" "$REPO/snapshots/$COMMIT/model.bin"
  printf %s "$COMMIT" > "$REPO/refs/main"
fi
SHA=$(basename "$(readlink "$REPO/snapshots/$COMMIT/model.bin")")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NGINX_PORT=$(free_port)
SERVE_PORT=$(free_port)

cat > "$WORK/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $WORK/tmp/body;
  proxy_temp_path $WORK/tmp/proxy;
  fastcgi_temp_path $WORK/tmp/fastcgi;
  uwsgi_temp_path $WORK/tmp/uwsgi;
  scgi_temp_path $WORK/tmp/scgi;
  types { }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /bench/model/resolve/main/ { alias $REPO/snapshots/$COMMIT/; }
  }
}
CONF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" &
PIDS+=($!)
NGINX_PID=$!
"$BIN" serve --cache-dir "$WORK/cache" --listen "127.0.0.1:$SERVE_PORT" --quiet > "$WORK/serve.log" 2>&1 &
PIDS+=($!)
SERVE_PID=$!

declare -A URL=(
  [nginx]="http://127.0.0.1:$NGINX_PORT/bench/model/resolve/main/model.bin"
  [hfd-rs-serve]="http://127.0.0.1:$SERVE_PORT/bench/model/resolve/main/model.bin"
)
for name in nginx hfd-rs-serve; do
  for _ in $(seq 100); do
    curl -sf -o /dev/null -r 0-0 "${URL[$name]}" && break
    sleep 0.1
  done
  got=$(curl -sf "${URL[$name]}" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$SHA" ] || { echo "$name served wrong bytes ($got, want $SHA)" >&2; exit 1; }
done

TCK=$(getconf CLK_TCK)
# user+system ticks of a process and its children processes (nginx workers).
ticks() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
server_pid() { if [ "$1" = nginx ]; then echo "$NGINX_PID"; else echo "$SERVE_PID"; fi; }

# One run: N curls, each one range; prints "seconds cpu_seconds".
run() {
  local name=$1 n=$2 url=${URL[$1]} pid part start end i t0 t1 c0 c1 got=0
  pid=$(server_pid "$name")
  part=$(( (SIZE + n - 1) / n ))
  c0=$(ticks "$pid")
  t0=$(date +%s.%N)
  for i in $(seq 0 $((n - 1))); do
    start=$((i * part)); end=$((start + part - 1)); [ $end -lt $SIZE ] || end=$((SIZE - 1))
    curl -s -o /dev/null -w '%{size_download}\n' -r "$start-$end" "$url" > "$WORK/part.$i" &
  done
  wait
  t1=$(date +%s.%N)
  c1=$(ticks "$pid")
  for i in $(seq 0 $((n - 1))); do got=$((got + $(cat "$WORK/part.$i"))); done
  [ "$got" -eq "$SIZE" ] || { echo "$name x$n: got $got bytes of $SIZE" >&2; exit 1; }
  echo "$t0 $t1 $c0 $c1" | awk -v tck="$TCK" '{printf "%.3f %.2f\n", $2 - $1, ($4 - $3) / tck}'
}

{
  echo "| server | connections | run | seconds | MiB/s | server CPU s | CPU s per GiB |"
  echo "|---|---|---|---|---|---|---|"
  for n in $CONNS; do
    for r in $(seq "$RUNS"); do
      for name in nginx hfd-rs-serve; do
        read -r secs cpu < <(run "$name" "$n")
        awk -v s="$secs" -v c="$cpu" -v mib="$SIZE_MIB" -v name="$name" -v n="$n" -v r="$r" \
          'BEGIN { printf "| %s | %d | %d | %.2f | %.0f | %.2f | %.2f |\n", name, n, r, s, mib / s, c, c / (mib / 1024) }'
      done
    done
  done
} | tee "$WORK/results.md"
echo "file: $SIZE_MIB MiB; host: $(nproc) CPUs; $(uname -r); $("$NGINX" -v 2>&1); work dir $WORK"
