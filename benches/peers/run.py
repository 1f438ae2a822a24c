"""Side-by-side benchmark of hfd-rs against aria2c, curl, huggingface_hub and hf_transfer.

Started by `benches/peers.sh` (which installs the peers and builds the binaries). See
docs/benchmarks.md for what each scenario measures and how to read the table.
"""

import argparse
import fnmatch
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep benches/peers/ free of __pycache__

import fixture  # noqa: E402
import nginx  # noqa: E402
import tools  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
NS_SRV, NS_CLI = "hfdb-srv", "hfdb-cli"
VETH_SRV, VETH_CLI = "hfdb-vs", "hfdb-vc"
SRV_IP, CLI_IP = "10.200.0.1", "10.200.0.2"

# name: (repo key, server, listener, tools, note); server "lo" = loopback nginx, "ns" = netns
ALL_TOOLS = ["hfd-rs", "aria2c", "curl", "snapshot_download", "hf_transfer"]
SCENARIOS = {
    "throttled-5M": ("models/fake/model", "lo", "t5",
                     ALL_TOOLS + ["hfd-rs -x64", "hfd-rs fixed", "baseline"],
                     "5 MB/s per TCP connection (nginx stream proxy_download_rate), HTTP/1.1"),
    "uneven-latency": ("models/fake/model", "lo", "duneven",
                       ["hfd-rs", "aria2c", "hfd-rs fixed", "baseline"],
                       "one connection in four at 0.5 MB/s, the rest at 10 MB/s, 50 ms away "
                       "(benches/peers/delayproxy.py in front of the throttle), HTTP/1.1"),
    "throttled-latency": ("models/fake/model", "lo", "dt5",
                          ["hfd-rs", "aria2c", "hfd-rs fixed", "baseline"],
                          "5 MB/s per TCP connection 50 ms away (benches/peers/delayproxy.py in front of "
                          "the throttle), HTTP/1.1"),
    "capped-20M": ("models/fake/model", "ns:cap", "t20", ALL_TOOLS + ["hfd-rs fixed", "baseline"],
                   "20 MB/s per connection, 400 Mbit/s total (tbf on the server veth), HTTP/1.1"),
    "uneven": ("models/fake/model", "lo", "uneven",
               ["hfd-rs", "aria2c", "hf_transfer", "hfd-rs -x64", "hfd-rs fixed", "baseline"],
               "one connection in four at 0.5 MB/s, the rest at 10 MB/s, HTTP/1.1"),
    "loopback-h1": ("models/fake/model", "lo", "h1", ALL_TOOLS + ["curl-limit", "baseline"],
                    "unthrottled loopback, HTTP/1.1"),
    "loopback-h2tls": ("models/fake/model", "lo", "tls",
                       ALL_TOOLS + ["curl-limit", "hfd-rs --http1.1", "baseline"],
                       "unthrottled loopback, TLS (ALPN h2 offered)"),
    "small-files": ("datasets/fake/dataset", "lo", "h1", ALL_TOOLS + ["hfd-rs default", "baseline default"],
                    "many small files, unthrottled loopback, HTTP/1.1, -j16 for hfd-rs/aria2c"),
    "small-files-h2tls": ("datasets/fake/dataset", "lo", "tls",
                          ["hfd-rs", "hfd-rs default", "baseline default", "aria2c", "curl",
                           "snapshot_download"],
                          "many small files, unthrottled loopback, TLS (ALPN h2 offered), -j16 for hfd-rs/aria2c"),
    "latency-h1": ("datasets/fake/dataset:data/test/*", "lo", "dh1",
                   ["hfd-rs", "hfd-rs default", "baseline default", "aria2c", "hfd-rs -j128"],
                   "50 ms RTT (25 ms each way through benches/peers/delayproxy.py), HTTP/1.1"),
    "latency-h2": ("datasets/fake/dataset:data/test/*", "lo", "dtls",
                   ["hfd-rs", "hfd-rs default", "baseline default", "aria2c", "hfd-rs -j128"],
                   "50 ms RTT (25 ms each way through benches/peers/delayproxy.py), TLS, ALPN h2"),
    "large-file": ("models/fake/large", "lo", "h1",
                   ["hfd-rs", "aria2c", "curl", "hf_transfer", "baseline"],
                   "one large LFS file, unthrottled loopback, HTTP/1.1 (memory)"),
}
SMALL_FILE_FLAGS = {"hfd-rs": {"x": 16, "j": 16}, "aria2c": {"x": 16, "j": 16}, "curl": {"j": 16}}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, **kw)


