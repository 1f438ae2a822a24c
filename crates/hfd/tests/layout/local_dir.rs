//! `--local-dir`: huggingface_hub's metadata, sync reruns, and the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hfd::FileAction;
use hfd::hfd_engine::NoopReporter;
use hfd_testkit::{CommitChange, FakeHub, MIB, Origin, RepoFixture, Route};
use tokio_util::sync::CancellationToken;

use crate::{
    HF_LOCAL_DIR, count_actions, dataset, downloader, file_requests, local_request, model,
    python_available, resolved_path, run, run_python, start_hub,
};

fn assert_files_match(hub: &FakeHub, id: &str, dir: &std::path::Path) {
    for file in hub.files(id) {
        assert_eq!(
            fs::read(dir.join(&file.path)).unwrap(),
            hub.file_bytes(id, &file.path).unwrap(),
            "{id}: {}",
            file.path
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hf_download_after_hfd_transfers_no_file_bytes() {
    let hub = start_hub(vec![
        RepoFixture::synthetic_model("org/model", 2 * MIB + 9, 4),
        RepoFixture::synthetic_dataset("org/data", 30, 5),
    ])
    .await;
    let root = tempfile::tempdir().unwrap();
    let model_dir = root.path().join("model");
    let data_dir = root.path().join("data");
    let dl = downloader(&hub);
    run(&dl, &local_request(model("org/model"), &model_dir)).await;
    run(&dl, &local_request(dataset("org/data"), &data_dir)).await;
    assert_files_match(&hub, "org/model", &model_dir);
    assert_files_match(&hub, "org/data", &data_dir);
    let gitignore = fs::read(model_dir.join(".cache/huggingface/.gitignore")).unwrap();
    assert_eq!(gitignore, b"*");
    let commit = hub.commit("org/model", "main").unwrap();
    let metadata =
        fs::read_to_string(model_dir.join(".cache/huggingface/download/config.json.metadata"))
            .unwrap();
    let lines: Vec<&str> = metadata.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], commit);
    assert_eq!(
        lines[1],
        hub.file_info("org/model", "config.json").unwrap().etag()
    );

    if !python_available() {
        return;
    }
    for (repo_type, id, dir) in [
        ("model", "org/model", &model_dir),
        ("dataset", "org/data", &data_dir),
    ] {
        hub.log().clear();
        let work = tempfile::tempdir().unwrap();
        run_python(
            &hub,
            work.path(),
            HF_LOCAL_DIR,
            &[dir.as_os_str(), repo_type.as_ref(), id.as_ref()],
            false,
        )
        .await;
        let entries = hub.log().entries();
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for e in &entries {
            *kinds
                .entry(format!(
                    "{:?} {} {:?} -> {}",
                    e.origin, e.method, e.route, e.status
                ))
                .or_default() += 1;
        }
        eprintln!("huggingface_hub local-dir download of {id} after hfd-rs made: {kinds:#?}");
        let transfers: Vec<_> = entries
            .iter()
            .filter(|e| {
                e.origin == Origin::Cdn
                    || (e.method == "GET"
                        && matches!(e.route, Route::Resolve | Route::ResolveCache))
            })
            .collect();
        assert!(
            transfers.is_empty(),
            "{id}: huggingface_hub fetched file bytes again: {transfers:#?}"
        );
        assert!(
            entries
                .iter()
                .all(|e| e.body_bytes == 0 || e.route == Route::Api),
            "{id}: only API answers carry a body"
        );
        assert_files_match(&hub, id, dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_file_dataset_resyncs_without_file_requests() {
    let hub = start_hub(vec![RepoFixture::synthetic_dataset("org/big", 2000, 11)]).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("big");
    let dl = downloader(&hub);
    let request = local_request(dataset("org/big"), &dir);
    let started = Instant::now();
    let (_, report) = run(&dl, &request).await;
    eprintln!("first download of 2,000 files: {:.2?}", started.elapsed());
    assert_eq!(report.files_done, 2000);

    hub.log().clear();
    let started = Instant::now();
    let (plan, report) = run(&dl, &request).await;
    let noop = started.elapsed();
    eprintln!(
        "no-op resync of 2,000 files: {noop:.2?} ({} requests, all for the plan)",
        hub.log().entries().len()
    );
    assert_eq!(count_actions(&plan, FileAction::UpToDate), 2000);
    assert_eq!(report.files_done, 0);
    let entries = hub.log().entries();
    assert!(
        file_requests(&entries).is_empty(),
        "no resolve, no CDN request"
    );
    assert!(entries.iter().all(|e| e.route == Route::Api));

    // One file changes and one appears upstream: the plan (a dry run) shows
    // exactly that, and the run fetches exactly those.
    let changed = "data/train/shard-00012.jsonl";
    assert!(dir.join(changed).is_file());
    let old_commit = plan.pinned.commit.as_str().to_owned();
    let new_commit = hub
        .push_commit(
            "org/big",
            CommitChange::new("fix one shard")
                .regular_file(changed, "{\"fixed\": true}\n")
                .regular_file("data/new.jsonl", "{\"new\": true}\n"),
        )
        .unwrap();
    hub.log().clear();
    let plan = dl.plan(&request).await.unwrap();
    assert_eq!(count_actions(&plan, FileAction::Changed), 1);
    assert_eq!(count_actions(&plan, FileAction::New), 1);
    assert_eq!(count_actions(&plan, FileAction::UpToDate), 2000 - 1);
    assert_eq!(plan.bytes_to_fetch(), 16 + 14);
    assert!(file_requests(&hub.log().entries()).is_empty());
    let report = dl
        .download(&plan, Arc::new(NoopReporter), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(report.files_done, 2);
    let fetched: BTreeSet<String> = hub
        .log()
        .entries()
        .iter()
        .filter_map(|e| resolved_path(e, &new_commit))
        .collect();
    assert_eq!(
        fetched,
        BTreeSet::from([changed.to_owned(), "data/new.jsonl".to_owned()])
    );
    assert_eq!(fs::read(dir.join(changed)).unwrap(), b"{\"fixed\": true}\n");
    // Unchanged files now name the new commit too, so huggingface_hub asked
    // for that commit needs no request for them either.
    let metadata =
        fs::read_to_string(dir.join(".cache/huggingface/download/README.md.metadata")).unwrap();
    assert!(metadata.starts_with(&new_commit), "{metadata}");
    assert_ne!(old_commit, new_commit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_another_process_is_writing_is_not_clobbered() {
    let hub = start_hub(vec![
        RepoFixture::model("org/locked")
            .regular_file("config.json", "{\"v\": 1}\n")
            .regular_file("other.txt", "other\n"),
    ])
    .await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("m");
    let dl = downloader(&hub);
    let request = local_request(model("org/locked"), &dir);
    run(&dl, &request).await;
    hub.push_commit(
        "org/locked",
        CommitChange::new("v2").regular_file("config.json", "{\"v\": 2}\n"),
    )
    .unwrap();

    // Another process (here: this test) holds the lock huggingface_hub takes
    // while it writes config.json.
    let lock_path = dir.join(".cache/huggingface/download/config.json.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.lock().unwrap();

    let plan = dl.plan(&request).await.unwrap();
    assert_eq!(count_actions(&plan, FileAction::Changed), 1);
    let task = {
        let dl = dl.clone();
        tokio::spawn(async move {
            dl.download(&plan, Arc::new(NoopReporter), CancellationToken::new())
                .await
        })
    };
    // Wait (bounded) until the new version is downloaded: a file this small
    // has no journal and waits for the lock under its partial name, whole.
    let download_dir = dir.join(".cache/huggingface/download");
    let staged = || {
        fs::read_dir(&download_dir).unwrap().any(|e| {
            let e = e.unwrap();
            let path = std::path::PathBuf::from(e.file_name());
            let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
            ["part", "verified"].contains(&ext) && e.metadata().unwrap().len() == 9
        })
    };
    let deadline = Instant::now() + Duration::from_mins(1);
    while !staged() {
        assert!(Instant::now() < deadline, "the download never finished");
        assert!(
            !task.is_finished(),
            "the download ended while the lock was held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give the publisher a few tries at the lock.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!task.is_finished(), "the run waits for the lock");
    assert_eq!(
        fs::read(dir.join("config.json")).unwrap(),
        b"{\"v\": 1}\n",
        "not clobbered while another process holds the lock"
    );
    drop(lock);
    let report = tokio::time::timeout(Duration::from_mins(1), task)
        .await
        .expect("the run ends once the lock is free")
        .unwrap()
        .unwrap();
    assert_eq!(report.files_done, 1);
    assert_eq!(fs::read(dir.join("config.json")).unwrap(), b"{\"v\": 2}\n");
    assert!(!staged(), "the staged file was published");
    let metadata =
        fs::read_to_string(dir.join(".cache/huggingface/download/config.json.metadata")).unwrap();
    assert!(metadata.starts_with(&hub.commit("org/locked", "main").unwrap()));
}
