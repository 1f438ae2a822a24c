//! The fake hub, proven by the real Python client (`huggingface_hub`).
//!
//! Skipped (with a message) when python3 or huggingface_hub is missing, unless `CI` is set,
//! in which case a missing client fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hfd_testkit::support::{python_client_version, python_command, run_python_json};
use hfd_testkit::{FakeHub, LogEntry, MIB, Origin, RepoFixture, Route, Transport};

const SCRIPT: &str = include_str!("client.py");
const TOKEN: &str = "hf_good_token";

async fn start(transport: Transport) -> FakeHub {
    FakeHub::builder()
        .repo(
            RepoFixture::model("org/model")
                .regular_file("config.json", "{\"model_type\": \"fake\"}\n")
                .regular_file("README.md", "# fake\n")
                .regular_file("tokenizer/vocab.txt", hfd_testkit::seeded_bytes(5, 70_000))
                .lfs_file("model.safetensors", 3 * MIB + 17, 11)
                .lfs_file("onnx/model.onnx", 300_000, 12),
        )
        .repo(RepoFixture::synthetic_dataset("org/data", 40, 3))
        .repo(
            RepoFixture::model("org/private")
                .private()
                .regular_file("config.json", "{\"private\": true}\n")
                .lfs_file("weights.bin", 200_000, 21),
        )
        .repo(
            RepoFixture::model("org/gated")
                .gated()
                .regular_file("config.json", "{\"gated\": true}\n")
                .lfs_file("model.safetensors", 100_000, 31),
        )
        .transport(transport)
        .token(TOKEN)
        .start()
        .await
        .expect("fake hub starts")
}

fn assert_same_file(hub: &FakeHub, repo: &str, revision: &str, path: &str, local: &Path) {
    let expected = hub
        .file_bytes_at(repo, revision, path)
        .unwrap_or_else(|| panic!("fixture has {repo}@{revision}:{path}"));
    let actual = std::fs::read(local).unwrap_or_else(|e| panic!("read {}: {e}", local.display()));
    assert!(
        actual == expected,
        "{repo}@{revision}:{path}: client wrote {} bytes that differ from the fixture ({} bytes)",
        actual.len(),
        expected.len()
    );
}

