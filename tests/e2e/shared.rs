//! Several `hfd-rs` processes on one target (issue #14): each file is
//! claimed by one process and fetched once; the others take other files or
//! wait; all exit 0 with the whole repo in place.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use hfd_testkit::{FakeHub, MIB, RepoFixture, Route};

use crate::support::clean_env;

/// Starts `n` processes at once on the same target; returns their exit
/// codes and stderr.
async fn run_together(
    hub: &FakeHub,
    repo: &str,
    dir: &Path,
    n: usize,
    extra: &[&str],
) -> Vec<(i32, String)> {
    let home = tempfile::tempdir().unwrap();
    let mut children = Vec::new();
    for _ in 0..n {
        let mut cmd = tokio::process::Command::new(crate::support::bin());
        cmd.arg(repo)
            .arg("--dataset")
            .arg("--local-dir")
            .arg(dir)
            .args(["--endpoint", hub.endpoint(), "-j", "8", "--quiet"])
            .args(extra);
        clean_env(&mut cmd, home.path());
        children.push(cmd.spawn().expect("spawn hfd-rs"));
    }
    let mut out = Vec::new();
    for child in children {
        let output = tokio::time::timeout(Duration::from_mins(5), child.wait_with_output())
            .await
            .expect("hfd-rs finished in time")
            .expect("wait");
        out.push((
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    out
}

/// Resolve requests per file path of the run.
fn resolves_per_path(hub: &FakeHub) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for e in hub.log().entries() {
        if e.route == Route::Resolve {
            *counts.entry(e.path.clone()).or_insert(0) += 1;
        }
    }
    counts
}

#[track_caller]
fn assert_complete(hub: &FakeHub, repo: &str, dir: &Path) {
    for file in hub.files(repo) {
        let want = hub.file_bytes(repo, &file.path).unwrap();
        let got = std::fs::read(dir.join(&file.path))
            .unwrap_or_else(|e| panic!("{} missing: {e}", file.path));
        assert!(got == want, "{}: bytes differ", file.path);
    }
}

async fn shared_target(n: usize) {
    let repo = "org/shared";
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::synthetic_dataset(repo, 240, 7)
                .lfs_file("big/a.parquet", 6 * MIB, 1)
                .lfs_file("big/b.parquet", 5 * MIB, 2),
        )
        .rate_per_connection(8 * MIB)
        .start()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let runs = run_together(&hub, repo, &dir, n, &[]).await;
    for (code, stderr) in &runs {
        assert_eq!(*code, 0, "stderr:\n{stderr}");
    }
    assert_complete(&hub, repo, &dir);
    let counts = resolves_per_path(&hub);
    let files = hub.files(repo).len();
    assert_eq!(counts.len(), files, "every file resolved");
    let twice: Vec<_> = counts.iter().filter(|&(_, &c)| c > 1).collect();
    assert!(twice.is_empty(), "resolved more than once: {twice:?}");
    // No claim is left held and nothing is left to do: a rerun is a no-op.
    hub.log().clear();
    let again = run_together(&hub, repo, &dir, 1, &[]).await;
    assert_eq!(again[0].0, 0, "{}", again[0].1);
    assert_eq!(hub.log().resolve_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_target() {
    shared_target(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_share_one_target() {
    shared_target(4).await;
}

/// Starts shard `index` of 4 of `repo` into `dir`.
fn shard_command(
    hub: &FakeHub,
    repo: &str,
    dir: &Path,
    home: &Path,
    index: u32,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(crate::support::bin());
    cmd.arg(repo)
        .arg("--dataset")
        .arg("--local-dir")
        .arg(dir)
        .args(["--endpoint", hub.endpoint(), "-j", "8", "--quiet"])
        .args(["--shard", &format!("{index}/4")]);
    clean_env(&mut cmd, home);
    cmd
}

async fn wait_ok(child: tokio::process::Child) {
    let output = tokio::time::timeout(Duration::from_mins(5), child.wait_with_output())
        .await
        .expect("finished in time")
        .expect("wait");
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sharded_hub_fixture(repo: &str) -> RepoFixture {
    RepoFixture::synthetic_dataset(repo, 200, 3)
        .lfs_file("big/a.parquet", 4 * MIB, 1)
        .lfs_file("big/b.parquet", 3 * MIB, 2)
}

/// Four shards at once into one target: the union is the whole repo, each
/// file resolved once, and `verify` confirms it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_shards_make_one_complete_copy() {
    let repo = "org/sharded";
    let hub = FakeHub::builder()
        .repo(sharded_hub_fixture(repo))
        .start()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let children: Vec<_> = (0..4)
        .map(|i| {
            shard_command(&hub, repo, &dir, work.path(), i)
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        wait_ok(child).await;
    }
    assert_complete(&hub, repo, &dir);
    let counts = resolves_per_path(&hub);
    assert_eq!(counts.len(), hub.files(repo).len());
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
    let verify = crate::support::run_with(
        &[
            "verify",
            dir.to_str().unwrap(),
            "--endpoint",
            hub.endpoint(),
        ],
        &[],
        work.path(),
        Duration::from_mins(2),
    )
    .await;
    verify.expect_code(0);
}

/// `kill -9` of one shard mid-run, then re-running it, completes the repo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shard_rerun_completes_the_repo() {
    let repo = "org/sharded-kill";
    let hub = FakeHub::builder()
        .repo(sharded_hub_fixture(repo))
        .rate_per_connection(2 * MIB)
        .start()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let mut children: Vec<_> = (0..4)
        .map(|i| {
            shard_command(&hub, repo, &dir, work.path(), i)
                .spawn()
                .unwrap()
        })
        .collect();
    let mut victim = children.remove(1);
    // Wait (bounded) until the victim has written something, then kill it.
    for _ in 0..200 {
        if dir.join(".cache/huggingface/download").exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    victim.start_kill().unwrap();
    let _ = victim.wait().await;
    for child in children {
        wait_ok(child).await;
    }
    wait_ok(
        shard_command(&hub, repo, &dir, work.path(), 1)
            .spawn()
            .unwrap(),
    )
    .await;
    assert_complete(&hub, repo, &dir);
}

/// `--dry-run --shard` prints the share; on the 2,000-file dataset the four
/// shares are within 10 % of each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_shares_are_balanced_on_2000_files() {
    let repo = "org/two-thousand";
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset(repo, 2000, 5))
        .start()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let mut shares = Vec::new();
    for i in 0..4 {
        let run = crate::support::run_with(
            &[
                repo,
                "--dataset",
                "--local-dir",
                dir.to_str().unwrap(),
                "--endpoint",
                hub.endpoint(),
                "--dry-run",
                "--shard",
                &format!("{i}/4"),
            ],
            &[],
            work.path(),
            Duration::from_mins(2),
        )
        .await;
        run.expect_code(0);
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("shard {i}/4:")))
            .unwrap_or_else(|| panic!("no shard line in {}", run.stdout));
        // "shard I/4: F of T files, B of TB bytes (P %)"
        let bytes: u64 = line
            .split(", ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        shares.push(bytes);
    }
    let total: u64 = hub.files(repo).iter().map(|f| f.size).sum();
    assert_eq!(shares.iter().sum::<u64>(), total, "every byte in one shard");
    let (lo, hi) = (*shares.iter().min().unwrap(), *shares.iter().max().unwrap());
    assert!((hi - lo) * 10 <= hi, "shares {shares:?}");
    assert!(!dir.join("data").exists(), "a dry run downloads nothing");
    // 1-based input is refused, not guessed.
    let run = crate::support::run_with(
        &[
            repo,
            "--dataset",
            "--local-dir",
            dir.to_str().unwrap(),
            "--endpoint",
            hub.endpoint(),
            "--dry-run",
            "--shard",
            "4/4",
        ],
        &[],
        work.path(),
        Duration::from_mins(1),
    )
    .await;
    run.expect_code(2);
}

/// Every shard pins the first shard's commit: a shard asked for another
/// revision stops (exit 2) naming the record; a plain run that completes the
/// target clears the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_asked_for_another_commit_stops() {
    let repo = "org/pinned";
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset(repo, 20, 9).tag("v1"))
        .start()
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let dir_arg = dir.to_str().unwrap();
    let run = |args: Vec<String>| {
        let home = work.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::support::run_with(&args, &[], &home, Duration::from_mins(1)).await
        }
    };
    let base = |extra: &[&str]| {
        let mut args: Vec<String> = [
            repo,
            "--dataset",
            "--local-dir",
            dir_arg,
            "--endpoint",
            hub.endpoint(),
            "--quiet",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.extend(extra.iter().map(ToString::to_string));
        args
    };
    run(base(&["--shard", "0/2", "--revision", "main"]))
        .await
        .expect_code(0);
    let pin = dir.join(".cache/huggingface/hfd-shard-commit");
    let recorded = std::fs::read_to_string(&pin).unwrap();
    assert!(recorded.starts_with("main\n"), "{recorded}");
    let other = run(base(&["--shard", "1/2", "--revision", "v1"])).await;
    other.expect_code(2);
    assert!(
        other.stderr.contains("pinned to commit"),
        "{}",
        other.stderr
    );
    run(base(&["--shard", "1/2", "--revision", "main"]))
        .await
        .expect_code(0);
    assert_complete(&hub, repo, &dir);
    run(base(&[])).await.expect_code(0);
    assert!(!pin.exists(), "a complete plain run clears the record");
}
