#!/usr/bin/env bash
# One command for the peer benchmark (issue #8): installs what is missing, builds hfd-rs and the
# fake hub in release mode, then runs benches/peers/run.py, which dumps the fake hub's synthetic
# repos to disk, serves them with nginx (HTTP/1.1, TLS+HTTP/2, per-connection throttling through
# nginx stream proxies), and times hfd-rs, aria2c, curl, huggingface_hub's snapshot_download and
# hf_transfer side by side, alternating, checking every run's bytes.
#
# Usage: benches/peers.sh [--big] [--runs N] [--scenarios a,b] [--tools a,b] [--work DIR] [--out FILE]
#   --big     2×512 MiB model shards and an 8 GiB single file (default: 2×96 MiB, 1 GiB)
# Needs root (apt-get, network namespaces for the capped scenario). Results: DIR/results.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v aria2c >/dev/null || need_apt+=(aria2)
command -v nginx >/dev/null || need_apt+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need_apt+=(libnginx-mod-stream)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v tc >/dev/null || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# A Debian nginx package install may start the system nginx on :80; ours uses its own config.

python3 -c 'import huggingface_hub' 2>/dev/null || python3 -m pip install -q huggingface_hub
# hf_transfer is deprecated upstream; benchmark it while it still installs.
python3 -c 'import hf_transfer' 2>/dev/null || python3 -m pip install -q hf_transfer \
  || echo "hf_transfer did not install; its rows will fail"

cargo build --release -q -p hfd-rs -p hfd-testkit
exec python3 benches/peers/run.py --hfd-rs target/release/hfd-rs \
  --fakehub target/release/hfd-fakehub "$@"
