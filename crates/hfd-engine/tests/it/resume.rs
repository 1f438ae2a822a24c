//! The resume journal through the engine: group commits while running, a
//! cancelled run resumes without fetching journaled bytes again, other
//! content starts over.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hfd_engine::{
    Engine, EngineConfig, FileIdentity, FileJob, FileKey, FileOutcome, Reporter, Summary,
};
use hfd_store::{RangeSet, decode, journal_path};
use hfd_types::ByteSize;
use tokio_util::sync::CancellationToken;

use crate::source::{Answer, MemSource, content, sha256_of};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 4 * MIB + 777;
const SEED: u64 = 4242;
const CHUNK: u64 = 16 * KIB;
const CONNECTIONS: usize = 4;

fn config() -> EngineConfig {
    let mut c = EngineConfig::default();
    c.connections_per_file = NonZeroUsize::new(CONNECTIONS).unwrap();
    c.max_connections = NonZeroUsize::new(CONNECTIONS).unwrap();
    c.min_split_size = ByteSize::kib(256);
    c.write_batch = ByteSize::kib(64);
    c.journal_interval = Duration::from_millis(50);
    c.hedging = false; // hedges fetch bytes twice on purpose
    c
}

/// ~ CONNECTIONS x 16 KiB per 2 ms = 32 MiB/s: a 4 MiB file takes ~130 ms.
fn throttled() -> MemSource {
    MemSource::new(&[(FileKey(0), SIZE, SEED)], CHUNK)
        .script(|_| Answer::Throttle(Duration::from_millis(2)))
}

struct Paths {
    _dir: tempfile::TempDir,
    partial: PathBuf,
    out: PathBuf,
}

fn paths() -> Paths {
    let dir = tempfile::tempdir().unwrap();
    Paths {
        partial: dir.path().join("model.bin.hfd-0123.part"),
        out: dir.path().join("model.bin"),
        _dir: dir,
    }
}

fn job(p: &Paths, etag: &str) -> FileJob {
    FileJob::new(FileKey(0), SIZE, &p.partial, &p.out)
        .with_expected(sha256_of(SEED, SIZE))
        .with_identity(FileIdentity::new("org/m", "c1", "model.bin", SIZE, etag))
}

fn journaled(partial: &Path) -> RangeSet {
    let bytes = std::fs::read(journal_path(partial)).unwrap_or_default();
    let mut set = RangeSet::new();
    if let Ok(d) = decode(&bytes) {
        for r in d.ranges {
            set.insert(r);
        }
    }
    set
}

#[derive(Default)]
struct Counting {
    bytes: AtomicU64,
    resumed: AtomicU64,
}

