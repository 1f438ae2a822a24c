//! `hfd-rs serve` as users start it: a cache hfd-rs wrote is served, then
//! hfd-rs downloads from it with many connections per file.

use std::process::Stdio;
use std::time::Duration;

use hfd_testkit::{FakeHub, MIB, RepoFixture};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::support::{assert_same_files, bin, run, run_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_turns_a_cache_into_a_mirror_hfd_rs_downloads_from() {
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model("org/model")
                .regular_file("config.json", "{}\n")
                .lfs_file("model.safetensors", 2 * MIB + 5, 3),
        )
        .start()
        .await
        .expect("fake hub starts");
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let (cache_s, home) = (cache.to_str().unwrap(), tmp.path());
    run_with(
        &[
            "org/model",
            "--cache-dir",
            cache_s,
            "--endpoint",
            hub.endpoint(),
            "-q",
        ],
        &[],
        home,
        Duration::from_mins(1),
    )
    .await
    .expect_code(0);

    let mut server = tokio::process::Command::new(bin())
        .args(["serve", "--cache-dir", cache_s, "--listen", "127.0.0.1:0"])
        .env_clear()
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn hfd-rs serve");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve prints its address")
        .unwrap()
        .unwrap();
    assert!(first.contains("loopback only"), "{first}");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("an http:// address")
        .to_owned();
    // The request log is read (and kept) while the client runs.
    let log = tokio::spawn(async move {
        let mut out = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            out.push(line);
        }
        out
    });

    let out = tmp.path().join("out");
    run_with(
        &[
            "org/model",
            "--endpoint",
            &url,
            "--local-dir",
            out.to_str().unwrap(),
            "-x",
            "8",
            "-k",
            "256K",
            "-q",
        ],
        &[],
        home,
        Duration::from_mins(1),
    )
    .await
    .expect_code(0);
    assert_same_files(&hub, "org/model", &out);

    server.kill().await.unwrap();
    let log = log.await.unwrap();
    let ranges = log
        .iter()
        .filter(|l| {
            l.contains("/resolve/") && l.contains("model.safetensors") && l.contains("\" 206 ")
        })
        .count();
    assert!(
        ranges >= 4,
        "the LFS file came in {ranges} ranges:\n{}",
        log.join("\n")
    );
}

#[tokio::test]
async fn serve_refuses_bad_folders_with_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let r = run(&["serve", "--local-dir", missing.to_str().unwrap()]).await;
    r.expect_code(2);
    assert!(r.stderr.contains("is not a folder"), "{}", r.stderr);
    // A folder with no record of its repo needs REPO=DIR.
    let r = run(&["serve", "--local-dir", tmp.path().to_str().unwrap()]).await;
    r.expect_code(2);
    assert!(r.stderr.contains("org/name=DIR"), "{}", r.stderr);
}
