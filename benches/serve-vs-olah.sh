#!/usr/bin/env bash
# Client download time through `hfd-rs serve` against the same client through Olah (issue #18):
# hfd-rs, huggingface_hub, curl and aria2c each download one model repo through both servers,
# alternating, every result checked against its sha256. See benches/serve-vs-olah.py.
#
# Usage: benches/serve-vs-olah.sh [--size MIB] [--runs N] [--clients "hfd-rs -x8,curl"] [--work DIR]
# Installs what is missing (git, curl, aria2 with apt-get as root; olah 0.5.4 and huggingface_hub
# with pip). Output: a Markdown table on stdout (and WORK/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v curl >/dev/null || need_apt+=(curl)
command -v aria2c >/dev/null || need_apt+=(aria2)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -c 'import olah' 2>/dev/null || python3 -m pip install -q 'olah==0.5.4'
python3 -c 'import huggingface_hub' 2>/dev/null || python3 -m pip install -q huggingface_hub

cargo build --release -q --bin hfd-rs
exec python3 benches/serve-vs-olah.py --hfd-rs "${CARGO_TARGET_DIR:-target}/release/hfd-rs" "$@"