class Ctx:
    def __init__(self, args):
        self.work = os.path.abspath(args.work)
        self.hfd_bin = os.path.abspath(args.hfd_rs)
        self.fakehub_bin = os.path.abspath(args.fakehub)
        self.baseline_bin = os.path.abspath(args.baseline) if args.baseline else None
        self.ca = os.path.join(self.work, "tls", "ca.pem")
        self.hf_home = os.path.join(self.work, "hf_home")
        self.cdn = {}
        self.cdn_port = None
        self.trash = os.path.join(self.work, "trash")

    def cdn_for(self, endpoint):
        return self.cdn[endpoint]


def make_certs(work):
    d = os.path.join(work, "tls")
    if os.path.exists(os.path.join(d, "server.pem")):
        return d
    os.makedirs(d, exist_ok=True)
    q = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem", "-days", "30", "-subj", "/CN=hfd-bench CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"], **q)
    sh(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr", "-subj", "/CN=127.0.0.1"], **q)
    with open(f"{d}/ext.cnf", "w") as f:
        f.write(f"subjectAltName=IP:127.0.0.1,IP:{SRV_IP}\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    sh(["openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey",
        f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/server.pem", "-days", "30",
        "-extfile", f"{d}/ext.cnf"], **q)
    return d


class Server:
    """One nginx instance (optionally inside the server network namespace)."""

    def __init__(self, ctx, name, bind, base_port, maps, ns=None):
        tls = os.path.join(ctx.work, "tls")
        self.conf, self.ports, self.logs = nginx.write_conf(
            ctx.work, name, bind, base_port, os.path.join(ctx.work, "docroot"), maps,
            f"{tls}/server.pem", f"{tls}/server.key")
        self.bind, self.ns, self.name = bind, ns, name
        self.prefix = ["ip", "netns", "exec", ns] if ns else []
        for f in ("access.log", "stream.log", "error.log"):
            open(os.path.join(self.logs, f), "w").close()
        sh(self.prefix + ["nginx", "-t", "-q", "-c", self.conf])
        sh(self.prefix + ["nginx", "-c", self.conf])
        time.sleep(0.3)

    def endpoint(self, listener):
        scheme = "https" if listener in ("tls", "dtls") else "http"
        return f"{scheme}://{self.bind}:{self.ports[listener]}"

    def cdn(self, listener):
        scheme = "https" if listener in ("tls", "dtls") else "http"
        return f"{scheme}://{self.bind}:{self.ports[listener + 'cdn']}"

    def log_size(self):
        return (os.path.getsize(os.path.join(self.logs, "access.log")),
                os.path.getsize(os.path.join(self.logs, "stream.log")))

    def peak_streams_since(self, offset, cdn_port=None):
        """Most TCP connections open at once through the throttling stream proxies (only those
        to `cdn_port`, the data connections, when given)."""
        with open(os.path.join(self.logs, "stream.log")) as f:
            f.seek(offset)
            lines = [ln.split() for ln in f.read().splitlines()]
        events = []
        for ln in lines:
            if cdn_port and ln[0] != str(cdn_port):
                continue
            end, length = float(ln[4]), float(ln[3])
            events += [(end - length, 1), (end, -1)]
        peak = cur = 0
        for _, step in sorted(events):
            cur += step
            peak = max(peak, cur)
        return peak

    def requests_since(self, offset):
        """(requests, TCP connections, error responses) logged after `offset`."""
        time.sleep(0.2)  # nginx writes the access log line after the last byte
        with open(os.path.join(self.logs, "access.log")) as f:
            f.seek(offset[0])
            lines = f.read().splitlines()
        conns = {ln.split()[1] for ln in lines}
        errors = sum(1 for ln in lines if ln.split()[4] >= "400")
        return len(lines), len(conns), errors

    def stop(self):
        pidfile = os.path.join(os.path.dirname(self.conf), "nginx.pid")
        if os.path.exists(pidfile):
            with open(pidfile) as f:
                pid = int(f.read().strip())
            os.kill(pid, signal.SIGQUIT)
            for _ in range(50):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)