impl Reporter for Counting {
    fn on_bytes(&self, _key: FileKey, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn on_file_resumed(&self, _key: FileKey, bytes: u64) {
        self.resumed.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Runs until `bytes` are written, then cancels.
async fn run_and_cancel_after(p: &Paths, etag: &str, bytes: u64) -> Summary {
    let reporter = Arc::new(Counting::default());
    let engine = Engine::new(config(), Arc::new(throttled()), reporter.clone()).unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let watcher = tokio::spawn(async move {
        for _ in 0..2000 {
            if reporter.bytes.load(Ordering::Relaxed) >= bytes {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        trigger.cancel();
    });
    let summary = engine.run(vec![job(p, etag)], cancel).await.unwrap();
    watcher.await.unwrap();
    summary
}

fn delivered(source: &MemSource) -> u64 {
    source
        .requests()
        .iter()
        .map(|r| r.delivered.load(Ordering::Relaxed))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_run_resumes_without_fetching_journaled_bytes() {
    let p = paths();
    let first = run_and_cancel_after(&p, "etag-a", SIZE / 3).await;
    assert!(first.cancelled);
    assert!(matches!(first.files[0].1, FileOutcome::Cancelled));
    // Cancel flushed and journaled what was written.
    let done = journaled(&p.partial);
    assert!(done.total() >= SIZE / 3, "journal holds {}", done.total());
    assert!(done.total() < SIZE);
    assert_eq!(done.total(), first.bytes_written);

    let source = Arc::new(throttled());
    let reporter = Arc::new(Counting::default());
    let engine = Engine::new(config(), Arc::clone(&source), reporter.clone()).unwrap();
    let second = engine
        .run(vec![job(&p, "etag-a")], CancellationToken::new())
        .await
        .unwrap();
    assert!(second.is_success(), "{second:#?}");
    assert_eq!(std::fs::read(&p.out).unwrap(), content(SEED, SIZE));
    assert!(!journal_path(&p.partial).exists());
    // Nothing journaled was asked for again...
    for r in source.requests() {
        let range = r.range.expect("range requests only");
        assert!(!done.overlaps(range), "{range} was journaled");
    }
    // ...so the second run fetched only the rest (plus at most one chunk of
    // overshoot per split request).
    let missing = SIZE - done.total();
    assert_eq!(second.bytes_resumed, done.total());
    assert_eq!(second.bytes_written, missing);
    assert!(delivered(&source) <= missing + source.requests().len() as u64 * CHUNK);
    assert_eq!(reporter.resumed.load(Ordering::Relaxed), done.total());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_is_committed_while_the_file_downloads() {
    let p = paths();
    let partial = p.partial.clone();
    let engine = Engine::new(
        config(),
        Arc::new(throttled()),
        Arc::new(Counting::default()),
    )
    .unwrap();
    let run = tokio::spawn(async move {
        engine
            .run(vec![job(&p, "etag-a")], CancellationToken::new())
            .await
            .unwrap();
        p
    });
    // Before the file completes, the journal on disk already holds
    // records: group commits happen as bytes land, not only at the end.
    let mut seen = 0;
    for _ in 0..2000 {
        if run.is_finished() {
            break;
        }
        seen = seen.max(journaled(&partial).total());
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let p = run.await.unwrap();
    assert!(seen > 0 && seen < SIZE, "journal held {seen} bytes mid-run");
    assert_eq!(std::fs::read(&p.out).unwrap(), content(SEED, SIZE));
}

/// Group commit is by time, not by bytes: with an interval longer than the
/// run, megabytes (many segments per connection) land without a single
/// commit, and the one commit at the cancel records all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_commits_by_time_not_by_bytes() {
    let p = paths();
    let mut c = config();
    c.journal_interval = Duration::from_mins(10);
    let reporter = Arc::new(Counting::default());
    let engine = Engine::new(c, Arc::new(throttled()), reporter.clone()).unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let partial = p.partial.clone();
    let watcher = tokio::spawn(async move {
        let mut journaled_mid_run = 0;
        for _ in 0..4000 {
            journaled_mid_run = journaled_mid_run.max(journaled(&partial).total());
            if reporter.bytes.load(Ordering::Relaxed) >= SIZE * 3 / 4 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        trigger.cancel();
        journaled_mid_run
    });
    let summary = engine.run(vec![job(&p, "etag-t")], cancel).await.unwrap();
    let journaled_mid_run = watcher.await.unwrap();
    assert!(summary.cancelled);
    assert_eq!(
        journaled_mid_run, 0,
        "a commit happened before the interval"
    );
    // 3 MiB written = 12 segments of 256 KiB: the byte trigger this
    // replaced committed every 256 KiB.
    assert!(summary.bytes_written >= SIZE * 3 / 4);
    assert_eq!(journaled(&p.partial).total(), summary.bytes_written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_content_starts_over() {
    let p = paths();
    let first = run_and_cancel_after(&p, "etag-a", SIZE / 3).await;
    assert!(first.cancelled);
    assert!(journaled(&p.partial).total() > 0);
    let source = Arc::new(MemSource::new(&[(FileKey(0), SIZE, SEED)], CHUNK));
    let engine = Engine::new(config(), Arc::clone(&source), Arc::new(Counting::default())).unwrap();
    let second = engine
        .run(vec![job(&p, "etag-b")], CancellationToken::new())
        .await
        .unwrap();
    assert!(second.is_success(), "{second:#?}");
    assert_eq!(second.bytes_resumed, 0);
    assert_eq!(second.bytes_written, SIZE);
    assert_eq!(std::fs::read(&p.out).unwrap(), content(SEED, SIZE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_identity_there_is_no_journal_and_no_resume() {
    let p = paths();
    let plain = || FileJob::new(FileKey(0), SIZE, &p.partial, &p.out);
    let engine = Engine::new(
        config(),
        Arc::new(throttled()),
        Arc::new(Counting::default()),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(40)).await;
        trigger.cancel();
    });
    let first = engine.run(vec![plain()], cancel).await.unwrap();
    assert!(first.cancelled);
    assert!(!journal_path(&p.partial).exists());
    let second = engine
        .run(vec![plain()], CancellationToken::new())
        .await
        .unwrap();
    assert!(second.is_success());
    assert_eq!(second.bytes_resumed, 0);
    assert_eq!(std::fs::read(&p.out).unwrap(), content(SEED, SIZE));
}

/// Inverts the journaled bytes of the partial on disk: the content changed
/// between a killed run and its resume, under the same identity.
fn poison_journaled_bytes(p: &Paths) -> RangeSet {
    let done = journaled(&p.partial);
    let first = done.ranges()[0];
    let mut bytes = std::fs::read(&p.partial).unwrap();
    for b in &mut bytes[first.start() as usize..first.end() as usize] {
        *b = !*b;
    }
    std::fs::write(&p.partial, bytes).unwrap();
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_over_bytes_that_changed_heals() {
    let p = paths();
    let first = run_and_cancel_after(&p, "etag-a", SIZE / 3).await;
    assert!(first.cancelled);
    let done = poison_journaled_bytes(&p);
    assert!(done.total() > 0);
    let source = Arc::new(MemSource::new(&[(FileKey(0), SIZE, SEED)], CHUNK));
    let engine = Engine::new(config(), Arc::clone(&source), Arc::new(Counting::default())).unwrap();
    let second = engine
        .run(vec![job(&p, "etag-a")], CancellationToken::new())
        .await
        .unwrap();
    assert!(second.is_success(), "{second:#?}");
    assert_eq!(std::fs::read(&p.out).unwrap(), content(SEED, SIZE));
    // The resume trusted the journal, its hash failed, the file started
    // over from a fresh source state.
    assert_eq!(second.bytes_resumed, done.total());
    assert_eq!(source.resets(FileKey(0)), 1);
    assert!(!journal_path(&p.partial).exists());
    assert!(!p.partial.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_job_discards_the_partial_and_journal_instead_of_resuming() {
    let p = paths();
    let first = run_and_cancel_after(&p, "etag-a", SIZE / 3).await;
    assert!(first.cancelled);
    poison_journaled_bytes(&p);
    let source = Arc::new(MemSource::new(&[(FileKey(0), SIZE, SEED)], CHUNK));
    let engine = Engine::new(config(), Arc::clone(&source), Arc::new(Counting::default())).unwrap();
    let second = engine
        .run(vec![job(&p, "etag-a").fresh()], CancellationToken::new())
        .await
        .unwrap();
    assert!(second.is_success(), "{second:#?}");
    assert_eq!(std::fs::read(&p.out).unwrap(), content(SEED, SIZE));
    // Nothing resumed, no failed attempt: the poisoned bytes were never used.
    assert_eq!(second.bytes_resumed, 0);
    assert_eq!(second.bytes_written, SIZE);
    assert_eq!(source.resets(FileKey(0)), 0);
}
