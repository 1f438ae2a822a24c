"""The filesystem floor of a dataset download: what this machine's filesystem alone costs to
write the files of an already downloaded folder the way each tool must, without network or
hashing, 16 threads (as curl `--parallel-max 16` and hfd-rs `-j 16`).

    python3 benches/small_files_floor.py SRC DST_PARENT [--rounds 3] [--alternatives]

SRC is a finished `--local-dir` download (its `.cache/` is skipped); each round writes every
file of it into a new folder under DST_PARENT (on the filesystem to measure; never deleted
here: a deletion makes ext4's next inode creations slower, see docs/benchmarks.md), in four
ways, alternating:

- `plain`: create and write the file at its name (what curl does);
- `files-no-sync`: huggingface_hub's `.lock` created, a partial written and renamed to its
  name, the `.metadata` file written (hfd-rs's files, without durability);
- `sync-only`: a partial written, `fsync`ed, renamed (durability, no hub files);
- `hfd-rs`: both (what a verified, crash-safe `--local-dir` download must do per file).

`--alternatives` adds two other ways to keep the same guarantee, measured and not taken
(docs/benchmarks.md, "The floor of a dataset download"):

- `tmpfile`: as `hfd-rs`, but the bytes go to an unnamed `O_TMPFILE` inode, `fsync`ed, then
  linked at the final name (`linkat`): no partial name, no rename (Linux);
- `syncfs-batch`: as `hfd-rs`, but each thread writes 32 partials, makes them durable with one
  `syncfs` (the whole filesystem's dirty pages, other programs' too: decision 0020), then
  renames them.

Prints wall and CPU seconds per way and round.
"""

import argparse
import ctypes
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


LIBC = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_SYMLINK_FOLLOW = -100, 0x400
SYNCFS_BATCH = 32


def libc_call(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def write_tmpfile_and_link(final, data):
    """An unnamed inode in the final folder, synced, then given its name."""
    fd = os.open(os.path.dirname(final), os.O_TMPFILE | os.O_WRONLY, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
        libc_call(LIBC.linkat(AT_FDCWD, f"/proc/self/fd/{fd}".encode(), AT_FDCWD,
                              final.encode(), AT_SYMLINK_FOLLOW), "linkat")
    finally:
        os.close(fd)


def syncfs_batch(dst, items):
    """One thread's batch: the hub's lock and a partial per file, one `syncfs`, the renames."""
    locks = []
    for rel, data in items:
        state = os.path.join(dst, ".cache", "huggingface", "download", rel)
        locks.append(os.open(state + ".lock", os.O_CREAT | os.O_RDWR, 0o644))
        write(state + ".part", data)
    fd = os.open(dst, os.O_RDONLY)
    try:
        libc_call(LIBC.syncfs(fd), "syncfs")
    finally:
        os.close(fd)
    for (rel, _), lock in zip(items, locks):
        state = os.path.join(dst, ".cache", "huggingface", "download", rel)
        os.rename(state + ".part", os.path.join(dst, rel))
        write(state + ".metadata", META)
        os.close(lock)


def way(name, dst):
    def one(item):
        rel, data = item
        final = os.path.join(dst, rel)
        state = os.path.join(dst, ".cache", "huggingface", "download", rel)
        if name == "plain":
            write(final, data)
            return
        if name == "tmpfile":
            lock = os.open(state + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
            write_tmpfile_and_link(final, data)
            write(state + ".metadata", META)
            os.close(lock)
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
        if name == "syncfs-batch":
            batches = [files[i:i + SYNCFS_BATCH] for i in range(0, len(files), SYNCFS_BATCH)]
            list(pool.map(lambda items: syncfs_batch(dst, items), batches))
        else:
            list(pool.map(way(name, dst), files))
    c1 = os.times()
    return time.monotonic() - t0, (c1.user - c0.user) + (c1.system - c0.system)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst_parent")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--alternatives", action="store_true",
                    help="also the ways measured and not taken: tmpfile, syncfs-batch")
    args = ap.parse_args()
    files = read_files(args.src)
    print(f"{len(files)} files, {sum(len(d) for _, d in files) / 2**20:.1f} MiB")
    ways = ["plain", "files-no-sync", "sync-only", "hfd-rs"]
    if args.alternatives:
        ways += ["tmpfile", "syncfs-batch"]
    for r in range(args.rounds):
        for name in ways:
            dst = os.path.join(args.dst_parent, f"{name}-{r}-{time.monotonic_ns()}")
            wall, cpu = run(name, files, dst)
            print(f"round {r + 1} {name:14} wall {wall:.3f} s  cpu {cpu:.3f} s", flush=True)


if __name__ == "__main__":
    main()
