use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hfd_engine::{
    Engine, EngineConfig, Error, FileJob, FileKey, FileOutcome, INTEGRITY_ATTEMPTS, NoopReporter,
    Reporter, RetryEvent, SourceError, Summary,
};
use hfd_types::{ByteSize, ContentDigest};
use tokio_util::sync::CancellationToken;

use crate::source::{Answer, MemSource, content, git_sha1_of, sha256_of};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

fn config(x: usize, min_split: u64) -> EngineConfig {
    let mut c = EngineConfig::default();
    c.connections_per_file = nz(x);
    c.max_connections = nz(x);
    c.min_split_size = ByteSize::new(min_split);
    c.write_batch = ByteSize::kib(64);
    c.retry.base_delay = Duration::from_millis(100);
    c.retry.max_delay = Duration::from_secs(1);
    c
}

#[derive(Default)]
struct Recorder {
    bytes: AtomicU64,
    retries: Mutex<Vec<String>>,
    fallbacks: AtomicU64,
    done: Mutex<Vec<(FileKey, Option<ContentDigest>)>>,
    failed: Mutex<Vec<FileKey>>,
    cancelled: Mutex<Vec<FileKey>>,
    restarts: Mutex<Vec<(FileKey, u32)>>,
}

impl Reporter for Recorder {
    fn on_bytes(&self, _key: FileKey, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn on_retry(&self, _key: FileKey, event: &RetryEvent<'_>) {
        self.retries.lock().unwrap().push(event.cause.to_string());
    }
    fn on_fallback(&self, _key: FileKey) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
    }
    fn on_file_done(&self, key: FileKey, digest: Option<ContentDigest>) {
        self.done.lock().unwrap().push((key, digest));
    }
    fn on_file_failed(&self, key: FileKey, _error: &Error) {
        self.failed.lock().unwrap().push(key);
    }
    fn on_file_cancelled(&self, key: FileKey) {
        self.cancelled.lock().unwrap().push(key);
    }
    fn on_file_restart(&self, key: FileKey, attempt: u32, _cause: &Error) {
        self.restarts.lock().unwrap().push((key, attempt));
    }
}

struct Setup {
    dir: tempfile::TempDir,
    files: Vec<(FileKey, u64, u64)>,
}

impl Setup {
    fn new(sizes: &[u64]) -> Self {
        let files = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| (FileKey(i as u64), *s, 1000 + i as u64))
            .collect();
        Self {
            dir: tempfile::tempdir().unwrap(),
            files,
        }
    }

    fn final_path(&self, key: FileKey) -> PathBuf {
        self.dir.path().join(format!("file-{}", key.0))
    }

    fn partial_path(&self, key: FileKey) -> PathBuf {
        self.dir.path().join(format!(".hfd-tmp-{}-x7", key.0))
    }

    fn jobs(&self) -> Vec<FileJob> {
        self.files
            .iter()
            .map(|(k, size, seed)| {
                let digest = if k.0 % 2 == 0 {
                    sha256_of(*seed, *size)
                } else {
                    git_sha1_of(*seed, *size)
                };
                FileJob::new(*k, *size, self.partial_path(*k), self.final_path(*k))
                    .with_expected(digest)
            })
            .collect()
    }

    fn source(&self, chunk: u64) -> MemSource {
        MemSource::new(&self.files, chunk)
    }

    fn assert_identical(&self, summary: &Summary) {
        assert!(summary.is_success(), "{summary:#?}");
        for (k, size, seed) in &self.files {
            let got = std::fs::read(self.final_path(*k)).unwrap();
            assert!(got == content(*seed, *size), "{k} differs");
            assert!(!self.partial_path(*k).exists());
        }
    }
}

