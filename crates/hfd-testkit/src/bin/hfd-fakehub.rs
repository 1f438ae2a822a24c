//! `hfd-fakehub`: the testkit's fake Hugging Face Hub as a standalone server, for the
//! README's offline demo and for benches against other downloaders.
//!
//! Prints one line (`endpoint=… cdn=… [ca=…]`) on stdout, then serves until killed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use hfd_testkit::{FakeHub, FakeHubBuilder, Fault, FaultKind, FaultTarget, RepoFixture, Transport};

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
    /// Answer 429 (no Retry-After) on a client's connections to a listener
    /// beyond this many open at once, as a mirror's per-IP connection limit.
    #[arg(long, value_name = "N")]
    max_conns_per_client: Option<usize>,
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
    /// Largest file of `fake/dataset` (at least 1K). When given, every file's content is
    /// generated on demand instead of held in memory: for datasets of 10^5 files.
    #[arg(long, value_name = "SIZE")]
    dataset_max_file_size: Option<String>,
    /// Delay added before every response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// A token accepted with access to everything (repeatable).
    #[arg(long)]
    token: Vec<String>,
    /// Tree entries per page.
    #[arg(long, default_value_t = 1000)]
    page_size: usize,
    /// Serve the hub under this path prefix (e.g. `/hf`), as a worker or
    /// reverse proxy mounts it; the endpoint is then `http://127.0.0.1:PORT/hf`.
    #[arg(long, value_name = "PATH")]
    mount_prefix: Option<String>,
    /// Also serve `fake/gated`, a gated model only --token values may read.
    #[arg(long)]
    gated: bool,
    /// A token the hub knows but that has no access to gated or private repos.
    #[arg(long, value_name = "TOKEN")]
    token_without_access: Vec<String>,
    /// Seconds a CDN URL stays valid (`X-Amz-Expires`). Default: 3600.
    #[arg(long, value_name = "SECONDS")]
    cdn_url_ttl: Option<u64>,
    /// Answer 400 to CDN requests carrying Authorization, as S3 does.
    #[arg(long)]
    strict_cdn: bool,
    /// Inject a fault, as the tests do (repeatable): `KIND[@TARGET][*N]`, KIND one of
    /// reset-after=BYTES, stall-after=BYTES:SECS, status=CODE, rate-limited=SECS,
    /// delay=MS, short-body=BYTES, long-body=BYTES, ignore-range, wrong-content-range,
    /// change-etag, expired-url, gzip-body, downgrade-redirect, redirect-loop;
    /// TARGET one of any (default), hub, api, resolve, cdn; *N fires N times
    /// (default: always). E.g. `status=503@cdn*3`, `stall-after=1M:30@cdn`.
    #[arg(long, value_name = "SPEC")]
    fault: Vec<String>,
}

/// `KIND[@TARGET][*N]` as a [`Fault`].
fn parse_fault(spec: &str) -> anyhow::Result<Fault> {
    let (rest, times) = match spec.rsplit_once('*') {
        Some((rest, n)) => (
            rest,
            Some(
                n.parse::<u64>()
                    .with_context(|| format!("bad count in {spec:?}"))?,
            ),
        ),
        None => (spec, None),
    };
    let (kind, target) = match rest.split_once('@') {
        Some((kind, target)) => (kind, target),
        None => (rest, "any"),
    };
    let (name, value) = kind.split_once('=').unwrap_or((kind, ""));
    let number = || -> anyhow::Result<u64> {
        parse_size(value).with_context(|| format!("{name} needs a number in {spec:?}"))
    };
    let kind = match name {
        "reset-after" => FaultKind::ResetAfterBytes(number()?),
        "stall-after" => {
            let (bytes, secs) = value
                .split_once(':')
                .with_context(|| format!("stall-after=BYTES:SECS in {spec:?}"))?;
            FaultKind::StallAfterBytes {
                bytes: parse_size(bytes)?,
                duration: Duration::from_secs(secs.parse().context("stall seconds")?),
            }
        }
        "status" => FaultKind::Status(
            value
                .parse()
                .with_context(|| format!("status code in {spec:?}"))?,
        ),
        "rate-limited" => FaultKind::RateLimited {
            retry_after_secs: number()?,
        },
        "delay" => FaultKind::Delay(Duration::from_millis(number()?)),
        "short-body" => FaultKind::ShortBody { missing: number()? },
        "long-body" => FaultKind::LongBody { extra: number()? },
        "ignore-range" => FaultKind::IgnoreRange,
        "wrong-content-range" => FaultKind::WrongContentRange,
        "change-etag" => FaultKind::ChangeEtag,
        "expired-url" => FaultKind::ExpiredUrl,
        "gzip-body" => FaultKind::GzipBody,
        "downgrade-redirect" => FaultKind::DowngradeRedirect,
        "redirect-loop" => FaultKind::RedirectLoop,
        other => anyhow::bail!("unknown fault kind {other:?} in {spec:?}"),
    };
    let target = match target {
        "any" => FaultTarget::Any,
        "hub" => FaultTarget::Hub,
        "api" => FaultTarget::Api,
        "resolve" => FaultTarget::Resolve,
        "cdn" => FaultTarget::Cdn,
        other => anyhow::bail!("unknown fault target {other:?} in {spec:?}"),
    };
    let fault = Fault::new(kind).on(target);
    Ok(match times {
        Some(n) => fault.times(n),
        None => fault.always(),
    })
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

/// The per-connection rates and the per-client connection cap of `args`.
fn with_limits(mut builder: FakeHubBuilder, args: &Args) -> anyhow::Result<FakeHubBuilder> {
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
    if let Some(cap) = args.max_conns_per_client {
        builder = builder.max_connections_per_client(cap);
    }
    Ok(builder)
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
    let dataset = match &args.dataset_max_file_size {
        Some(size) => RepoFixture::synthetic_dataset_generated(
            "fake/dataset",
            args.dataset_files,
            parse_size(size)?,
            args.seed,
        ),
        None => RepoFixture::synthetic_dataset("fake/dataset", args.dataset_files, args.seed),
    };
    let mut builder = FakeHub::builder()
        .repo(model)
        .repo(dataset)
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
    if let Some(prefix) = &args.mount_prefix {
        builder = builder.mount_prefix(prefix);
    }
    for token in &args.token {
        builder = builder.token(token);
    }
    for token in &args.token_without_access {
        builder = builder.token_without_access(token);
    }
    if args.gated {
        builder = builder.repo(
            RepoFixture::model("fake/gated")
                .gated()
                .regular_file("config.json", "{\"gated\": true}\n"),
        );
    }
    if let Some(ttl) = args.cdn_url_ttl {
        builder = builder.cdn_url_ttl(Duration::from_secs(ttl));
    }
    builder = builder.strict_cdn(args.strict_cdn);
    let faults = args
        .fault
        .iter()
        .map(|spec| parse_fault(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    builder = with_limits(builder, &args)?;
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
    for fault in faults {
        hub.faults().inject(fault);
    }
    let ca = hub
        .ca_cert_path()
        .map(|p| format!(" ca={}", p.display()))
        .unwrap_or_default();
    println!("endpoint={} cdn={}{ca}", hub.endpoint(), hub.cdn_endpoint());
    tokio::signal::ctrl_c().await?;
    drop(hub);
    Ok(())
}