def netns_up():
    netns_down()
    for ns in (NS_SRV, NS_CLI):
        sh(["ip", "netns", "add", ns])
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
    sh(["ip", "link", "add", VETH_SRV, "netns", NS_SRV, "type", "veth", "peer", "name", VETH_CLI,
        "netns", NS_CLI])
    sh(["ip", "-n", NS_SRV, "addr", "add", f"{SRV_IP}/30", "dev", VETH_SRV])
    sh(["ip", "-n", NS_CLI, "addr", "add", f"{CLI_IP}/30", "dev", VETH_CLI])
    sh(["ip", "-n", NS_SRV, "link", "set", VETH_SRV, "up"])
    sh(["ip", "-n", NS_CLI, "link", "set", VETH_CLI, "up"])


def netns_shape(mode):
    """`cap`: tbf 400 Mbit/s on the server's egress. (The reference kernel has no sch_netem, so
    latency is added by delayproxy.py instead.)"""
    sh(["ip", "netns", "exec", NS_SRV, "tc", "qdisc", "del", "dev", VETH_SRV, "root"], check=False,
       stderr=subprocess.DEVNULL)
    if mode == "cap":
        sh(["ip", "netns", "exec", NS_SRV, "tc", "qdisc", "add", "dev", VETH_SRV, "root", "tbf",
            "rate", "400mbit", "burst", "1mbit", "latency", "100ms"])


def netns_down():
    for ns in (NS_SRV, NS_CLI):
        sh(["ip", "netns", "del", ns], check=False, stderr=subprocess.DEVNULL)


def verify(out, r):
    """Number of files whose bytes differ from the fixture (missing counts as different)."""
    bad = 0
    for f in r["files"]:
        entry = {"size": f["size"], "oid": f["oid"]}
        if f["sha256"]:
            entry["lfs"] = {"oid": f["sha256"]}
        if not fixture.check_file(os.path.join(out, f["path"]), entry):
            bad += 1
    return bad


def run_once(ctx, server, tool, endpoint, r, scen, timeout):
    base = os.path.join(ctx.work, "runs", scen, tool)
    shutil.rmtree(base, ignore_errors=True)
    out = os.path.join(base, "out")
    os.makedirs(out)
    kwargs = SMALL_FILE_FLAGS.get(tool, {}) if scen.startswith(("small", "latency")) else {}
    cmd, env_extra = tools.TOOLS[tool](ctx, endpoint, r, out, **kwargs)
    env = {**os.environ, "SSL_CERT_FILE": ctx.ca, **env_extra}
    timefile = os.path.join(base, "time.txt")
    full = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", timefile] + cmd
    if server.ns:
        full = ["ip", "netns", "exec", NS_CLI] + full
    offset = server.log_size()
    t0 = time.monotonic()
    try:
        proc = subprocess.run(full, env=env, cwd=base, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=timeout)
        rc, output = proc.returncode, proc.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        rc, output = "timeout", (e.stdout or b"").decode(errors="replace")
    elapsed = time.monotonic() - t0
    wall = usr = sys_ = rss = None
    try:
        with open(timefile) as f:
            last = f.read().strip().splitlines()[-1].split()
        wall, usr, sys_, rss = float(last[0]), float(last[1]), float(last[2]), int(last[3])
    except (OSError, IndexError, ValueError):
        wall = elapsed
    reqs, conns, errors = server.requests_since(offset)
    throttled = scen.startswith(("throttled", "capped", "uneven"))
    peak = server.peak_streams_since(offset[1]) if throttled else None
    peak_cdn = server.peak_streams_since(offset[1], ctx.cdn_port) if throttled else None
    bad = 0 if tool == "curl-limit" else verify(out, r)
    hash_cpu = hash_wall = None
    if tool == "curl" and rc == 0:
        hash_wall, hash_cpu = sha256_cost(out)
    res = {"tool": tool, "rc": rc, "wall": wall, "cpu": (usr or 0) + (sys_ or 0),
           "rss_kib": rss, "requests": reqs, "connections": conns, "http_errors": errors,
           "peak_connections": peak, "peak_cdn_connections": peak_cdn,
           "bad_files": bad, "hash_cpu": hash_cpu, "hash_wall": hash_wall}
    if rc != 0 or bad:
        res["output_tail"] = output[-2000:]
    if len(r["files"]) > 100:
        # Deleting thousands of files right before the next tool creates its own makes ext4's
        # inode allocator scan recently deleted inodes (recently_deleted() in __ext4_new_inode
        # was half of the next run's CPU): keep many-file outputs until the end of the run.
        os.rename(base, os.path.join(ctx.trash, f"{scen}-{tool}-{time.monotonic_ns()}"))
    else:
        shutil.rmtree(base, ignore_errors=True)
    return res


