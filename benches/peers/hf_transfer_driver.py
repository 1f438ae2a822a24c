"""Drive hf_transfer like huggingface_hub < 1.0 did (HF_HUB_ENABLE_HF_TRANSFER=1):
snapshot_download's 8 worker threads, each file one `hf_transfer.download` call with
max_files=100 (HF_TRANSFER_CONCURRENCY) and 10 MiB chunks. Usage: driver LIST WORKERS,
LIST holding `url<TAB>output path` lines."""

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import hf_transfer


def fetch(job):
    url, out = job
    os.makedirs(os.path.dirname(out), exist_ok=True)
    hf_transfer.download(url=url, filename=out, max_files=100, chunk_size=10 * 1024 * 1024,
                         parallel_failures=3, max_retries=5, headers=None)


def main():
    with open(sys.argv[1]) as f:
        jobs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    with ThreadPoolExecutor(max_workers=int(sys.argv[2])) as pool:
        list(pool.map(fetch, jobs))


if __name__ == "__main__":
    main()
