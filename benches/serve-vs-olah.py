#!/usr/bin/env python3
"""Client download time through `hfd-rs serve` against the same client through Olah.

One model repository (a regular config, a README and one LFS file of --size MiB) is written as a
git repository with its LFS object, the layout Olah 0.5 serves offline from `mirrors-path`. Olah
serves it; hfd-rs downloads it from Olah into a hub cache (so the cache `hfd-rs serve` serves is
one hfd-rs wrote), and `hfd-rs serve` serves that cache. Then each client downloads the repo (or,
for curl and aria2c, the LFS file) from each server, servers alternating run by run, every result
checked against the file's sha256. Olah is started with its upstream on a closed loopback port:
nothing leaves the machine.

Usage: benches/serve-vs-olah.sh [--size MIB] [--runs N] [--clients a,b] [--work DIR]
Output: a Markdown table on stdout and in WORK/results.md (medians of the runs).
"""

import argparse
import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = "acme/bench-model"
LFS_PATH = "model.safetensors"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited ({proc.returncode}) before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not listen on {port} within {timeout} s")


def git(repo, *args):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def write_repo(mirrors, size):
    """The model as a git repository with its LFS object; returns the LFS file's sha256."""
    repo = os.path.join(mirrors, "models", REPO)
    os.makedirs(repo, exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    content = os.urandom(size)
    sha = hashlib.sha256(content).hexdigest()
    obj = os.path.join(repo, ".git/lfs/objects", sha[:2], sha[2:4], sha)
    os.makedirs(os.path.dirname(obj), exist_ok=True)
    with open(obj, "wb") as f:
        f.write(content)
    with open(os.path.join(repo, LFS_PATH), "w") as f:
        f.write(f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n")
    with open(os.path.join(repo, ".gitattributes"), "w") as f:
        f.write(f"{LFS_PATH} filter=lfs diff=lfs merge=lfs -text\n")
    with open(os.path.join(repo, "config.json"), "w") as f:
        f.write('{"model_type": "bench"}\n')
    with open(os.path.join(repo, "README.md"), "w") as f:
        f.write("# bench model\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench")
    return sha


def clean_env():
    env = dict(os.environ)
    for k in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "HF_TOKEN"]:
        env.pop(k, None)
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def start_olah(work, mirrors):
    port = free_port()
    netloc = f"127.0.0.1:{port}"
    config = os.path.join(work, "olah.toml")
    with open(config, "w") as f:
        f.write(
            "[basic]\n"
            'host = "127.0.0.1"\n'
            f"port = {port}\n"
            f'repos-path = "{os.path.join(work, "olah-cache")}"\n'
            f'mirrors-path = ["{mirrors}"]\n'
            'hf-scheme = "http"\n'
            'hf-netloc = "127.0.0.1:9"\n'
            'hf-lfs-netloc = "127.0.0.1:9"\n'
            'mirror-scheme = "http"\n'
            f'mirror-netloc = "{netloc}"\n'
            f'mirror-lfs-netloc = "{netloc}"\n'
            "[accessibility]\n"
            "offline = true\n")
    log = open(os.path.join(work, "olah.out"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "olah.server", "-c", config, "--log-path",
                             os.path.join(work, "olah-logs")], cwd=work, env=clean_env(),
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    wait_port(port, proc, "Olah")
    return proc, f"http://{netloc}"


def start_serve(hfd, work, cache):
    port = free_port()
    log = open(os.path.join(work, "serve.out"), "w")
    proc = subprocess.Popen([hfd, "serve", "--cache-dir", cache, "--listen", f"127.0.0.1:{port}",
                             "--quiet"], env=clean_env(), stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    wait_port(port, proc, "hfd-rs serve")
    return proc, f"http://127.0.0.1:{port}"


def cpu_seconds(pid):
    """user+system seconds of a process and its children processes."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                 text=True).stdout.split()]
    except FileNotFoundError:
        pass
    for p in pids:
        try:
            fields = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tck


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


SNAPSHOT = """
import sys
from huggingface_hub import snapshot_download
snapshot_download(sys.argv[1], local_dir=sys.argv[2], endpoint=sys.argv[3])
"""


def client_command(client, hfd, endpoint, out, size):
    url = f"{endpoint}/{REPO}/resolve/main/{LFS_PATH}"
    if client == "hfd-rs -x8":
        return [hfd, REPO, "--endpoint", endpoint, "--local-dir", out, "-x", "8", "--quiet"]
    if client == "huggingface_hub":
        return [sys.executable, "-c", SNAPSHOT, REPO, out, endpoint]
    if client == "curl":
        return ["curl", "-sSfL", "--create-dirs", "-o", os.path.join(out, LFS_PATH), url]
    if client == "aria2c -x8":
        return ["aria2c", "--console-log-level=error", "--file-allocation=none", "-x8", "-s8",
                "-k1M", "-d", out, "-o", LFS_PATH, url]
    sys.exit(f"unknown client {client}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hfd-rs", required=True)
    ap.add_argument("--size", type=int, default=512, help="MiB of the LFS file")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", default="hfd-rs -x8,huggingface_hub,curl,aria2c -x8")
    ap.add_argument("--work")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="hfd-serve-olah.")
    os.makedirs(work, exist_ok=True)
    mirrors = os.path.join(work, "mirrors")
    shutil.rmtree(mirrors, ignore_errors=True)
    sha = write_repo(mirrors, args.size << 20)
    procs = []

    def stop(*_):
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(1)))
    try:
        olah, olah_url = start_olah(work, mirrors)
        procs.append(olah)
        # The cache `hfd-rs serve` serves is one hfd-rs wrote, from Olah.
        cache = os.path.join(work, "cache")
        shutil.rmtree(cache, ignore_errors=True)
        subprocess.run([args.hfd_rs, REPO, "--endpoint", olah_url, "--cache-dir", cache,
                        "--quiet"], env=clean_env(), check=True, timeout=600)
        serve, serve_url = start_serve(args.hfd_rs, work, cache)
        procs.append(serve)
        servers = {"Olah 0.5": (olah, olah_url), "hfd-rs serve": (serve, serve_url)}
        clients = [c.strip() for c in args.clients.split(",") if c.strip()]
        results = {}
        for run in range(args.runs):
            for client in clients:
                order = list(servers) if run % 2 == 0 else list(reversed(servers))
                for name in order:
                    proc, url = servers[name]
                    out = os.path.join(work, "out")
                    shutil.rmtree(out, ignore_errors=True)
                    os.makedirs(out)
                    cmd = client_command(client, args.hfd_rs, url, out, args.size)
                    c0, t0 = cpu_seconds(proc.pid), time.monotonic()
                    done = subprocess.run(cmd, env=clean_env(), capture_output=True, timeout=900)
                    t1, c1 = time.monotonic(), cpu_seconds(proc.pid)
                    path = os.path.join(out, LFS_PATH)
                    ok = done.returncode == 0 and os.path.exists(path) and sha256_file(path) == sha
                    if not ok:
                        print(f"{client} through {name} failed (exit {done.returncode}): "
                              f"{done.stderr.decode(errors='replace')[-300:]}", file=sys.stderr)
                    results.setdefault((client, name), []).append(
                        (t1 - t0, c1 - c0) if ok else None)
                    print(f"run {run + 1} {client:16} {name:13} "
                          + (f"{t1 - t0:7.2f} s, server CPU {c1 - c0:.2f} s" if ok else "FAILED"),
                          file=sys.stderr)
        lines = [
            f"| client | through | runs ok | median s | MiB/s | server CPU s |",
            "|---|---|---|---|---|---|",
        ]
        for client in clients:
            for name in servers:
                got = [r for r in results.get((client, name), []) if r]
                if not got:
                    lines.append(f"| {client} | {name} | 0/{args.runs} | failed | – | – |")
                    continue
                wall = statistics.median(r[0] for r in got)
                cpu = statistics.median(r[1] for r in got)
                lines.append(f"| {client} | {name} | {len(got)}/{args.runs} | {wall:.2f} | "
                             f"{args.size / wall:.0f} | {cpu:.2f} |")
        table = "\n".join(lines)
        print(table)
        with open(os.path.join(work, "results.md"), "w") as f:
            f.write(table + "\n")
    finally:
        stop()


if __name__ == "__main__":
    main()
