//! `hfd-fakehub`: the testkit's fake Hugging Face Hub as a standalone server, for the
//! README's offline demo and for benches against other downloaders.
//!
//! Prints one line (`endpoint=… cdn=… [ca=…]`) on stdout, then serves until killed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use hfd_testkit::{FakeHub, RepoFixture, Transport};

#[derive(Debug, Parser)]
#[command(name = "hfd-fakehub", about = "A fake Hugging Face Hub on 127.0.0.1")]
struct Args {
    /// Port of the hub listener (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Port of the CDN listener LFS redirects point at (0 = any free port).
    #[arg(long, default_value_t = 0)]
    cdn_port: u16,
    /// Throttle every TCP connection to this many bytes per second (e.g. 5M).
    #[arg(long, value_name = "SIZE")]
    rate_per_conn: Option<String>,
    /// Throttle one connection in four to this rate instead (e.g. 512K); needs --rate-per-conn.
    #[arg(long, value_name = "SIZE")]
    slow_rate_per_conn: Option<String>,
    /// Serve TLS (ALPN h2 + http/1.1) with a generated CA; its path is printed.
    #[arg(long, conflicts_with = "h2c")]
    tls: bool,
    /// Serve HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on plain TCP.
    #[arg(long)]
    h2c: bool,
    /// Seed of generated content.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Serve each `ORG/NAME` folder two levels below DIR as a model repo.
    #[arg(long, value_name = "DIR")]
    repos: Option<PathBuf>,
    /// Size of the synthetic model `fake/model`'s LFS file `model.safetensors` (e.g. 512M).
    #[arg(long, default_value = "64M", value_name = "SIZE")]
    model_size: String,
    /// Number of extra LFS shards (`model-0000N.safetensors`) of --model-size in `fake/model`.
    #[arg(long, default_value_t = 0)]
    model_shards: u32,
    /// Number of small files of the synthetic dataset `fake/dataset`.
    #[arg(long, default_value_t = 200)]
    dataset_files: usize,
    /// Delay added before every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// A token accepted with access to everything (repeatable).
    #[arg(long)]
    token: Vec<String>,
    /// Tree entries per page.
    #[arg(long, default_value_t = 1000)]
    page_size: usize,
}

fn parse_size(s: &str) -> anyhow::Result<u64> {
    let trimmed = s.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (num, suffix) = trimmed.split_at(split);
    let n: u64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => anyhow::bail!("invalid size suffix in {s:?}"),
    };
    Ok(n << shift)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let model_size = parse_size(&args.model_size)?;
    let mut model = RepoFixture::synthetic_model("fake/model", model_size, args.seed);
    for i in 1..=args.model_shards {
        model = model.lfs_file(
            &format!("model-{i:05}.safetensors"),
            model_size,
            args.seed + u64::from(i),
        );
    }
    let mut builder = FakeHub::builder()
        .repo(model)
        .repo(RepoFixture::synthetic_dataset(
            "fake/dataset",
            args.dataset_files,
            args.seed,
        ))
        .ports(args.port, args.cdn_port)
        .latency(Duration::from_millis(args.latency_ms))
        .tree_page_size(args.page_size)
        .transport(if args.tls {
            Transport::Tls
        } else if args.h2c {
            Transport::H2c
        } else {
            Transport::Http1
        });
    for token in &args.token {
        builder = builder.token(token);
    }
    if let Some(rate) = &args.rate_per_conn {
        let fast = parse_size(rate)?;
        let slow = args
            .slow_rate_per_conn
            .as_deref()
            .map(parse_size)
            .transpose()?;
        builder = builder.rate_chooser(move |_, index| match slow {
            Some(slow) if index % 4 == 0 => Some(slow),
            _ => Some(fast),
        });
    }
    if let Some(dir) = &args.repos {
        for org in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let org = org?;
            if !org.file_type()?.is_dir() {
                continue;
            }
            for repo in std::fs::read_dir(org.path())? {
                let repo = repo?;
                if repo.file_type()?.is_dir() {
                    let id = format!(
                        "{}/{}",
                        org.file_name().to_string_lossy(),
                        repo.file_name().to_string_lossy()
                    );
                    builder = builder.repo(RepoFixture::from_dir(&id, repo.path()));
                }
            }
        }
    }
    let hub = builder.start().await.context("starting the fake hub")?;
    let ca = hub
        .ca_cert_path()
        .map(|p| format!(" ca={}", p.display()))
        .unwrap_or_default();
    println!("endpoint={} cdn={}{ca}", hub.endpoint(), hub.cdn_endpoint());
    tokio::signal::ctrl_c().await?;
    drop(hub);
    Ok(())
}