def sha256_cost(out):
    """(wall, CPU) seconds of `openssl dgst -sha256` over every file under `out`: the hashing half
    of the floor of a verified download (curl to disk + this)."""
    files = [os.path.join(d, f) for d, _, fs in os.walk(out) for f in fs]
    timefile = os.path.join(os.path.dirname(out), "hash-time.txt")
    subprocess.run(["/usr/bin/time", "-f", "%e %U %S", "-o", timefile, "openssl", "dgst", "-sha256",
                    *files], stdout=subprocess.DEVNULL, check=True)
    with open(timefile) as f:
        wall, usr, sys_ = (float(v) for v in f.read().split()[-3:])
    return wall, usr + sys_


# Connections per file each tool opens (for the ideal time of throttled scenarios).
CONNS_PER_FILE = {"hfd-rs": 16, "hfd-rs --http1.1": 16, "hfd-rs fixed": 16, "baseline": 16,
                  "hfd-rs -x64": 64,
                  "aria2c": 16, "curl": 1, "snapshot_download": 1, "hf_transfer": 8}


def summarize(scen, r, runs, per_conn_rate):
    total = sum(f["size"] for f in r["files"])
    rows = {}
    for tool in dict.fromkeys(x["tool"] for x in runs):
        mine = [x for x in runs if x["tool"] == tool]
        good = [x for x in mine if x["rc"] == 0 and x["bad_files"] == 0]
        row = {"tool": tool, "runs": len(mine), "ok": len(good)}
        if good:
            med = lambda k: statistics.median(x[k] for x in good if x[k] is not None)  # noqa: E731
            row.update(wall=med("wall"), cpu_per_gib=med("cpu") / (total / GiB),
                       rss_mib=med("rss_kib") / 1024, requests=med("requests"),
                       connections=med("connections"), mb_per_s=total / 1e6 / med("wall"))
            peaks = [x["peak_connections"] for x in good if x.get("peak_connections")]
            if peaks:
                row["peak_connections"] = statistics.median(peaks)
            if scen.startswith("capped"):
                row["cap_share"] = total / med("wall") / (400e6 / 8)
            cdn_peaks = [x["peak_cdn_connections"] for x in good if x.get("peak_cdn_connections")]
            if cdn_peaks:
                row["peak_cdn_connections"] = statistics.median(cdn_peaks)
            if per_conn_rate and cdn_peaks:
                row["rate_share"] = (total / med("wall")
                                     / (row["peak_cdn_connections"] * per_conn_rate))
        rows[tool] = row
    # The floor: curl (one HTTP/1.1 stream per file, --http1.1 over TLS too) writing to disk, plus
    # hashing the same bytes with openssl; its wall is curl's (a verified download hashes inline).
    floor_runs = [x for x in runs if x["tool"] == "curl" and x.get("hash_cpu") is not None]
    floor_cpu = statistics.median(x["cpu"] + x["hash_cpu"] for x in floor_runs) if floor_runs else None
    floor_wall = statistics.median(x["wall"] for x in floor_runs) if floor_runs else None
    largest = max(f["size"] for f in r["files"])
    for tool, row in rows.items():
        if "wall" not in row:
            continue
        cpu = row["cpu_per_gib"] * total / GiB
        if floor_cpu:
            row["cpu_x_floor"] = cpu / floor_cpu
            row["wall_x_floor"] = row["wall"] / floor_wall
        if per_conn_rate and tool in CONNS_PER_FILE:
            # ideal: the largest file over all of its connections at the per-connection rate
            row["ideal_wall"] = largest / (CONNS_PER_FILE[tool] * per_conn_rate)
            row["wall_x_ideal"] = row["wall"] / row["ideal_wall"]
    ref = rows.get("hfd-rs")
    for row in rows.values():
        if ref and "wall" in ref and "wall" in row:
            row["wall_vs_hfd"] = row["wall"] / ref["wall"]
            row["cpu_vs_hfd"] = row["cpu_per_gib"] / ref["cpu_per_gib"] if ref["cpu_per_gib"] else None
    return {"scenario": scen, "bytes": total, "files": len(r["files"]), "rows": list(rows.values()),
            "runs": runs}


def fmt(v, p=2):
    return "–" if v is None else f"{v:.{p}f}"


