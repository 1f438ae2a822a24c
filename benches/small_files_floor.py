"""The filesystem floor of a dataset download: what this machine's filesystem alone costs to
write the files of an already downloaded folder the way each tool must, without network or
hashing, 16 threads (as curl `--parallel-max 16` and hfd-rs `-j 16`).

    python3 benches/small_files_floor.py SRC DST_PARENT [--rounds 3]

SRC is a finished `--local-dir` download (its `.cache/` is skipped); each round writes every
file of it into a new folder under DST_PARENT (on the filesystem to measure; never deleted
here: a deletion makes ext4's next inode creations slower, see docs/benchmarks.md), in four
ways, alternating:

- `plain`: create and write the file at its name (what curl does);
- `files-no-sync`: huggingface_hub's `.lock` created, a partial written and renamed to its
  name, the `.metadata` file written (hfd-rs's files, without durability);
- `sync-only`: a partial written, `fsync`ed, renamed (durability, no hub files);
- `hfd-rs`: both (what a verified, crash-safe `--local-dir` download must do per file).

Prints wall and CPU seconds per way and round.
"""

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

META = (b"0123456789abcdef0123456789abcdef01234567\n"
        b"0123456789abcdef0123456789abcdef01234567\n1733200000.0\n")


def read_files(src):
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d != ".cache"]
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files.append((os.path.relpath(path, src), f.read()))
    return files


def write(path, data, sync=False):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def way(name, dst):
    def one(item):
        rel, data = item
        final = os.path.join(dst, rel)
        state = os.path.join(dst, ".cache", "huggingface", "download", rel)
        if name == "plain":
            write(final, data)
            return
        hub_files = name in ("files-no-sync", "hfd-rs")
        lock = os.open(state + ".lock", os.O_CREAT | os.O_RDWR, 0o644) if hub_files else None
        write(state + ".part", data, sync=name in ("sync-only", "hfd-rs"))
        os.rename(state + ".part", final)
        if hub_files:
            write(state + ".metadata", META)
            os.close(lock)
    return one


def run(name, files, dst):
    for rel, _ in files:
        os.makedirs(os.path.dirname(os.path.join(dst, rel)) or dst, exist_ok=True)
        os.makedirs(os.path.dirname(os.path.join(dst, ".cache", "huggingface", "download", rel)),
                    exist_ok=True)
    t0, c0 = time.monotonic(), os.times()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(way(name, dst), files))
    c1 = os.times()
    return time.monotonic() - t0, (c1.user - c0.user) + (c1.system - c0.system)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst_parent")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    files = read_files(args.src)
    print(f"{len(files)} files, {sum(len(d) for _, d in files) / 2**20:.1f} MiB")
    for r in range(args.rounds):
        for name in ("plain", "files-no-sync", "sync-only", "hfd-rs"):
            dst = os.path.join(args.dst_parent, f"{name}-{r}-{time.monotonic_ns()}")
            wall, cpu = run(name, files, dst)
            print(f"round {r + 1} {name:14} wall {wall:.3f} s  cpu {cpu:.3f} s", flush=True)


if __name__ == "__main__":
    main()
