//! `--cache`: the hub cache layout, judged by huggingface_hub itself.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use hfd::FileAction;
use hfd_testkit::{CommitChange, FakeHub, MIB, RepoFixture};

use crate::{
    CHECK_CACHE, cache_request, count_actions, dataset, downloader, file_requests, model, path_of,
    python_available, resolved_path, run, run_python, start_hub,
};

fn folder(repo_type: &str, id: &str) -> String {
    format!("{repo_type}s--{}", id.replace('/', "--"))
}

/// Names in `blobs/`.
fn blob_names(repo_dir: &Path) -> BTreeSet<String> {
    fs::read_dir(repo_dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// Checks the layout of one repo at `main` against the fixture, as the
/// docs/hub-protocol.md §9 describes it, and returns the commit.
fn check_layout(hub: &FakeHub, cache: &Path, repo_type: &str, id: &str) -> String {
    let commit = hub.commit(id, "main").unwrap();
    let repo_dir = cache.join(folder(repo_type, id));
    let main_ref = fs::read(repo_dir.join("refs/main")).unwrap();
    assert_eq!(main_ref, commit.as_bytes(), "refs/main is the bare commit");
    let snapshot = repo_dir.join("snapshots").join(&commit);
    for file in hub.files(id) {
        let entry = snapshot.join(&file.path);
        let meta = fs::symlink_metadata(&entry).unwrap();
        assert!(meta.file_type().is_symlink(), "{} is a symlink", file.path);
        let target = fs::read_link(&entry).unwrap();
        assert!(target.is_relative(), "{}: {}", file.path, target.display());
        let expected: PathBuf = std::iter::repeat_n("..", file.path.matches('/').count() + 2)
            .chain(["blobs", file.etag()])
            .collect();
        assert_eq!(target, expected, "{}", file.path);
        assert_eq!(
            fs::read(&entry).unwrap(),
            hub.file_bytes(id, &file.path).unwrap(),
            "{}",
            file.path
        );
    }
    for name in blob_names(&repo_dir) {
        assert!(
            name.len() == 40 || name.len() == 64,
            "only finished blobs are left in blobs/: {name}"
        );
    }
    assert!(cache.join(".locks").join(folder(repo_type, id)).is_dir());
    let tree: serde_json::Value = serde_json::from_slice(
        &fs::read(repo_dir.join("trees").join(format!("{commit}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(tree["format_version"], 1);
    assert_eq!(
        tree["files"].as_object().unwrap().len(),
        hub.files(id).len(),
        "complete listing in trees/<commit>.json"
    );
    commit
}

/// Runs the offline judge over `repos` (`(repo_type, id)`) and checks what
/// it returned against the fixture; `symlinks` tells how sizes add up in
/// `scan_cache_dir` (copies count as their own blobs).
async fn judge(hub: &FakeHub, cache: &Path, repos: &[(&str, &str)]) {
    let work = tempfile::tempdir().unwrap();
    let spec: Vec<serde_json::Value> = repos
        .iter()
        .map(|(t, id)| {
            serde_json::json!({
                "repo_id": id,
                "repo_type": t,
                "revision": "main",
                "files": hub.files(id).iter().map(|f| f.path.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let spec_path = work.path().join("spec.json");
    fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
    hub.log().clear();
    let out = run_python(
        hub,
        work.path(),
        CHECK_CACHE,
        &[cache.as_os_str(), spec_path.as_os_str()],
        true,
    )
    .await;
    assert!(
        hub.log().entries().is_empty(),
        "the offline judge made no request"
    );
    let scan = &out["scan"];
    assert_eq!(scan["warnings"], serde_json::json!([]), "scan warnings");
    for (repo_type, id) in repos {
        let commit = hub.commit(id, "main").unwrap();
        let snapshot = cache
            .join(folder(repo_type, id))
            .join("snapshots")
            .join(&commit);
        let got = &out["repos"][format!("{repo_type}:{id}")];
        assert_eq!(path_of(&got["snapshot"]), snapshot, "snapshot_download");
        for file in hub.files(id) {
            let found = path_of(&got["files"][&file.path]);
            assert_eq!(found, snapshot.join(&file.path), "hf_hub_download");
            assert_eq!(
                fs::read(&found).unwrap(),
                hub.file_bytes(id, &file.path).unwrap()
            );
            assert_eq!(
                path_of(&got["try_to_load"][&file.path]),
                found,
                "try_to_load_from_cache"
            );
        }
        let repo = scan["repos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["repo_id"] == *id && r["repo_type"] == *repo_type)
            .unwrap_or_else(|| panic!("scan_cache_dir lists {repo_type} {id}: {scan}"));
        let files = hub.files(id);
        // Distinct blobs (symlinks) or one blob per file (copies): both equal
        // the sum over distinct etags here, since the fixtures' files differ.
        let unique: BTreeMap<&str, u64> = files.iter().map(|f| (f.etag(), f.size)).collect();
        let size: u64 = unique.values().sum();
        assert_eq!(repo["refs"], serde_json::json!(["main"]));
        let revisions = repo["revisions"].as_array().unwrap();
        let revision = revisions
            .iter()
            .find(|r| r["commit_hash"] == commit.as_str())
            .unwrap_or_else(|| panic!("scan lists commit {commit}: {repo}"));
        assert_eq!(revision["refs"], serde_json::json!(["main"]));
        assert_eq!(revision["nb_files"], files.len());
        assert_eq!(
            revision["size_on_disk"], size,
            "{id}: scan size of the revision"
        );
        if revisions.len() == 1 {
            assert_eq!(repo["nb_files"], unique.len());
            assert_eq!(repo["size_on_disk"], size, "{id}: scan size");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_library_accepts_the_cache_for_a_model_and_a_dataset() {
    let hub = start_hub(vec![
        RepoFixture::synthetic_model("org/model", 2 * MIB + 5, 3)
            .regular_file("nested/deep/er/extra.txt", "deep\n"),
        RepoFixture::synthetic_dataset("org/data", 40, 9),
    ])
    .await;
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("hub");
    // A stale "known missing" marker for a file we are about to write: left in
    // place, try_to_load_from_cache would report the file as missing.
    let model_commit = hub.commit("org/model", "main").unwrap();
    let marker = cache
        .join("models--org--model/.no_exist")
        .join(&model_commit)
        .join("config.json");
    fs::create_dir_all(marker.parent().unwrap()).unwrap();
    fs::write(&marker, b"").unwrap();

    let dl = downloader(&hub);
    let (plan, report) = run(&dl, &cache_request(model("org/model"), &cache)).await;
    assert_eq!(report.files_done, hub.files("org/model").len());
    assert_eq!(
        plan.local_dir,
        cache
            .join("models--org--model/snapshots")
            .join(&model_commit)
    );
    run(&dl, &cache_request(dataset("org/data"), &cache)).await;

    check_layout(&hub, &cache, "model", "org/model");
    check_layout(&hub, &cache, "dataset", "org/data");
    assert!(!marker.exists(), ".no_exist marker removed");
    assert!(
        fs::read_to_string(cache.join("CACHEDIR.TAG"))
            .unwrap()
            .starts_with("Signature: 8a477f597d28d172789f06886806bc55")
    );

    if python_available() {
        judge(
            &hub,
            &cache,
            &[("model", "org/model"), ("dataset", "org/data")],
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_rerun_is_a_sync_and_revisions_share_blobs() {
    let hub = start_hub(vec![RepoFixture::synthetic_model("org/model", MIB + 1, 5)]).await;
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("hub");
    let repo_dir = cache.join("models--org--model");
    let dl = downloader(&hub);
    let request = cache_request(model("org/model"), &cache);
    run(&dl, &request).await;
    let c1 = check_layout(&hub, &cache, "model", "org/model");

    // Unchanged: no request beyond the listing, the ref is not rewritten.
    let ref_before = fs::metadata(repo_dir.join("refs/main")).unwrap();
    hub.log().clear();
    let (plan, report) = run(&dl, &request).await;
    assert_eq!(count_actions(&plan, FileAction::UpToDate), plan.files.len());
    assert_eq!(report.files_done, 0);
    let entries = hub.log().entries();
    assert!(file_requests(&entries).is_empty(), "{entries:#?}");
    let ref_after = fs::metadata(repo_dir.join("refs/main")).unwrap();
    assert_eq!(
        ref_before.modified().unwrap(),
        ref_after.modified().unwrap(),
        "refs/main written only when it changes"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(ref_before.ino(), ref_after.ino());
    }

    // A new commit changes one file and adds one: the plan says so without a
    // file request, and only those two are fetched; the rest is linked to
    // the blobs the first commit already has.
    let blobs_before = blob_names(&repo_dir);
    let c2 = hub
        .push_commit(
            "org/model",
            CommitChange::new("change one, add one")
                .regular_file("tokenizer/tokenizer.json", "{\"changed\": true}\n")
                .lfs_file("extra.bin", 300_000, 77),
        )
        .unwrap();
    hub.log().clear();
    let plan = dl.plan(&request).await.unwrap();
    assert_eq!(plan.pinned.commit.as_str(), c2);
    assert_eq!(count_actions(&plan, FileAction::New), 2);
    assert_eq!(count_actions(&plan, FileAction::UpToDate), 3);
    assert_eq!(
        plan.bytes_to_fetch(),
        "{\"changed\": true}\n".len() as u64 + 300_000
    );
    assert!(file_requests(&hub.log().entries()).is_empty());
    let (_, report) = run(&dl, &request).await;
    assert_eq!(report.files_done, 2);
    let entries = hub.log().entries();
    let fetched: BTreeSet<String> = entries
        .iter()
        .filter_map(|e| resolved_path(e, &c2))
        .collect();
    assert_eq!(
        fetched,
        BTreeSet::from([
            "extra.bin".to_owned(),
            "tokenizer/tokenizer.json".to_owned()
        ])
    );
    check_layout(&hub, &cache, "model", "org/model");
    let blobs_after = blob_names(&repo_dir);
    assert_eq!(blobs_after.len(), blobs_before.len() + 2);
    assert!(blobs_before.is_subset(&blobs_after));
    for unchanged in ["config.json", "README.md", "model.safetensors"] {
        assert_eq!(
            fs::read_link(repo_dir.join("snapshots").join(&c1).join(unchanged)).unwrap(),
            fs::read_link(repo_dir.join("snapshots").join(&c2).join(unchanged)).unwrap(),
            "{unchanged} shares its blob across revisions"
        );
    }
    // The first snapshot is intact.
    assert_eq!(
        fs::read(
            repo_dir
                .join("snapshots")
                .join(&c1)
                .join("tokenizer/tokenizer.json")
        )
        .unwrap(),
        hub.file_bytes_at("org/model", &c1, "tokenizer/tokenizer.json")
            .unwrap()
    );

    // --force fetches everything again.
    let mut forced = request.clone();
    forced.fetch_policy = hfd::FetchPolicy::RefetchAll;
    hub.log().clear();
    let (plan, report) = run(&dl, &forced).await;
    assert_eq!(count_actions(&plan, FileAction::UpToDate), 0);
    assert_eq!(report.files_done, plan.files.len());
    let fetched: BTreeSet<String> = hub
        .log()
        .entries()
        .iter()
        .filter_map(|e| resolved_path(e, &c2))
        .collect();
    assert_eq!(fetched.len(), plan.files.len());
    check_layout(&hub, &cache, "model", "org/model");

    if python_available() {
        judge(&hub, &cache, &[("model", "org/model")]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_files_are_one_blob_and_one_download() {
    let weights = hfd_testkit::seeded_bytes(4, 200_000);
    let hub = start_hub(vec![
        RepoFixture::model("org/dup")
            .regular_file("a.txt", "same\n")
            .regular_file("copy/of/a.txt", "same\n")
            .lfs_bytes("w1.bin", weights.clone())
            .lfs_bytes("sub/w2.bin", weights),
    ])
    .await;
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("hub");
    let dl = downloader(&hub);
    let request = cache_request(model("org/dup"), &cache);
    let plan = dl.plan(&request).await.unwrap();
    assert_eq!(
        plan.bytes_to_fetch(),
        5 + 200_000,
        "shared content counted once"
    );
    let report = dl
        .download(
            &plan,
            std::sync::Arc::new(hfd::hfd_engine::NoopReporter),
            tokio_util::sync::CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(report.files_done, 4);
    let commit = hub.commit("org/dup", "main").unwrap();
    let fetched: Vec<String> = file_requests(&hub.log().entries())
        .iter()
        .filter_map(|e| resolved_path(e, &commit))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        fetched.len(),
        2,
        "one download per distinct content: {fetched:?}"
    );
    assert_eq!(blob_names(&cache.join("models--org--dup")).len(), 2);
    check_layout(&hub, &cache, "model", "org/dup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_symlinks_the_snapshot_holds_copies_the_library_accepts() {
    let hub = start_hub(vec![RepoFixture::synthetic_model("org/model", MIB + 3, 8)]).await;
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("hub");
    let dl = downloader(&hub);
    let mut request = cache_request(model("org/model"), &cache);
    request.layout = hfd::OutputLayout::HubCache {
        root: cache.clone(),
        entries: hfd::SnapshotEntries::Copies,
    };
    run(&dl, &request).await;
    let commit = hub.commit("org/model", "main").unwrap();
    let repo_dir = cache.join("models--org--model");
    for file in hub.files("org/model") {
        let entry = repo_dir.join("snapshots").join(&commit).join(&file.path);
        assert!(
            fs::symlink_metadata(&entry).unwrap().is_file(),
            "{} is a regular file",
            file.path
        );
        assert_eq!(
            fs::read(&entry).unwrap(),
            hub.file_bytes("org/model", &file.path).unwrap()
        );
        assert!(
            !repo_dir.join("blobs").join(file.etag()).exists(),
            "a new blob is moved into the snapshot, not kept twice"
        );
    }
    assert_eq!(
        fs::read(repo_dir.join("refs/main")).unwrap(),
        commit.as_bytes()
    );
    hub.log().clear();
    let (plan, _) = run(&dl, &request).await;
    assert_eq!(count_actions(&plan, FileAction::UpToDate), plan.files.len());
    assert!(file_requests(&hub.log().entries()).is_empty());
    if python_available() {
        judge(&hub, &cache, &[("model", "org/model")]).await;
    }
}

/// A blob of the right size but wrong bytes already in `blobs/` (a crashed
/// tool, a hostile neighbour in a shared cache) is not adopted: its hash is
/// checked, the file is downloaded and the verified blob replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_of_the_right_size_with_wrong_bytes_is_not_adopted() {
    let hub = start_hub(vec![
        RepoFixture::model("org/planted")
            .regular_file("config.json", "{}")
            .lfs_file("model.bin", MIB, 77),
    ])
    .await;
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("hub");
    let repo_dir = cache.join(folder("model", "org/planted"));
    fs::create_dir_all(repo_dir.join("blobs")).unwrap();
    for file in hub.files("org/planted") {
        let mut wrong = hub.file_bytes("org/planted", &file.path).unwrap();
        for b in &mut wrong {
            *b = !*b;
        }
        fs::write(repo_dir.join("blobs").join(file.etag()), wrong).unwrap();
    }
    let dl = downloader(&hub);
    let (plan, report) = run(&dl, &cache_request(model("org/planted"), &cache)).await;
    assert_eq!(
        count_actions(&plan, FileAction::UpToDate),
        0,
        "nothing adopted"
    );
    assert_eq!(report.files_done, 2);
    check_layout(&hub, &cache, "model", "org/planted");
    // A rerun finds the verified blobs linked: nothing to fetch.
    let (plan, _) = run(&dl, &cache_request(model("org/planted"), &cache)).await;
    assert_eq!(count_actions(&plan, FileAction::UpToDate), 2);
}