async fn run(
    config: EngineConfig,
    source: &Arc<MemSource>,
    reporter: Arc<dyn Reporter>,
    jobs: Vec<FileJob>,
) -> Summary {
    Engine::new(config, Arc::clone(source), reporter)
        .unwrap()
        .run(jobs, CancellationToken::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_segment_file_is_byte_identical() {
    let setup = Setup::new(&[8 * MIB + 12_345, 3 * MIB]);
    let source = Arc::new(setup.source(16 * KIB));
    let reporter = Arc::new(Recorder::default());
    let summary = run(
        config(8, 256 * KIB),
        &source,
        reporter.clone(),
        setup.jobs(),
    )
    .await;
    setup.assert_identical(&summary);
    // Both files were cut into 8 segments at least.
    assert!(summary.requests >= 16, "{summary:?}");
    assert_eq!(summary.bytes_written, 11 * MIB + 12_345);
    assert_eq!(
        reporter.bytes.load(Ordering::Relaxed),
        summary.bytes_written
    );
    let mut done = reporter.done.lock().unwrap().clone();
    done.sort_by_key(|(k, _)| *k);
    let expected: Vec<_> = setup.jobs().iter().map(|j| (j.key, j.expected)).collect();
    assert_eq!(done, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_files_are_one_request_each_and_zero_byte_files_work() {
    let mut sizes: Vec<u64> = (0..150).map(|i| 1 + (i * 7919) % (64 * KIB)).collect();
    sizes.extend([0, 0, 0]);
    let setup = Setup::new(&sizes);
    let source = Arc::new(setup.source(16 * KIB));
    let mut c = config(8, MIB);
    c.files_in_flight = nz(16);
    c.max_connections = nz(16);
    let summary = run(c, &source, Arc::new(NoopReporter), setup.jobs()).await;
    setup.assert_identical(&summary);
    assert_eq!(summary.requests, 150, "one request per non-empty file");
    for r in source.requests() {
        let (_, size, _) = setup.files[r.key.0 as usize];
        assert_eq!(r.range.unwrap().size(), size);
    }
    // The source heard of every file's end once (it forgets its state).
    let mut finished = source.finished();
    finished.sort();
    let all: Vec<FileKey> = setup.jobs().iter().map(|j| j.key).collect();
    assert_eq!(finished, all);
}

#[tokio::test(start_paused = true)]
async fn errors_mid_stream_resume_from_last_byte() {
    let setup = Setup::new(&[4 * MIB]);
    let source = Arc::new(setup.source(16 * KIB).script(|r| {
        if r.index < 6 {
            Answer::FailAfter(100 * KIB, SourceError::retryable("connection reset"))
        } else {
            Answer::Normal
        }
    }));
    let reporter = Arc::new(Recorder::default());
    // Pieces of 1 MiB: every resumed rest is longer than the 100 KiB after
    // which the first six requests fail.
    let mut c = config(4, MIB);
    c.hedging = false; // hedges fetch bytes twice on purpose
    let summary = run(c, &source, reporter.clone(), setup.jobs()).await;
    setup.assert_identical(&summary);
    assert_eq!(summary.retries, 6);
    // Retries resume where the failed request stopped: nothing is fetched
    // twice (restarting segments would re-fetch 6 x 100 KiB). A split may
    // waste the rest of one chunk of the request it cuts.
    let delivered: u64 = source
        .requests()
        .iter()
        .map(|r| r.delivered.load(Ordering::Relaxed))
        .sum();
    assert!(
        delivered <= 4 * MIB + summary.splits * 16 * KIB,
        "{delivered}"
    );
    assert_eq!(summary.bytes_written, 4 * MIB);
}

#[tokio::test(start_paused = true)]
async fn short_bodies_are_detected_and_the_rest_requeued() {
    let setup = Setup::new(&[2 * MIB]);
    let source = Arc::new(setup.source(16 * KIB).script(|r| {
        if r.index < 4 {
            Answer::Short(48 * KIB)
        } else {
            Answer::Normal
        }
    }));
    let reporter = Arc::new(Recorder::default());
    let summary = run(
        config(4, 256 * KIB),
        &source,
        reporter.clone(),
        setup.jobs(),
    )
    .await;
    setup.assert_identical(&summary);
    let retries = reporter.retries.lock().unwrap();
    assert_eq!(retries.len(), 4);
    assert!(
        retries.iter().all(|r| r.contains("body ended after 49152")),
        "{retries:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn long_bodies_are_cut_at_the_range_end() {
    let setup = Setup::new(&[2 * MIB]);
    // Every answer carries garbage after the range; written, it would
    // overwrite the next segment.
    let source = Arc::new(setup.source(16 * KIB).script(|_| Answer::Long(40 * KIB)));
    let summary = run(
        config(4, 256 * KIB),
        &source,
        Arc::new(NoopReporter),
        setup.jobs(),
    )
    .await;
    setup.assert_identical(&summary);
    assert_eq!(summary.bytes_written, 2 * MIB);
}

#[tokio::test(start_paused = true)]
async fn range_unsupported_falls_back_to_one_stream() {
    let setup = Setup::new(&[3 * MIB]);
    let whole_streams = std::sync::atomic::AtomicUsize::new(0);
    let mut source = setup.source(16 * KIB).script(move |r| {
        // The first whole-file stream breaks after 1 MiB (however many range
        // requests were refused before it).
        if r.range.is_none() && whole_streams.fetch_add(1, Ordering::Relaxed) == 0 {
            Answer::FailAfter(MIB, SourceError::retryable("reset"))
        } else {
            Answer::Normal
        }
    });
    source.no_ranges = true;
    let source = Arc::new(source);
    let reporter = Arc::new(Recorder::default());
    let summary = run(
        config(8, 256 * KIB),
        &source,
        reporter.clone(),
        setup.jobs(),
    )
    .await;
    setup.assert_identical(&summary);
    assert_eq!(reporter.fallbacks.load(Ordering::Relaxed), 1);
    let whole: Vec<_> = source
        .requests()
        .into_iter()
        .filter(|r| r.range.is_none())
        .collect();
    assert_eq!(whole.len(), 2, "one broken whole stream, one retry");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_pauses_the_whole_pool() {
    // Many small files keep every connection starting new requests.
    let setup = Setup::new(&[20 * KIB; 40]);
    let source = Arc::new(setup.source(16 * KIB).script(|r| {
        if r.index == 10 {
            Answer::Refuse(SourceError::rate_limited(
                "429",
                Some(Duration::from_secs(5)),
            ))
        } else {
            Answer::Throttle(Duration::from_millis(10))
        }
    }));
    let mut c = config(1, MIB);
    c.files_in_flight = nz(4);
    c.max_connections = nz(4);
    let summary = run(c, &source, Arc::new(NoopReporter), setup.jobs()).await;
    setup.assert_identical(&summary);
    let requests = source.requests();
    let limited = requests[10].at;
    let later: Vec<_> = requests.iter().filter(|r| r.index > 10).collect();
    assert!(later.len() > 20);
    for r in later {
        assert!(
            r.at >= limited + Duration::from_secs(5),
            "request {} started {:?} after the 429",
            r.index,
            r.at - limited
        );
    }
}

/// After a rate limit the pool comes back with half its connections, not
/// all of them at once (which would hammer the server into the next 429),
/// and the pause is the told wait capped at `max_wait`.
#[tokio::test(start_paused = true)]
async fn rate_limit_halves_the_connections_and_caps_the_wait() {
    let setup = Setup::new(&[20 * KIB; 60]);
    let source = Arc::new(setup.source(4 * KIB).script(|r| {
        if r.index == 12 {
            // A 300 s window, as the Hub's `RateLimit` says.
            Answer::Refuse(SourceError::rate_limited(
                "429",
                Some(Duration::from_mins(5)),
            ))
        } else {
            Answer::Throttle(Duration::from_millis(20))
        }
    }));
    let mut c = config(1, MIB);
    c.files_in_flight = nz(8);
    c.max_connections = nz(8);
    c.retry.max_wait = Duration::from_secs(7);
    let summary = run(c, &source, Arc::new(NoopReporter), setup.jobs()).await;
    setup.assert_identical(&summary);
    let requests = source.requests();
    let before = requests[..12].iter().map(|r| r.concurrent).max().unwrap();
    assert_eq!(before, 8, "all eight connections were busy before");
    let limited = requests[12].at;
    let after: Vec<_> = requests
        .iter()
        .filter(|r| r.at >= limited + Duration::from_secs(7))
        .collect();
    assert!(after.len() > 30, "{}", after.len());
    let most = after.iter().map(|r| r.concurrent).max().unwrap();
    assert!(most <= 4, "{most} bodies open at once after the 429");
    // Capped: nothing waited the whole 300 s.
    let last = requests.iter().map(|r| r.at).max().unwrap();
    assert!(
        last < limited + Duration::from_mins(1),
        "{:?}",
        last - limited
    );
}

/// Runs one 8 MiB file over 8 connections where slot 0 delivers at 1 % of
/// the others' rate; returns (summary, bytes slot 0 delivered).
async fn run_with_one_slow_connection(hedging: bool, slow_ratio: f64) -> (Summary, u64) {
    run_with_one_slow_connection_judged_after(hedging, slow_ratio, Duration::from_secs(1)).await
}

async fn run_with_one_slow_connection_judged_after(
    hedging: bool,
    slow_ratio: f64,
    slow_grace: Duration,
) -> (Summary, u64) {
    let (summary, source) = run_with_slot_zero_answering(
        || Answer::Throttle(Duration::from_millis(100)),
        |c| {
            c.hedging = hedging;
            c.slow_ratio = slow_ratio;
            c.slow_grace = slow_grace;
        },
    )
    .await;
    (summary, source.delivered_on(0))
}

/// Runs one 8 MiB file over 8 connections (`min_split` 256 KiB, the rest
/// of the config as `configure` sets it) where slot 0 answers `slow()` and
/// the others 16 KiB per millisecond; checks the file and returns the
/// summary and the source.
async fn run_with_slot_zero_answering(
    slow: impl Fn() -> Answer + Send + Sync + 'static,
    configure: impl FnOnce(&mut EngineConfig),
) -> (Summary, Arc<MemSource>) {
    let setup = Setup::new(&[8 * MIB]);
    let source = Arc::new(setup.source(16 * KIB).script(move |r| {
        if r.slot.0 == 0 {
            slow()
        } else {
            Answer::Throttle(Duration::from_millis(1))
        }
    }));
    let mut c = config(8, 256 * KIB);
    configure(&mut c);
    let summary = run(c, &source, Arc::new(NoopReporter), setup.jobs()).await;
    setup.assert_identical(&summary);
    (summary, source)
}

#[tokio::test(start_paused = true)]
async fn tail_hedge_finishes_without_waiting_for_a_throttled_connection() {
    let (summary, slow) = run_with_one_slow_connection(true, 0.0).await;
    assert!(summary.hedges >= 1, "{summary:?}");
    // Without the hedge the slow connection must deliver its whole last
    // segment (at least min_split = 256 KiB, see the next test).
    assert!(slow < 64 * KIB, "slow connection delivered {slow} bytes");
}

#[tokio::test(start_paused = true)]
async fn without_hedging_the_throttled_connection_holds_the_tail() {
    let (summary, slow) = run_with_one_slow_connection(false, 0.0).await;
    assert_eq!(summary.hedges, 0);
    // Splits leave the slow connection a last segment it cannot give away
    // (less than 2 x min_split, at least min_split = 256 KiB).
    assert!(
        slow >= 256 * KIB,
        "slow connection delivered only {slow} bytes"
    );
}

#[tokio::test(start_paused = true)]
async fn slow_connection_is_dropped_and_its_range_requeued() {
    let (summary, slow) = run_with_one_slow_connection(false, 0.1).await;
    assert!(summary.dropped_slow >= 1, "{summary:?}");
    // Dropped after the 1 s grace (about 160 KiB at its rate) instead of
    // finishing its last segment (at least 256 KiB, previous test).
    assert!(slow < 200 * KIB, "slow connection delivered {slow} bytes");
}

/// Bytes the first request on slot 0 delivered when slot 0 is a mirror's
/// slow connection (32 KiB at once, then 4 KiB every 5 ms: 0.8 MB/s, a
/// twentieth of the others' 16 MB/s) and requests are judged after
/// `slow_grace`.
async fn first_slow_request_delivers(slow_grace: Duration) -> (Summary, u64) {
    let (summary, source) = run_with_slot_zero_answering(
        || Answer::Burst {
            burst: 32 * KIB,
            trickle: 4 * KIB,
            every: Duration::from_millis(5),
        },
        |c| {
            c.hedging = false;
            c.connection_ramp = false;
            c.slow_grace = slow_grace;
        },
    )
    .await;
    let first = source
        .requests()
        .into_iter()
        .find(|r| r.slot.0 == 0)
        .expect("slot 0 was used");
    (summary, first.delivered.load(Ordering::Relaxed))
}

#[tokio::test(start_paused = true)]
async fn by_default_a_slow_connection_is_judged_after_a_twentieth_of_a_second() {
    let (summary, slow) = first_slow_request_delivers(EngineConfig::default().slow_grace).await;
    assert!(summary.dropped_slow >= 1, "{summary:?}");
    // Judged after 50 ms: about 72 KiB; with the 0.1 s grace (below) 112 KiB.
    assert!(slow < 88 * KIB, "slow connection delivered {slow} bytes");
    let (_, slow_at_a_tenth) = first_slow_request_delivers(Duration::from_millis(100)).await;
    assert!(
        slow_at_a_tenth >= 100 * KIB,
        "with a 0.1 s grace the slow connection delivered {slow_at_a_tenth} bytes"
    );
}

/// On a far link a connection's first round trips move little (TCP slow
/// start): a request is judged no sooner than four times its own wait for
/// the response head, however short `slow_grace` is.
#[tokio::test(start_paused = true)]
async fn a_request_on_a_far_link_is_judged_only_after_a_few_round_trips() {
    let setup = Setup::new(&[8 * MIB]);
    let head = Duration::from_millis(150);
    let source = Arc::new(setup.source(16 * KIB).script(move |r| {
        let chunk = if r.slot.0 == 0 {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(1)
        };
        Answer::Far { head, chunk }
    }));
    let mut c = config(8, 256 * KIB);
    c.hedging = false;
    c.connection_ramp = false;
    c.slow_grace = Duration::from_millis(250);
    let summary = run(c, &source, Arc::new(NoopReporter), setup.jobs()).await;
    setup.assert_identical(&summary);
    assert!(summary.dropped_slow >= 1, "{summary:?}");
    // Slot 0's first request (160 KiB/s) runs at least 4 x 150 ms before it
    // is judged: 96 KiB; judged after a 0.25 s grace alone, 48 KiB.
    let first = source
        .requests()
        .into_iter()
        .find(|r| r.slot.0 == 0)
        .expect("slot 0 was used");
    let delivered = first.delivered.load(Ordering::Relaxed);
    assert!(
        delivered >= 80 * KIB,
        "slot 0's first request was dropped after {delivered} bytes"
    );
}

/// Each request costs its connection a wait for the response head: 50 ms
/// away a connection that measured it asks for ranges that stream 16 times
/// that long (pieces joined up to a fair share of what is pending), so the
/// file takes far fewer requests than it has pieces; near, one each.
#[tokio::test(start_paused = true)]
async fn a_far_connection_asks_for_longer_ranges() {
    let run_with = |head: Duration| async move {
        // 16 MiB over 8 connections in pieces of 256 KiB: 64 pieces.
        let setup = Setup::new(&[16 * MIB]);
        // 16 KiB every 4 ms: 4 MB/s per connection, 64 ms per piece.
        let source = Arc::new(setup.source(16 * KIB).script(move |_| Answer::Far {
            head,
            chunk: Duration::from_millis(4),
        }));
        let mut c = config(8, 256 * KIB);
        c.connection_ramp = false;
        c.slow_ratio = 0.0;
        let summary = run(c, &source, Arc::new(NoopReporter), setup.jobs()).await;
        setup.assert_identical(&summary);
        source
            .requests()
            .iter()
            .map(|r| r.range.expect("range requests").size())
            .collect::<Vec<u64>>()
    };
    let near = run_with(Duration::ZERO).await;
    assert!(near.len() >= 64, "{} requests near", near.len());
    assert!(near.iter().all(|size| *size <= 256 * KIB), "{near:?}");
    // 50 ms away: the first requests are one piece each (nothing measured;
    // a connection's first wait also opened it), then 3.2 MB at most once
    // a second response head came, and a fair share.
    let far = run_with(Duration::from_millis(50)).await;
    assert!(
        far.len() <= 48,
        "{} requests 50 ms away: {far:?}",
        far.len()
    );
    assert!(far.iter().any(|size| *size >= MIB), "{far:?}");
}

#[tokio::test(start_paused = true)]
async fn stalled_request_is_dropped_after_the_stall_timeout() {
    let setup = Setup::new(&[MIB]);
    let source = Arc::new(setup.source(16 * KIB).script(|r| {
        if r.index == 0 {
            Answer::Stall(64 * KIB)
        } else {
            Answer::Normal
        }
    }));
    let mut c = config(2, 256 * KIB);
    c.stall_timeout = Duration::from_secs(3);
    c.hedging = false;
    let reporter = Arc::new(Recorder::default());
    let summary = run(c, &source, reporter.clone(), setup.jobs()).await;
    setup.assert_identical(&summary);
    assert_eq!(summary.dropped_slow, 1);
    assert!(reporter.retries.lock().unwrap()[0].contains("no bytes for"));
}

#[tokio::test(start_paused = true)]
async fn expired_url_is_retried_at_once() {
    let setup = Setup::new(&[MIB]);
    let source = Arc::new(setup.source(16 * KIB).script(|r| {
        if r.index < 3 {
            Answer::Refuse(SourceError::url_expired("403 from CDN"))
        } else {
            Answer::Normal
        }
    }));
    let summary = run(
        config(2, 256 * KIB),
        &source,
        Arc::new(NoopReporter),
        setup.jobs(),
    )
    .await;
    setup.assert_identical(&summary);
    let requests = source.requests();
    assert_eq!(summary.retries, 3);
    // No backoff for an expired URL (the source refreshed it).
    assert!(requests.iter().all(|r| r.at == requests[0].at));
}

#[tokio::test(start_paused = true)]
async fn bytes_failing_their_hash_once_heal_on_a_fresh_attempt() {
    let setup = Setup::new(&[MIB, 1000]);
    // The first attempt of file 0 gets wrong bytes (every answer), the
    // attempt after the source forgot the file gets the right ones.
    let source = Arc::new(setup.source(16 * KIB).script(|r| {
        if r.key == FileKey(0) && r.resets == 0 {
            Answer::Corrupt
        } else {
            Answer::Normal
        }
    }));
    let reporter = Arc::new(Recorder::default());
    let summary = run(
        config(4, 256 * KIB),
        &source,
        reporter.clone(),
        setup.jobs(),
    )
    .await;
    setup.assert_identical(&summary);
    assert_eq!(source.resets(FileKey(0)), 1, "one fresh start");
    assert_eq!(source.resets(FileKey(1)), 0);
    assert_eq!(*reporter.restarts.lock().unwrap(), vec![(FileKey(0), 2)]);
    assert!(reporter.failed.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn bytes_that_keep_failing_their_hash_fail_after_bounded_attempts_and_leave_nothing() {
    let setup = Setup::new(&[MIB, 1000]);
    let source = Arc::new(setup.source(16 * KIB).script(|r| {
        if r.key == FileKey(0) {
            Answer::Corrupt
        } else {
            Answer::Normal
        }
    }));
    let reporter = Arc::new(Recorder::default());
    let summary = run(
        config(4, 256 * KIB),
        &source,
        reporter.clone(),
        setup.jobs(),
    )
    .await;
    let FileOutcome::Failed(err) = &summary.files[0].1 else {
        panic!("{summary:?}");
    };
    assert!(err.is_integrity(), "{err:?}");
    assert!(
        matches!(err, Error::Integrity { attempts, .. } if *attempts == INTEGRITY_ATTEMPTS),
        "{err:?}"
    );
    assert!(err.to_string().contains("integrity"), "{err}");
    assert!(!err.to_string().contains("disk"), "{err}");
    assert_eq!(source.resets(FileKey(0)), INTEGRITY_ATTEMPTS as usize);
    // A failed file's state stays with the source (for its error message).
    assert!(!source.finished().contains(&FileKey(0)));
    // Every attempt fetched the whole file again: nothing was resumed.
    let fetched: u64 = source
        .requests()
        .iter()
        .filter(|r| r.key == FileKey(0))
        .map(|r| r.delivered.load(Ordering::Relaxed))
        .sum();
    // (plus the overshoot of split and hedged requests, cut at range ends).
    let attempts = u64::from(INTEGRITY_ATTEMPTS);
    assert!(
        fetched >= attempts * MIB && fetched < (attempts + 1) * MIB,
        "{fetched}"
    );
    // Nothing of the bad bytes is left for a later run to resume.
    assert!(!setup.final_path(FileKey(0)).exists());
    assert!(!setup.partial_path(FileKey(0)).exists());
    assert!(!hfd_store::journal_path(&setup.partial_path(FileKey(0))).exists());
    assert_eq!(*reporter.failed.lock().unwrap(), vec![FileKey(0)]);
    // The other file is unaffected.
    assert_eq!(summary.done, 1);
    assert_eq!(summary.files.len(), 1, "{summary:?}");
}

#[tokio::test(start_paused = true)]
async fn source_integrity_errors_restart_only_that_file_within_bounds() {
    let setup = Setup::new(&[MIB, MIB]);
    let source = Arc::new(setup.source(16 * KIB).script(|r| {
        if r.key == FileKey(1) {
            Answer::FailAfter(16 * KIB, SourceError::integrity("ETag changed"))
        } else {
            Answer::Normal
        }
    }));
    let summary = run(
        config(2, 256 * KIB),
        &source,
        Arc::new(NoopReporter),
        setup.jobs(),
    )
    .await;
    assert_eq!(summary.done, 1, "{summary:?}");
    assert_eq!(summary.files[0].0, FileKey(1));
    let FileOutcome::Failed(err) = &summary.files[0].1 else {
        panic!("{summary:?}");
    };
    assert!(err.is_integrity());
    assert_eq!(source.resets(FileKey(1)), INTEGRITY_ATTEMPTS as usize);
    assert!(!setup.partial_path(FileKey(1)).exists());
    assert!(!setup.final_path(FileKey(1)).exists());
}

#[tokio::test(start_paused = true)]
async fn retries_run_out_with_a_clear_error() {
    let setup = Setup::new(&[100 * KIB]);
    let source = Arc::new(
        setup
            .source(16 * KIB)
            .script(|_| Answer::Refuse(SourceError::retryable("503"))),
    );
    let summary = run(
        config(1, MIB),
        &source,
        Arc::new(NoopReporter),
        setup.jobs(),
    )
    .await;
    let FileOutcome::Failed(err) = &summary.files[0].1 else {
        panic!("{summary:?}");
    };
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        matches!(err, Error::RetriesExhausted { attempts: 5, .. }),
        "{err:?}"
    );
    // max_retries (5) consecutive failures: the first request + 5 retries.
    assert_eq!(source.requests().len(), 6);
    assert!(setup.partial_path(FileKey(0)).exists());
}

#[tokio::test(start_paused = true)]
async fn cancellation_keeps_the_partial_and_publishes_nothing() {
    let setup = Setup::new(&[4 * MIB]);
    let source = Arc::new(
        setup
            .source(16 * KIB)
            .script(|_| Answer::Throttle(Duration::from_millis(10))),
    );
    let engine = Engine::new(
        config(4, 256 * KIB),
        Arc::clone(&source),
        Arc::new(NoopReporter),
    )
    .unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        trigger.cancel();
    });
    let summary = engine.run(setup.jobs(), cancel).await.unwrap();
    assert!(summary.cancelled);
    assert!(
        matches!(summary.files[0].1, FileOutcome::Cancelled),
        "{summary:?}"
    );
    assert!(summary.bytes_written > 0 && summary.bytes_written < 4 * MIB);
    assert!(!setup.final_path(FileKey(0)).exists());
    // What was written is on disk at the right offsets.
    let partial = std::fs::read(setup.partial_path(FileKey(0))).unwrap();
    let want = content(1000, 4 * MIB);
    let matching = partial
        .chunks(16 * KIB as usize)
        .zip(want.chunks(16 * KIB as usize))
        .filter(|(a, b)| a == b)
        .count() as u64;
    assert_eq!(matching * 16 * KIB, summary.bytes_written);
}

#[tokio::test]
async fn preflight_refuses_a_plan_larger_than_the_disk() {
    let setup = Setup::new(&[10]);
    let free = hfd_store::free_space(setup.dir.path()).unwrap();
    let source = Arc::new(setup.source(16 * KIB));
    let job = FileJob::new(
        FileKey(0),
        free + (1 << 40),
        setup.partial_path(FileKey(0)),
        setup.final_path(FileKey(0)),
    );
    let err = Engine::new(EngineConfig::default(), source, Arc::new(NoopReporter))
        .unwrap()
        .run(vec![job], CancellationToken::new())
        .await
        .unwrap_err();
    assert!(err.is_disk_full(), "{err:?}");
    let _ = Path::new("");
}

/// Most range requests in flight at once among `requests` (as the source
/// counted them when each was answered).
fn most_in_flight(requests: &[crate::source::Request]) -> usize {
    requests.iter().map(|r| r.concurrent).max().unwrap_or(0)
}

/// The connection ramp: on a source whose every connection runs at the
/// same rate each doubling pays and the file ends up on all of `-x`; on a
/// link capped in total the first doubling brings nothing and is taken
/// back. Counts requests in flight, never time.
#[tokio::test(start_paused = true)]
async fn the_connection_count_settles_high_per_connection_and_low_on_a_capped_link() {
    // Long enough that the later half of the file's requests comes after a
    // step that did not pay was taken back (four windows without paying,
    // decision 0060): at 6 MiB a third of them still had 8 in flight.
    let size = 12 * MIB;
    let run_with = |answer: fn() -> Answer, ramp: bool| async move {
        let setup = Setup::new(&[size]);
        let source = Arc::new(setup.source(8 * KIB).script(move |_| answer()));
        let mut c = config(8, 64 * KIB);
        c.connection_ramp = ramp;
        // Several 40 ms chunks per window.
        c.ramp_window = Duration::from_millis(250);
        c.slow_ratio = 0.0;
        let summary = run(c, &source, Arc::new(NoopReporter), setup.jobs()).await;
        setup.assert_identical(&summary);
        source.requests()
    };
    let per_connection = || Answer::Throttle(Duration::from_millis(40));
    let capped = || Answer::SharedLink(Duration::from_millis(40));

    let requests = run_with(per_connection, true).await;
    assert!(requests[0].concurrent <= 4, "starts with a few connections");
    assert_eq!(
        most_in_flight(&requests),
        8,
        "each doubling paid: all of -x"
    );

    let requests = run_with(capped, true).await;
    assert!(most_in_flight(&requests) <= 8, "never above -x");
    // The doubling that did not pay was taken back: most of the file's
    // later requests start with 4 in flight at most (a re-probe, after 2 s,
    // 4 s, 8 s..., takes one more step until its requests end).
    let later = &requests[requests.len() / 2..];
    let above = later.iter().filter(|r| r.concurrent > 4).count();
    assert!(
        above * 3 < later.len(),
        "{above} of {} later requests had more than 4 in flight",
        later.len()
    );

    // Without the ramp the capped link gets all of -x for the whole file.
    let requests = run_with(capped, false).await;
    let later = &requests[requests.len() / 2..];
    let above = later.iter().filter(|r| r.concurrent > 4).count();
    assert!(above * 2 > later.len(), "{above} of {}", later.len());
}

/// A connection the ramp adds and the source refuses (a per-client
/// connection cap answering 429) is not retried, pauses nobody, and caps
/// the run at the connections that were accepted: one refusal, not a storm.
#[tokio::test(start_paused = true)]
async fn a_refused_ramp_connection_caps_the_run_without_a_storm() {
    let setup = Setup::new(&[8 * MIB, 8 * MIB]);
    let refused = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&refused);
    // Five bodies at once at most, like a mirror's per-IP cap.
    let source = Arc::new(setup.source(64 * KIB).script(move |r| {
        if r.concurrent > 5 {
            counted.fetch_add(1, Ordering::Relaxed);
            Answer::Refuse(SourceError::rate_limited("429: too many connections", None))
        } else {
            Answer::Throttle(Duration::from_millis(40))
        }
    }));
    let mut c = config(8, 128 * KIB);
    c.ramp_start = nz(2);
    c.max_connections = nz(16);
    let reporter = Arc::new(Recorder::default());
    let summary = run(c, &source, reporter.clone(), setup.jobs()).await;
    setup.assert_identical(&summary);
    let refusals = refused.load(Ordering::Relaxed);
    assert!(refusals >= 1, "the cap was reached");
    assert!(
        refusals <= 4,
        "{refusals} refusals: more than one step of the ramp"
    );
    assert!(
        reporter.retries.lock().unwrap().is_empty(),
        "a refused ramp connection is not retried"
    );
}
