"""Judges a hub cache written by hfd-rs with the real huggingface_hub, offline.

argv: <out.json> <cache_dir> <spec.json>
spec: [{"repo_id", "repo_type", "revision", "files": [path, ...]}]
Writes what the library returned to out.json; the Rust test asserts on it.
"""
import json
import sys

import huggingface_hub
from huggingface_hub import hf_hub_download, scan_cache_dir, snapshot_download, try_to_load_from_cache

out_path, cache_dir, spec_path = sys.argv[1], sys.argv[2], sys.argv[3]
with open(spec_path, encoding="utf-8") as f:
    spec = json.load(f)

out = {"version": huggingface_hub.__version__, "repos": {}}
for repo in spec:
    rid, rtype, rev = repo["repo_id"], repo["repo_type"], repo["revision"]
    entry = {
        "snapshot": snapshot_download(
            rid, repo_type=rtype, revision=rev, cache_dir=cache_dir, local_files_only=True
        ),
        "files": {},
        "try_to_load": {},
    }
    for path in repo["files"]:
        entry["files"][path] = hf_hub_download(
            rid, path, repo_type=rtype, revision=rev, cache_dir=cache_dir, local_files_only=True
        )
        found = try_to_load_from_cache(rid, path, cache_dir=cache_dir, revision=rev, repo_type=rtype)
        entry["try_to_load"][path] = found if isinstance(found, str) else repr(found)
    out["repos"][f"{rtype}:{rid}"] = entry

info = scan_cache_dir(cache_dir)
out["scan"] = {
    "warnings": [str(w) for w in info.warnings],
    "repos": [
        {
            "repo_id": r.repo_id,
            "repo_type": r.repo_type,
            "size_on_disk": r.size_on_disk,
            "nb_files": r.nb_files,
            "refs": sorted(r.refs),
            "revisions": [
                {
                    "commit_hash": rev.commit_hash,
                    "nb_files": rev.nb_files,
                    "size_on_disk": rev.size_on_disk,
                    "refs": sorted(rev.refs),
                    "files": sorted(f.file_name for f in rev.files),
                }
                for rev in r.revisions
            ],
        }
        for r in info.repos
    ],
}

with open(out_path, "w", encoding="utf-8") as f:
    json.dump(out, f)
