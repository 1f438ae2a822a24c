"""Drives the real huggingface_hub client against the fake hub (HF_ENDPOINT is set by the caller).

argv: <out.json> <local_dir>
Prints nothing on success; writes the paths the client returned to out.json.
"""
import json
import sys

import huggingface_hub
from huggingface_hub import hf_hub_download, snapshot_download

out_path, local_dir = sys.argv[1], sys.argv[2]
out = {"version": huggingface_hub.__version__}

# Model into the cache, then one file of a pull request (revision encoding refs%2Fpr%2F1).
out["model_snapshot"] = snapshot_download("org/model")
out["model_pr_file"] = hf_hub_download("org/model", "PR_1.md", revision="refs/pr/1")
out["model_tag_file"] = hf_hub_download("org/model", "config.json", revision="v1.0")

# Dataset: one awkward file into the cache, the whole repo into a local dir.
out["dataset_odd_file"] = hf_hub_download(
    "org/data", "odd names/my file+1#?.txt", repo_type="dataset"
)
out["dataset_local_dir"] = snapshot_download("org/data", repo_type="dataset", local_dir=local_dir)

# Private repo (regular file served directly) and gated repo, both with the token.
out["private_config"] = hf_hub_download("org/private", "config.json")
out["private_weights"] = hf_hub_download("org/private", "weights.bin")
out["gated_snapshot"] = snapshot_download("org/gated")

with open(out_path, "w", encoding="utf-8") as f:
    json.dump(out, f)
