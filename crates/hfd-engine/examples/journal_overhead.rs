//! Journal overhead: the same download with the resume journal off and on.
//!
//! An in-memory source serves one file as fast as the engine takes it, so
//! the disk path (writes, flushes, journal commits) is all that differs.
//! Runs alternate off/on and the median of each is reported.
//!
//! ```text
//! cargo run --release -p hfd-engine --example journal_overhead -- [MiB] [runs] [dir] [commit ms]
//! ```
//! Defaults: 512 MiB, 3 runs each, a temporary folder under `$TMPDIR`, the
//! default commit interval (`EngineConfig::journal_interval`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use hfd_engine::{
    BodyStream, Engine, EngineConfig, FileIdentity, FileJob, FileKey, NoopReporter, RangeSource,
    SlotId, SourceError,
};
use hfd_types::ByteRange;
use tokio_util::sync::CancellationToken;

const CHUNK: u64 = 64 * 1024;

/// Serves byte `i` as `pattern[i % pattern.len()]`, in 64 KiB chunks.
struct Pattern {
    pattern: Bytes,
}

impl Pattern {
    fn stream(&self, start: u64, end: u64) -> BodyStream {
        let pattern = self.pattern.clone();
        let len = pattern.len() as u64;
        futures::stream::iter((start..end).step_by(CHUNK as usize).map(move |at| {
            let n = CHUNK.min(end - at);
            let from = at % len;
            let to = (from + n).min(len);
            let mut chunk = pattern.slice(from as usize..to as usize);
            if to - from < n {
                let mut v = chunk.to_vec();
                v.extend_from_slice(&pattern[..(n - (to - from)) as usize]);
                chunk = Bytes::from(v);
            }
            Ok(chunk)
        }))
        .boxed()
    }
}

impl RangeSource for Pattern {
    async fn fetch_range(
        &self,
        _key: FileKey,
        range: ByteRange,
        _slot: SlotId,
    ) -> Result<BodyStream, SourceError> {
        Ok(self.stream(range.start(), range.end()))
    }

    async fn fetch_whole(&self, _key: FileKey, _slot: SlotId) -> Result<BodyStream, SourceError> {
        Err(SourceError::fatal("whole-file requests are not used here"))
    }
}

async fn once(
    config: &EngineConfig,
    dir: &Path,
    size: u64,
    journal: bool,
    source: &Arc<Pattern>,
) -> Duration {
    let partial = dir.join("model.bin.hfd-0.part");
    let out = dir.join("model.bin");
    let mut job = FileJob::new(FileKey(0), size, &partial, &out);
    if journal {
        job = job.with_identity(FileIdentity::new("org/m", "c", "model.bin", size, "etag"));
    }
    let engine = Engine::new(config.clone(), Arc::clone(source), Arc::new(NoopReporter))
        .expect("valid config");
    let started = Instant::now();
    let summary = engine
        .run(vec![job], CancellationToken::new())
        .await
        .expect("run");
    let elapsed = started.elapsed();
    assert!(summary.is_success(), "{summary:?}");
    std::fs::remove_file(&out).expect("remove output");
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(512);
    let runs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let tmp = match args.get(3) {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let size = mib << 20;
    let mut x: u64 = 0x1234_5678;
    let pattern: Vec<u8> = (0..(1 << 20) + 7)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let source = Arc::new(Pattern {
        pattern: Bytes::from(pattern),
    });
    let mut config = EngineConfig::default();
    if let Some(ms) = args.get(4).and_then(|a| a.parse::<u64>().ok()) {
        config.journal_interval = Duration::from_millis(ms);
    }
    println!(
        "{mib} MiB, {} connections, min split {}, journal commit every {:?}, {runs} runs each, in {}",
        config.connections_per_file,
        config.min_split_size,
        config.journal_interval,
        tmp.path().display()
    );
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        off.push(once(&config, tmp.path(), size, false, &source).await);
        on.push(once(&config, tmp.path(), size, true, &source).await);
    }
    let rate = |d: Duration| size as f64 / d.as_secs_f64() / f64::from(1 << 20);
    let (off, on) = (median(off), median(on));
    println!("journal off: {off:.2?} ({:.0} MiB/s)", rate(off));
    println!("journal on:  {on:.2?} ({:.0} MiB/s)", rate(on));
    println!(
        "overhead: {:+.1} %",
        (on.as_secs_f64() / off.as_secs_f64() - 1.0) * 100.0
    );
}