/// Every regular file below `dir` (following symlinks), relative, `/`-separated, skipping
/// `.cache`.
fn walk(dir: &Path) -> BTreeSet<String> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_name() == ".cache" {
                continue;
            }
            if path.is_dir() {
                go(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap();
                out.insert(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    go(dir, dir, &mut out);
    out
}

fn assert_tree_matches(hub: &FakeHub, repo: &str, dir: &Path) {
    let expected: BTreeSet<String> = hub.files(repo).into_iter().map(|f| f.path).collect();
    assert_eq!(walk(dir), expected, "files written for {repo}");
    for path in &expected {
        assert_same_file(hub, repo, "main", path, &dir.join(path));
    }
}

async fn run_client(hub: &FakeHub, work: &Path) -> serde_json::Value {
    let script = work.join("client.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out_json = work.join("out.json");
    let mut cmd = python_command(hub, &script, &work.join("hf-home"));
    cmd.arg(&out_json)
        .arg(work.join("local-data"))
        .env("HF_TOKEN", TOKEN);
    run_python_json(cmd, &out_json, || {
        format!("log:\n{}", format_log(&hub.log().entries()))
    })
    .await
}

/// Regular files: the resolve-cache round trip of public repos, direct answers of private ones.
fn check_regular_requests(hub: &FakeHub, entries: &[LogEntry], model_sha: &str, data_sha: &str) {
    // Regular files of public repos: HEAD resolve (307) → HEAD resolve-cache (200) → GET
    // resolve-cache (200). Private regular files: HEAD and GET on resolve itself (200).
    for (repo, types, sha) in [
        ("org/model", "models", model_sha),
        ("org/data", "datasets", data_sha),
    ] {
        for file in hub.files(repo).iter().filter(|f| !f.is_lfs()) {
            let cache = format!("/api/resolve-cache/{types}/{repo}/{sha}/");
            let hits = |method: &str| {
                entries
                    .iter()
                    .filter(|e| {
                        e.method == method
                            && e.status == 200
                            && e.route == Route::ResolveCache
                            && e.path.starts_with(&cache)
                            && percent_decode(&e.path[cache.len()..]) == file.path
                    })
                    .count()
            };
            assert!(
                hits("HEAD") >= 1 && hits("GET") >= 1,
                "{repo}:{} via resolve-cache",
                file.path
            );
        }
    }
    assert_eq!(
        count(
            entries,
            "HEAD",
            Route::Resolve,
            "/org/private/resolve/main/config.json"
        ),
        1
    );
    assert_eq!(
        count(
            entries,
            "GET",
            Route::Resolve,
            "/org/private/resolve/main/config.json"
        ),
        1
    );
}

fn format_log(entries: &[LogEntry]) -> String {
    entries
        .iter()
        .map(|e| {
            format!(
                "{:?} {} {} {} -> {} range={:?} auth={} conn={}",
                e.origin,
                e.version,
                e.method,
                e.path_and_query(),
                e.status,
                e.range,
                e.has_authorization,
                e.connection_id
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn path_of(v: &serde_json::Value, key: &str) -> PathBuf {
    PathBuf::from(
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("client returned {key}")),
    )
}

/// Requests whose method, route and path start match.
fn count(entries: &[LogEntry], method: &str, route: Route, path_prefix: &str) -> usize {
    entries
        .iter()
        .filter(|e| e.method == method && e.route == route && e.path.starts_with(path_prefix))
        .count()
}

async fn real_client_downloads_everything(transport: Transport) {
    let Some(version) = python_client_version() else {
        return;
    };
    let hub = start(transport).await;
    let work = tempfile::tempdir().unwrap();
    let out = run_client(&hub, work.path()).await;
    let entries = hub.log().entries();
    eprintln!(
        "huggingface_hub {version} over {transport:?} made {} requests:\n{}",
        entries.len(),
        format_log(&entries)
    );

    // Every byte the client wrote matches the fixture.
    assert_tree_matches(&hub, "org/model", &path_of(&out, "model_snapshot"));
    assert_same_file(
        &hub,
        "org/model",
        "refs/pr/1",
        "PR_1.md",
        &path_of(&out, "model_pr_file"),
    );
    assert_same_file(
        &hub,
        "org/model",
        "v1.0",
        "config.json",
        &path_of(&out, "model_tag_file"),
    );
    assert_same_file(
        &hub,
        "org/data",
        "main",
        "odd names/my file+1#?.txt",
        &path_of(&out, "dataset_odd_file"),
    );
    assert_tree_matches(&hub, "org/data", &path_of(&out, "dataset_local_dir"));
    assert_same_file(
        &hub,
        "org/private",
        "main",
        "config.json",
        &path_of(&out, "private_config"),
    );
    assert_same_file(
        &hub,
        "org/private",
        "main",
        "weights.bin",
        &path_of(&out, "private_weights"),
    );
    assert_tree_matches(&hub, "org/gated", &path_of(&out, "gated_snapshot"));

    check_requests(&hub, &entries);
}

/// What the client asked for, per file kind, and how the fake hub answered.
fn check_requests(hub: &FakeHub, entries: &[LogEntry]) {
    // The fake hub answered every request without an error, and the token never reached
    // the CDN.
    assert!(
        entries.iter().all(|e| e.status < 400),
        "error answers: {}",
        format_log(entries)
    );
    assert_eq!(hub.log().cdn_requests_with_authorization(), 0);
    assert!(
        entries
            .iter()
            .filter(|e| e.origin == Origin::Hub)
            .all(|e| e.has_authorization),
        "HF_TOKEN is sent to the hub on every request"
    );

    // The request shapes of the client, per file kind.
    let model_sha = hub.commit("org/model", "main").unwrap();
    let data_sha = hub.commit("org/data", "main").unwrap();
    assert_eq!(
        count(
            entries,
            "GET",
            Route::Api,
            "/api/models/org/model/revision/main"
        ),
        1
    );
    assert_eq!(
        count(
            entries,
            "GET",
            Route::Api,
            "/api/datasets/org/data/revision/main"
        ),
        1
    );
    for (repo, prefix, sha) in [
        ("org/model", "/", &model_sha),
        ("org/data", "/datasets/", &data_sha),
    ] {
        let types = if prefix == "/" { "models" } else { "datasets" };
        let tree_pages = count(
            entries,
            "GET",
            Route::Api,
            &format!("/api/{types}/{repo}/tree/{sha}"),
        );
        assert_eq!(tree_pages, 1, "one tree page for {repo}");
        for file in hub.files(repo) {
            let resolve = format!("{prefix}{repo}/resolve/{sha}/");
            let matching = |e: &&LogEntry| {
                e.route == Route::Resolve
                    && e.path.starts_with(&resolve)
                    && percent_decode(&e.path[resolve.len()..]) == file.path
            };
            let heads: Vec<&LogEntry> = entries
                .iter()
                .filter(|e| e.method == "HEAD")
                .filter(matching)
                .collect();
            assert!(!heads.is_empty(), "a resolve HEAD for {repo}:{}", file.path);
            let expected_status = if file.is_lfs() { 302 } else { 307 };
            assert!(
                heads.iter().all(|e| e.status == expected_status),
                "{}",
                file.path
            );
        }
    }
    // LFS files: GETs go to the CDN, exactly one per LFS file downloaded.
    let cdn_gets = entries
        .iter()
        .filter(|e| e.origin == Origin::Cdn && e.method == "GET")
        .count();
    let lfs_files = ["org/model", "org/data", "org/gated"]
        .iter()
        .map(|r| hub.files(r).iter().filter(|f| f.is_lfs()).count())
        .sum::<usize>()
        + 1; // org/private weights.bin
    assert_eq!(cdn_gets, lfs_files, "one CDN GET per LFS file");
    check_regular_requests(hub, entries, &model_sha, &data_sha);
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_client_over_http1() {
    real_client_downloads_everything(Transport::Http1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_client_over_tls() {
    real_client_downloads_everything(Transport::Tls).await;
}
