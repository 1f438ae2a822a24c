//! Criterion micro-benches of hfd-rs's hot paths, each reported as bytes per second
//! (`Throughput::Bytes`): inline hashing, the store's two write backends (mmap against pwrite),
//! journaled flushes and journal encoding, `Content-Range` parsing, and the engine's scheduler
//! driving an in-memory range source (no sockets).
//!
//! Run with `cargo bench --bench micro` (add `-- --quick` for a short pass). Peer comparisons
//! against real servers live in `benches/peers.sh`, not here.

use std::convert::Infallible;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt as _;
use hfd_engine::{
    BodyStream, Engine, EngineConfig, FileJob, FileKey, NoopReporter, RangeSource, SlotId,
    SourceError,
};
use hfd_store::{
    Backend, ContentHasher, FileIdentity, JournalHeader, PartialFile, SegmentLayout, StoreConfig,
};
use hfd_types::{ByteRange, ByteSize};
use tokio_util::sync::CancellationToken;

const MIB: u64 = 1 << 20;

/// Deterministic, incompressible-looking bytes.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn hashing(c: &mut Criterion) {
    let data = pattern(MIB as usize);
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Bytes(MIB));
    g.bench_function("sha256_1MiB", |b| {
        b.iter(|| {
            let mut h = ContentHasher::sha256();
            h.update(black_box(&data));
            h.finish()
        });
    });
    g.bench_function("git_sha1_1MiB", |b| {
        b.iter(|| {
            let mut h = ContentHasher::git_sha1(MIB);
            h.update(black_box(&data));
            h.finish()
        });
    });
    g.finish();
}

fn store_config(backend: Backend) -> StoreConfig {
    let mut config = StoreConfig::default();
    config.backend = backend;
    config
}

/// Writes a whole `FILE`-byte partial in `CHUNK`-byte frames from one writer, as a connection
/// streaming a segment does; the file is created (and preallocated) outside the timing.
fn store(c: &mut Criterion) {
    const FILE: u64 = 64 * MIB;
    const CHUNK: usize = 64 * 1024;
    let dir = tempfile::tempdir().expect("tempdir");
    let frame = pattern(CHUNK);
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Bytes(FILE));
    g.sample_size(10);
    for (name, backend) in [
        ("mmap_64MiB", Backend::Mmap),
        ("pwrite_64MiB", Backend::Pwrite),
    ] {
        let config = store_config(backend);
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let path = dir.path().join(name);
                    PartialFile::create(&path, FILE, None, &config).expect("create partial")
                },
                |partial| {
                    let mut writer = partial.writer();
                    let mut offset = 0;
                    while offset < FILE {
                        writer.write_at(offset, &frame).expect("write");
                        offset += CHUNK as u64;
                    }
                    writer.release();
                    partial
                },
                BatchSize::PerIteration,
            );
        });
    }
    g.finish();
}

/// A journaled flush after each 1 MiB written: data sync, record append, journal sync — the
/// cost a group commit amortises. Measured per MiB made durable.
fn journal(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let frame = pattern(MIB as usize);
    let mut g = c.benchmark_group("journal");
    g.throughput(Throughput::Bytes(MIB));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("flush_after_1MiB", |b| {
        b.iter_custom(|iters| {
            let size = iters * MIB;
            let path = dir.path().join("journaled");
            let identity = FileIdentity::new("o/m", "c".repeat(40), "f.bin", size, "e".repeat(64));
            let header = JournalHeader::new(identity, SegmentLayout::new(MIB, 8));
            let (partial, _) = PartialFile::open_or_create(
                &path,
                size,
                None,
                &StoreConfig::default(),
                Some(header),
            )
            .expect("open partial");
            let mut writer = partial.writer();
            let start = Instant::now();
            for i in 0..iters {
                writer.write_at(i * MIB, &frame).expect("write");
                partial.flush().expect("flush");
            }
            let elapsed = start.elapsed();
            writer.release();
            elapsed
        });
    });
    let identity = FileIdentity::new("o/m", "c".repeat(40), "f.bin", 1 << 40, "e".repeat(64));
    let header = JournalHeader::new(identity, SegmentLayout::new(MIB, 8));
    let ranges: Vec<ByteRange> = (0..1024u64)
        .map(|i| ByteRange::new(i * 2 * MIB, i * 2 * MIB + MIB).expect("valid range"))
        .collect();
    let encoded_len = hfd_store::encode(&header, &ranges).len() as u64;
    g.throughput(Throughput::Bytes(encoded_len));
    g.bench_function("encode_1024_records", |b| {
        b.iter(|| hfd_store::encode(black_box(&header), black_box(&ranges)));
    });
    g.finish();
}