def markdown(results, meta_info):
    lines = [f"Run {meta_info['date']} on {meta_info['machine']}; {meta_info['runs']} runs per tool "
             "(alternating), medians of the runs whose files all verified.", ""]
    for s in results:
        lines.append(f"### {s['scenario']}: {s['note']}")
        lines.append(f"{s['files']} files, {s['bytes'] / MiB:.1f} MiB.")
        lines.append("")
        lines.append("| tool | ok/runs | wall s | ×hfd-rs | MB/s | CPU s/GiB | ×hfd-rs | peak RSS MiB "
                     "| requests | connections | CPU ×floor | wall ×floor | wall ×ideal |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in s["rows"]:
            lines.append(
                f"| {row['tool']} | {row['ok']}/{row['runs']} | {fmt(row.get('wall'))} | "
                f"{fmt(row.get('wall_vs_hfd'))} | {fmt(row.get('mb_per_s'), 1)} | "
                f"{fmt(row.get('cpu_per_gib'))} | {fmt(row.get('cpu_vs_hfd'))} | "
                f"{fmt(row.get('rss_mib'), 1)} | {fmt(row.get('requests'), 0)} | "
                f"{fmt(row.get('connections'), 0)} | {fmt(row.get('cpu_x_floor'))} | "
                f"{fmt(row.get('wall_x_floor'))} | {fmt(row.get('wall_x_ideal'))} |")
        peaks = [f"{row['tool']} {row['peak_connections']:.0f} ({row.get('peak_cdn_connections', 0):.0f})"
                 for row in s["rows"] if row.get("peak_connections")]
        if peaks:
            lines.append("")
            lines.append("Peak concurrent TCP connections, all (to the CDN port), from the stream "
                         "proxy log: " + ", ".join(peaks) + ".")
        shares = [f"{row['tool']} {row['rate_share'] * 100:.0f} %" for row in s["rows"]
                  if row.get("rate_share")]
        if shares:
            lines.append("Throughput as a share of peak CDN connections × per-connection rate: "
                         + ", ".join(shares) + ".")
        caps = [f"{row['tool']} {row['cap_share'] * 100:.0f} %" for row in s["rows"]
                if row.get("cap_share")]
        if caps:
            lines.append("Throughput as a share of the 400 Mbit/s total cap: " + ", ".join(caps) + ".")
        failed = [x for x in s["runs"] if x["rc"] != 0 or x["bad_files"]]
        if failed:
            lines.append("")
            lines.append("Failed runs: " + "; ".join(
                f"{x['tool']} rc={x['rc']} bad_files={x['bad_files']}" for x in failed))
        lines.append("")
    return "\n".join(lines)


def machine():
    mem = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.split("\n")[1].split()[1]
    fs = subprocess.run(["df", "-T", "/tmp"], capture_output=True, text=True).stdout.split("\n")[1].split()[1]
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} vCPU ({cpu}), {mem} RAM, Linux {platform.release()}, {fs} filesystem"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", default="/tmp/hfd-peers")
    ap.add_argument("--hfd-rs", default="target/release/hfd-rs")
    ap.add_argument("--fakehub", default="target/release/hfd-fakehub")
    ap.add_argument("--baseline", default=None,
                    help="an hfd-rs built from an earlier commit: adds the tool 'baseline default'")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--big", action="store_true", help="2×512 MiB model shards, 8 GiB large file")
    ap.add_argument("--large-size", type=int, default=None,
                    help="bytes of fake/large instead of the default (1 GiB, 8 GiB with --big): "
                         "keep it small when the large-file scenario is not run")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--tools", default=None, help="restrict to these tools (comma-separated)")
    ap.add_argument("--timeout", type=int, default=240, help="seconds per tool run")
    ap.add_argument("--base-port", type=int, default=18400)
    ap.add_argument("--out", default=None, help="write JSON results here")
    args = ap.parse_args()
    # a SIGTERM still stops nginx, the delay proxy and the namespaces (the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ctx = Ctx(args)
    os.makedirs(ctx.work, exist_ok=True)
    if args.big:
        sizes = dict(model_size=512 * MiB, model_shards=1, dataset_files=2000, large_size=8 * GiB)
    else:
        sizes = dict(model_size=96 * MiB, model_shards=1, dataset_files=2000, large_size=1 * GiB)
    if args.large_size:
        sizes["large_size"] = args.large_size
    make_certs(ctx.work)
    shutil.rmtree(ctx.trash, ignore_errors=True)
    os.makedirs(ctx.trash)
    meta = fixture.dump(ctx.fakehub_bin, ctx.work, log=log, **sizes)
    maps = os.path.join(ctx.work, "maps.conf")
    nginx.write_maps(meta, maps)
    scen_names = [s for s in args.scenarios.split(",") if s]
    want_tools = set(args.tools.split(",")) if args.tools else set(tools.TOOLS)
    if not args.baseline:
        want_tools.discard("baseline default")
    if subprocess.run([sys.executable, "-c", "import hf_transfer"],
                      stderr=subprocess.DEVNULL).returncode != 0:
        log("hf_transfer is not installed: skipping it")
        want_tools.discard("hf_transfer")
    servers = {}
    results = []
    delay_proc = None
    try:
        servers["lo"] = Server(ctx, "nginx-lo", "127.0.0.1", args.base_port, maps)
        if any(SCENARIOS[s][1].startswith("ns") for s in scen_names):
            netns_up()
            servers["ns"] = Server(ctx, "nginx-ns", SRV_IP, args.base_port, maps, ns=NS_SRV)
        if any(SCENARIOS[s][2] in nginx.DELAYED for s in scen_names):
            p = servers["lo"].ports
            specs = [f"{p[d + sfx]}:{p[t + sfx]}" for d, t in nginx.DELAYED.items()
                     for sfx in ("", "cdn")]
            delay_proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "delayproxy.py"), "25", *specs],
                stdout=subprocess.PIPE, text=True)
            delay_proc.stdout.readline()
        for scen in scen_names:
            repo_key, where, listener, tool_names, note = SCENARIOS[scen]
            tool_names = [t for t in tool_names if t in want_tools]
            server = servers[where.split(":")[0]]
            if ":" in where:
                netns_shape(where.split(":")[1])
            endpoint = server.endpoint(listener)
            ctx.cdn[endpoint] = server.cdn(listener)
            # the stream proxy logs the port it serves (behind a delay proxy: the one it forwards to)
            ctx.cdn_port = server.ports[nginx.DELAYED.get(listener, listener) + "cdn"]
            repo_key, _, include = repo_key.partition(":")
            r = meta["repos"][repo_key]
            if include:  # a subset, selected with the tools' own filters where they have one
                r = dict(r, include=include,
                         files=[f for f in r["files"] if fnmatch.fnmatchcase(f["path"], include)
                                and "/" not in f["path"][len(include) - 1:]])
            log(f"scenario {scen}: {note}; {endpoint}; tools {', '.join(tool_names)}")
            runs = []
            for i in range(args.runs):
                for tool in tool_names:
                    res = run_once(ctx, server, tool, endpoint, r, scen, args.timeout)
                    runs.append(res)
                    log(f"  {scen} run {i + 1} {tool}: rc={res['rc']} wall={fmt(res['wall'])}s "
                        f"cpu={fmt(res['cpu'])}s rss={res['rss_kib']}KiB req={res['requests']} "
                        f"conn={res['connections']} bad={res['bad_files']}"
                        + (f"\n{res['output_tail']}" if "output_tail" in res else ""))
            # nginx "5m" = 5 MiB/s; uneven: the fast connections' 10m (the ideal assumes none slow)
            rate = {"t5": 5 * MiB, "dt5": 5 * MiB, "uneven": 10 * MiB, "duneven": 10 * MiB}.get(listener)
            s = summarize(scen, r, runs, rate)
            s["note"] = note + (f"; files matching {include}" if include else "")
            results.append(s)
            write_results(args, ctx, results, sizes)
    finally:
        if delay_proc:
            delay_proc.terminate()
            delay_proc.wait()
        for srv in servers.values():
            srv.stop()
        if "ns" in servers:
            netns_down()
        shutil.rmtree(ctx.trash, ignore_errors=True)
    print(write_results(args, ctx, results, sizes))


def write_results(args, ctx, results, sizes):
    """(Re)writes the JSON and Markdown results after every scenario; returns the table."""
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "runs": args.runs, "sizes": sizes}
    table = markdown(results, info)
    out = args.out or os.path.join(ctx.work, "results.json")
    with open(out, "w") as f:
        json.dump({"info": info, "results": results}, f, indent=1)
    with open(os.path.splitext(out)[0] + ".md", "w") as f:
        f.write(table)
    log(f"results so far: {out}")
    return table


if __name__ == "__main__":
    main()
