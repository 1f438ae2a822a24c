"""Runs huggingface_hub's own `--local-dir` download over a folder hfd-rs filled.

argv: <out.json> <local_dir> <repo_type> <repo_id>
HF_ENDPOINT points at the fake hub; the Rust test reads the hub's request log.
"""
import json
import sys

from huggingface_hub import snapshot_download

out_path, local_dir, repo_type, repo_id = sys.argv[1:5]
path = snapshot_download(repo_id, repo_type=repo_type, local_dir=local_dir)
with open(out_path, "w", encoding="utf-8") as f:
    json.dump({"path": path}, f)