fn headers(c: &mut Criterion) {
    let values = [
        "bytes 0-1048575/4294967296",
        "bytes 4293918720-4294967295/4294967296",
        "bytes 1048576-2097151/*",
        " bytes  17-42/100 ",
    ];
    let len: usize = values.iter().map(|v| v.len()).sum();
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("parse_content_range", |b| {
        b.iter(|| {
            for v in &values {
                black_box(hfd_http::parse_content_range(black_box(v)));
            }
        });
    });
    g.finish();
}

/// Serves every range of one in-memory file in 64 KiB frames, like a local server would.
#[derive(Debug)]
struct MemorySource {
    data: Bytes,
}

impl MemorySource {
    fn stream(&self, range: ByteRange) -> BodyStream {
        const FRAME: u64 = 64 * 1024;
        let data = self.data.clone();
        let (start, end) = (range.start(), range.end());
        futures::stream::iter((start..end).step_by(FRAME as usize).map(move |at| {
            let stop = (at + FRAME).min(end);
            Ok::<_, SourceError>(data.slice(at as usize..stop as usize))
        }))
        .boxed()
    }
}

impl RangeSource for MemorySource {
    async fn fetch_range(
        &self,
        _key: FileKey,
        range: ByteRange,
        _slot: SlotId,
    ) -> Result<BodyStream, SourceError> {
        Ok(self.stream(range))
    }

    async fn fetch_whole(&self, _key: FileKey, _slot: SlotId) -> Result<BodyStream, SourceError> {
        let len = self.data.len() as u64;
        Ok(self.stream(ByteRange::new(0, len).expect("non-empty")))
    }
}

/// The whole engine (scheduler, workers, store, no hashing) fetching one 64 MiB file over 8
/// in-memory "connections": the per-byte cost hfd-rs adds on top of the network.
fn engine(c: &mut Criterion) {
    const FILE: u64 = 64 * MIB;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let source = Arc::new(MemorySource {
        data: Bytes::from(pattern(FILE as usize)),
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = EngineConfig::default();
    config.connections_per_file = NonZeroUsize::new(8).expect("8 > 0");
    config.min_split_size = ByteSize::mib(1);
    config.preflight = false;
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Bytes(FILE));
    g.sample_size(10);
    let mut round = 0u64;
    g.bench_function("memory_source_64MiB_x8", |b| {
        b.iter(|| {
            round += 1;
            let final_path = dir.path().join(format!("out-{round}"));
            let job = FileJob::new(
                FileKey(0),
                FILE,
                dir.path().join(format!("part-{round}")),
                &final_path,
            );
            let engine = Engine::new(config.clone(), source.clone(), Arc::new(NoopReporter))
                .expect("engine");
            let summary = runtime
                .block_on(engine.run(vec![job], CancellationToken::new()))
                .expect("engine run");
            assert!(summary.is_success(), "in-memory download failed");
            std::fs::remove_file(final_path).expect("remove output");
            Ok::<_, Infallible>(())
        });
    });
    g.finish();
}

criterion_group!(benches, hashing, store, journal, headers, engine);
criterion_main!(benches);
