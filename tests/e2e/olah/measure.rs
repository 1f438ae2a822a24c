//! Not a test but a measurement, run by hand: hfd-rs next to
//! huggingface_hub's `snapshot_download` and aria2c, through the same Olah,
//! for a model and a dataset. Prints sizes, wall time and the requests Olah
//! logged for each; asserts only that every byte arrived.
//!
//! ```text
//! cargo test --release --test e2e olah::measure -- --ignored --nocapture
//! ```
//!
//! `OLAH_MEASURE_MIB` sets the model's LFS size (default 256).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::git_repo::GitRepo;
use super::{DATASET, MODEL, Peer, assert_same_files};
use crate::support::run_with;

fn big_model(mib: usize) -> GitRepo {
    let half = (mib << 20) / 2;
    GitRepo::model(MODEL)
        .regular("README.md", "---\nlicense: mit\n---\n# measured model\n")
        .regular("config.json", "{\"model_type\": \"olah-measure\"}\n")
        .regular("tokenizer.json", hfd_testkit::seeded_bytes(1, 2_000_000))
        .lfs(
            "model-00001-of-00002.safetensors",
            hfd_testkit::seeded_bytes(2, half + 1),
        )
        .lfs(
            "model-00002-of-00002.safetensors",
            hfd_testkit::seeded_bytes(3, half - 1),
        )
}

fn big_dataset() -> GitRepo {
    let mut repo = GitRepo::dataset(DATASET).regular("README.md", "# measured data\n");
    for i in 0..24u64 {
        let split = ["train", "test", "validation"][(i % 3) as usize];
        repo = repo.lfs(
            &format!("data/{split}/shard-{i:03}/part.parquet"),
            hfd_testkit::seeded_bytes(100 + i, 2 << 20),
        );
        repo = repo.regular(
            &format!("data/{split}/shard-{i:03}/meta.json"),
            format!("{{\"shard\": {i}}}\n"),
        );
    }
    repo
}

/// One tool's run: wall time and Olah's request count.
struct Figure {
    tool: &'static str,
    repo: &'static str,
    bytes: u64,
    files: usize,
    wall: Duration,
    requests: usize,
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
async fn measure_hfd_rs_against_reference_clients() {
    let mib = std::env::var("OLAH_MEASURE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let Some(peer) = Peer::start(big_model(mib), big_dataset()) else {
        return;
    };
    let mut figures = Vec::new();
    for (repo, name) in [(&peer.model, "model"), (&peer.dataset, "dataset")] {
        for tool in ["hfd-rs", "snapshot_download", "aria2c"] {
            let dir = peer.dir.path().join(format!("{tool}-{name}"));
            let before = peer.olah.requests().len();
            let started = Instant::now();
            if !run_tool(&peer, tool, repo, &dir).await {
                continue;
            }
            let wall = started.elapsed();
            assert_same_files(repo, &dir);
            figures.push(Figure {
                tool,
                repo: name,
                bytes: repo.total_bytes(),
                files: repo.files().len(),
                wall,
                requests: peer.olah.requests().len() - before,
            });
        }
    }
    println!("\nthrough Olah {}:", peer.olah.endpoint());
    println!("| repo | files | MiB | tool | wall s | requests to Olah |");
    println!("|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} | {} | {:.1} | {} | {:.2} | {} |",
            f.repo,
            f.files,
            f.bytes as f64 / f64::from(1 << 20),
            f.tool,
            f.wall.as_secs_f64(),
            f.requests
        );
    }
}

/// Downloads `repo` into `dir` with `tool`; `false` when the tool is not
/// installed.
async fn run_tool(peer: &Peer, tool: &str, repo: &GitRepo, dir: &Path) -> bool {
    let endpoint = peer.olah.endpoint();
    let id = if repo.kind() == "datasets" {
        DATASET
    } else {
        MODEL
    };
    match tool {
        "hfd-rs" => {
            let home = peer.dir.path().join("home");
            std::fs::create_dir_all(&home).expect("mkdir");
            let dir = dir.to_str().expect("utf-8");
            let mut args = vec![id, "--local-dir", dir, "--endpoint", endpoint, "-q"];
            if repo.kind() == "datasets" {
                args.push("--dataset");
            }
            let run = run_with(&args, &[], &home, Duration::from_mins(10)).await;
            assert_eq!(run.code, 0, "{}", run.stderr);
            true
        }
        "snapshot_download" => {
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import sys; from huggingface_hub import snapshot_download; \
                     snapshot_download(sys.argv[1], repo_type=sys.argv[2], local_dir=sys.argv[3])",
                    id,
                    &repo.kind()[..repo.kind().len() - 1],
                ])
                .arg(dir)
                .env("HF_ENDPOINT", endpoint)
                .env("HF_HOME", peer.dir.path().join("hf-home"))
                .env("HF_HUB_DISABLE_TELEMETRY", "1")
                .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                .env_remove("HF_TOKEN")
                .output()
                .expect("spawn python3");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
        _ => {
            // hfd.sh's way: one aria2c input file, one URL per file.
            let prefix = if repo.kind() == "datasets" {
                "datasets/"
            } else {
                ""
            };
            let mut list = String::new();
            for file in repo.files() {
                let _ = writeln!(
                    list,
                    "{endpoint}/{prefix}{id}/resolve/main/{}\n  out={}",
                    file.path, file.path
                );
            }
            let list_path = dir.with_extension("aria2");
            std::fs::write(&list_path, list).expect("write aria2c input");
            let out = Command::new("aria2c")
                .args([
                    "-x",
                    "8",
                    "-s",
                    "8",
                    "-j",
                    "4",
                    "-k",
                    "1M",
                    "--console-log-level=warn",
                ])
                .args(["--summary-interval=0", "--auto-file-renaming=false", "-d"])
                .arg(dir)
                .arg("-i")
                .arg(&list_path)
                .output();
            match out {
                Ok(out) => {
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stdout)
                    );
                    true
                }
                Err(e) => {
                    println!("aria2c skipped: {e}");
                    false
                }
            }
        }
    }
}
