"""How each downloader is invoked. Every tool gets the same files from the same server.

hfd-rs and `snapshot_download` speak the hub API themselves. aria2c, curl and hf_transfer do not:
like hfd.sh they get the resolve URLs of every file (the listing is done by the harness, untimed,
which favours them slightly).
"""

import os
import sys
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))


def resolve_urls(endpoint, r):
    prefix = "" if r["type"] == "models" else r["type"] + "/"
    for f in r["files"]:
        yield f, f"{endpoint}/{prefix}{r['repo']}/resolve/main/{urllib.parse.quote(f['path'], safe='/')}"


def hfd_rs(ctx, endpoint, r, out, x=16, j=5, max_conns=None, binary=None, extra=()):
    """`x=None, j=None`: hfd-rs's own defaults (no tuning flags). `binary`: another build;
    `extra`: more flags."""
    cmd = [binary or ctx.hfd_bin, r["repo"], "--endpoint", endpoint, "--local-dir", out, "--quiet"]
    if x is not None:
        cmd += ["-x", str(x)]
    if j is not None:
        cmd += ["-j", str(j)]
    if max_conns is not None:
        cmd += ["--max-connections", str(max_conns)]
    if r["type"] == "datasets":
        cmd.insert(2, "--dataset")
    if r.get("include"):
        cmd += ["--include", r["include"]]
    return cmd + list(extra), {}


def aria2c(ctx, endpoint, r, out, x=16, j=5):
    """As hfd.sh invokes it: `aria2c -x16 -j5 -s16 -k1M -c -i <input file>`."""
    inp = os.path.join(os.path.dirname(out), "aria2c_urls.txt")
    with open(inp, "w") as f:
        for entry, url in resolve_urls(endpoint, r):
            d, name = os.path.split(entry["path"])
            f.write(f"{url}\n  dir={os.path.join(out, d)}\n  out={name}\n")
    cmd = ["aria2c", "--console-log-level=error", "--summary-interval=0", "--file-allocation=none",
           "-x", str(x), "-j", str(j), "-s", str(x), "-k", "1M", "-c", "-i", inp,
           "--ca-certificate", ctx.ca]
    return cmd, {}


def curl(ctx, endpoint, r, out, j=5):
    """One connection per file (HTTP/1.1), `j` files at once: the single-stream baseline."""
    cfg = os.path.join(os.path.dirname(out), "curl.cfg")
    with open(cfg, "w") as f:
        for entry, url in resolve_urls(endpoint, r):
            f.write(f'url = "{url}"\noutput = "{os.path.join(out, entry["path"])}"\n')
    cmd = ["curl", "-sS", "--fail", "-L", "--http1.1", "--create-dirs", "--parallel",
           "--parallel-max", str(j), "--cacert", ctx.ca, "-K", cfg]
    return cmd, {}


def hf_env(ctx, endpoint):
    return {"HF_ENDPOINT": endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_HOME": ctx.hf_home,
            "SSL_CERT_FILE": ctx.ca, "REQUESTS_CA_BUNDLE": ctx.ca}


def snapshot_download(ctx, endpoint, r, out, workers=8):
    code = ("import sys; from huggingface_hub import snapshot_download; "
            "snapshot_download(sys.argv[1], repo_type=sys.argv[2], local_dir=sys.argv[3], "
            "max_workers=int(sys.argv[4]), allow_patterns=sys.argv[5] or None)")
    cmd = [sys.executable, "-c", code, r["repo"], r["type"][:-1], out, str(workers),
           r.get("include", "")]
    return cmd, hf_env(ctx, endpoint)


def hf_transfer(ctx, endpoint, r, out, workers=8):
    """hf_transfer as huggingface_hub < 1.0 drove it: 8 files at once, each
    `download(max_files=100, chunk_size=10 MiB)` (HF_TRANSFER_CONCURRENCY's default)."""
    lst = os.path.join(os.path.dirname(out), "hf_transfer.lst")
    with open(lst, "w") as f:
        for entry, url in resolve_urls(endpoint, r):
            f.write(f"{url}\t{os.path.join(out, entry['path'])}\n")
    cmd = [sys.executable, os.path.join(HERE, "hf_transfer_driver.py"), lst, str(workers)]
    return cmd, hf_env(ctx, endpoint)


def curl_limit(ctx, endpoint, r, out, conns=16):
    """The machine's limit: the same bytes from the same server, `conns` range requests at a time
    straight from the CDN URLs to /dev/null (no disk, no hashing)."""
    cfg = os.path.join(os.path.dirname(out), "limit.cfg")
    cdn = ctx.cdn_for(endpoint)
    with open(cfg, "w") as f:
        for entry, url in resolve_urls(endpoint, r):
            if entry["lfs"]:
                url = f"{cdn}/cdn/{entry['blob']}"
            size = entry["size"]
            step = max(1 << 20, -(-size // conns))
            for start in range(0, size, step):
                end = min(size, start + step) - 1
                # options in a config file are global unless separated by `next`
                f.write(f'next\nsilent\nshow-error\nfail\nlocation\ncacert = "{ctx.ca}"\n'
                        f'url = "{url}"\nrange = "{start}-{end}"\noutput = "/dev/null"\n')
    cmd = ["curl", "--parallel", "--parallel-max", str(conns), "-K", cfg]
    return cmd, {}


TOOLS = {
    "hfd-rs": hfd_rs,
    # more connections than aria2c's cap of 16, when asked
    "hfd-rs -x64": lambda ctx, endpoint, r, out: hfd_rs(ctx, endpoint, r, out, x=64, j=5),
    # HTTP/1.1 only, also for metadata and small files (decision 0016 measured ranges with it)
    "hfd-rs --http1.1": lambda ctx, endpoint, r, out: hfd_rs(ctx, endpoint, r, out,
                                                             extra=["--http1.1"]),
    # many files in flight over the same 16 TCP connections: what HTTP/2
    # multiplexing needs to hide latency (over HTTP/1.1 the extra requests queue)
    "hfd-rs -j128": lambda ctx, endpoint, r, out: hfd_rs(ctx, endpoint, r, out, x=16, j=128,
                                                         max_conns=16),
    # no tuning flags at all: what a user gets (issue #16's 50 ms target)
    "hfd-rs default": lambda ctx, endpoint, r, out: hfd_rs(ctx, endpoint, r, out, x=None, j=None),
    # every -x connection of a file at once, as before the connection ramp (decision 0050)
    "hfd-rs fixed": lambda ctx, endpoint, r, out: hfd_rs(ctx, endpoint, r, out,
                                                         extra=["--fixed-connections"]),
    # the scenario's flags, built from an earlier commit (--baseline)
    "baseline": lambda ctx, endpoint, r, out: hfd_rs(ctx, endpoint, r, out, binary=ctx.baseline_bin),
    # the same, built from an earlier commit (--baseline): before/after in one run
    "baseline default": lambda ctx, endpoint, r, out: hfd_rs(ctx, endpoint, r, out, x=None, j=None,
                                                             binary=ctx.baseline_bin),
    "aria2c": aria2c,
    "curl": curl,
    "snapshot_download": snapshot_download,
    "hf_transfer": hf_transfer,
    "curl-limit": curl_limit,
}
