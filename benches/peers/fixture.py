"""Dump the fake hub's synthetic repos to disk and describe them for nginx.

hfd-fakehub generates the content (seeded bytes) and answers the API; this module asks it once for
every repo's info and recursive tree, HEADs every resolve URL without following redirects to copy
the exact headers the hub sends (X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size, 302 or 200),
and stores each file's bytes under `docroot/cdn/<oid>` after checking them against the listing's
sha256 (LFS) or git blob sha1 (regular). nginx then serves the same routes and headers statically.
"""

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import urllib.parse

REPOS = [("models", "fake/model"), ("datasets", "fake/dataset"), ("models", "fake/large")]
CHUNK = 1 << 20


def git_sha1_file(path):
    size = os.path.getsize(path)
    h = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def check_file(path, entry):
    """True when `path` holds exactly the bytes the listing entry describes."""
    if not os.path.isfile(path) or os.path.getsize(path) != entry["size"]:
        return False
    if entry.get("lfs"):
        return sha256_file(path) == entry["lfs"]["oid"]
    return git_sha1_file(path) == entry["oid"]


def resolve_prefix(rtype):
    return "" if rtype == "models" else rtype + "/"


def quote_path(path):
    return urllib.parse.quote(path, safe="/")


def _get(conn, path, method="GET"):
    conn.request(method, path, headers={"Accept-Encoding": "identity"})
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def _write_big(path, size):
    """`size` bytes of random data (openssl's CTR stream: fast and incompressible)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    with open(path, "wb") as out:
        remaining = size
        proc = subprocess.Popen(
            ["openssl", "enc", "-aes-128-ctr", "-nosalt", "-pass", "pass:hfd-bench", "-in", "/dev/zero"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        while remaining:
            chunk = proc.stdout.read(min(remaining, 8 * CHUNK))
            out.write(chunk)
            remaining -= len(chunk)
        proc.kill()
        proc.wait()


def dump(fakehub_bin, work, model_size, model_shards, dataset_files, large_size, log):
    """Build `work/docroot` + `work/fixture.json`; reuses a previous dump with the same sizes."""
    params = {"model_size": model_size, "model_shards": model_shards,
              "dataset_files": dataset_files, "large_size": large_size}
    meta_path = os.path.join(work, "fixture.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("params") == params:
            log("fixture: reusing %s" % meta_path)
            return meta
    docroot = os.path.join(work, "docroot")
    shutil.rmtree(docroot, ignore_errors=True)
    os.makedirs(os.path.join(docroot, "cdn"))
    src = os.path.join(work, "repos")
    large_file = os.path.join(src, "fake", "large", "model.safetensors")
    log("fixture: writing %d bytes of random data for fake/large" % large_size)
    _write_big(large_file, large_size)

    proc = subprocess.Popen(
        [fakehub_bin, "--repos", src, "--model-size", str(model_size), "--model-shards",
         str(model_shards), "--dataset-files", str(dataset_files), "--page-size", "1000000"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        endpoint = dict(kv.split("=", 1) for kv in line.split())["endpoint"]
        host = urllib.parse.urlsplit(endpoint).netloc
        conn = http.client.HTTPConnection(host, timeout=120)
        repos = {}
        for rtype, repo in REPOS:
            status, _, info = _get(conn, f"/api/{rtype}/{repo}/revision/main?blobs=true")
            assert status == 200, (repo, status)
            status, _, tree = _get(conn, f"/api/{rtype}/{repo}/tree/main?recursive=true&expand=false")
            assert status == 200, (repo, status)
            api_dir = os.path.join(docroot, "api", rtype, repo)
            os.makedirs(api_dir, exist_ok=True)
            with open(os.path.join(api_dir, "info.json"), "wb") as f:
                f.write(info)
            with open(os.path.join(api_dir, "tree.json"), "wb") as f:
                f.write(tree)
            commit = json.loads(info)["sha"]
            files = []
            for entry in json.loads(tree):
                if entry["type"] != "file":
                    continue
                path = entry["path"]
                url = f"/{resolve_prefix(rtype)}{repo}/resolve/main/{quote_path(path)}"
                status, headers, _ = _get(conn, url, "HEAD")
                assert status in (302, 307), (path, status)
                lfs = status == 302
                cache_headers = {}
                if not lfs:
                    # public regular file: 307 to /api/resolve-cache/..., which serves the bytes
                    status, cache_headers, _ = _get(conn, headers["location"], "HEAD")
                    assert status == 200, (path, status)
                blob = entry["lfs"]["oid"] if lfs else entry["oid"]
                dest = os.path.join(docroot, "cdn", blob)
                if repo == "fake/large":
                    if not os.path.exists(dest):
                        os.link(large_file, dest)
                elif not os.path.exists(dest):
                    target = headers["location"]
                    parts = urllib.parse.urlsplit(target)
                    c = conn
                    if parts.netloc and parts.netloc != host:
                        c = http.client.HTTPConnection(parts.netloc, timeout=120)
                    c.request("GET", urllib.parse.urlunsplit(("", "", parts.path, parts.query, "")))
                    resp = c.getresponse()
                    assert resp.status == 200, (path, resp.status)
                    with open(dest + ".tmp", "wb") as f:
                        while chunk := resp.read(CHUNK):
                            f.write(chunk)
                    os.rename(dest + ".tmp", dest)
                    if c is not conn:
                        c.close()
                if not check_file(dest, entry):
                    raise RuntimeError(f"fixture bytes of {repo}/{path} do not match the listing")
                files.append({
                    "path": path, "size": entry["size"], "lfs": lfs, "blob": blob,
                    "oid": entry["oid"],
                    "sha256": entry["lfs"]["oid"] if entry.get("lfs") else None,
                    "headers": {k: headers[k] for k in
                                ("x-repo-commit", "etag", "x-linked-etag", "x-linked-size",
                                 "location")
                                if k in headers and not (lfs and k == "location")},
                    "cache_headers": {k: cache_headers[k] for k in ("x-repo-commit", "etag")
                                      if k in cache_headers},
                })
            repos[f"{rtype}/{repo}"] = {"type": rtype, "repo": repo, "commit": commit,
                                        "files": files}
            log("fixture: %s/%s: %d files, %d bytes" % (
                rtype, repo, len(files), sum(f["size"] for f in files)))
        conn.close()
    finally:
        proc.terminate()
        proc.wait()
    meta = {"params": params, "repos": repos}
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    return meta
