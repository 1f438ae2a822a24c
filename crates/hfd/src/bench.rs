//! Mirror throughput: how fast one endpoint serves one file over N
//! connections, measured into a null sink.
//!
//! A run resolves the file once (like a download) and then has N workers
//! fetch consecutive byte ranges of it, wrapping around at the end, until a
//! time or byte budget is spent. Nothing is written to disk. With
//! [`BenchConnections::Ramp`] the workers are started as a download's
//! connection ramp asks, and the result names the count it settled on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hfd_engine::{ConnectionRamp, EngineConfig, RampGauge, drive_ramp};
use hfd_http::{HttpClient, HttpConfig};
use hfd_hub::{HubClient, HubConfig, RemoteFile, RepoRef, Revision, Selection};
use hfd_types::ByteRange;
use tokio::sync::Mutex;

use crate::error::{Error, Result};

/// The shortest window over which `hfd-rs bench` judges a ramp step.
const BENCH_RAMP_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

/// What to measure.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BenchConfig {
    /// Stop after this long. Default: 10 s.
    pub duration: Duration,
    /// Stop after this many bytes. Default: 1 GiB.
    pub max_bytes: u64,
    /// Size of each range request. Default: 4 MiB.
    pub chunk: u64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(10),
            max_bytes: 1 << 30,
            chunk: 4 << 20,
        }
    }
}

/// One measurement: an endpoint at one connection count.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BenchResult {
    /// The endpoint measured.
    pub endpoint: String,
    /// The file fetched.
    pub file: String,
    /// Connections used (with the ramp: at most).
    pub connections: usize,
    /// With the ramp: the count it settled on (what a download of this
    /// file from this endpoint would run).
    pub settled: Option<usize>,
    /// Time from the first range request to its first body byte.
    pub time_to_first_byte: Option<Duration>,
    /// Bytes received.
    pub bytes: u64,
    /// Time spent receiving (from the first request to the last byte).
    pub elapsed: Duration,
    /// Failed requests.
    pub errors: u64,
    /// TCP connections actually opened.
    pub connections_opened: u64,
}

impl BenchResult {
    /// Throughput in bytes per second.
    pub fn bytes_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 / secs
        } else {
            0.0
        }
    }
}

/// Picks the file a benchmark fetches: `path` if given, else the largest
/// file of the repository. Returns the hub client used and the pinned plan.
pub async fn bench_target(
    hub: &HubClient,
    repo: &RepoRef,
    revision: &Revision,
    path: Option<&str>,
) -> Result<(hfd_hub::Commit, RemoteFile)> {
    let selection = match path {
        Some(p) => Selection::all().paths([p]),
        None => Selection::all(),
    };
    let pinned = hub.plan(repo, revision, &selection).await?;
    let file = pinned
        .files
        .iter()
        .max_by_key(|f| f.size)
        .cloned()
        .ok_or_else(|| Error::Unsupported {
            what: "benchmarking an empty repository".to_owned(),
        })?;
    Ok((pinned.commit, file))
}

/// How many connections a measurement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchConnections {
    /// This many from the start.
    Fixed(usize),
    /// The download's connection ramp (decision 0050) up to this many: the
    /// result says what it settled on.
    Ramp(usize),
}

/// What a measurement's workers share.
struct Fetch {
    http: HttpClient,
    headers: http::HeaderMap,
    url: String,
    size: u64,
    chunk: u64,
    max_bytes: u64,
    started: Instant,
    deadline: Instant,
    next: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    first_byte: Mutex<Option<Duration>>,
    gauge: RampGauge,
}

impl Fetch {
    /// One connection: consecutive ranges until the budget is spent (or
    /// the ramp retires it). Returns when its last byte arrived.
    async fn worker(self: Arc<Self>, ramped: bool) -> Instant {
        let mut last_byte = self.started;
        let mut streamed = false;
        let mut retired = false;
        while Instant::now() < self.deadline
            && self.received.load(Ordering::Relaxed) < self.max_bytes
        {
            if self.gauge.try_retire() {
                retired = true;
                break;
            }
            let offset = self.next.fetch_add(self.chunk, Ordering::Relaxed) % self.size;
            let Some(range) = ByteRange::new(offset, (offset + self.chunk).min(self.size)) else {
                break;
            };
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            let request = self
                .http
                .get_range(&self.url, range, Some(self.size), &self.headers);
            let mut response = match tokio::time::timeout(remaining, request).await {
                Ok(Ok(response)) => response,
                Ok(Err(_)) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    if ramped && !streamed {
                        // Refused before its first byte: what the download
                        // takes as "no more connections".
                        self.gauge.refused();
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(_) => break,
            };
            loop {
                let remaining = self.deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(remaining, response.body.next_chunk()).await {
                    Ok(Some(Ok(bytes))) => {
                        let now = Instant::now();
                        self.first_byte
                            .lock()
                            .await
                            .get_or_insert(now - self.started);
                        if !streamed {
                            streamed = true;
                            self.gauge.first_bytes();
                        }
                        self.received
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        self.gauge.received(bytes.len() as u64);
                        last_byte = now;
                    }
                    Ok(Some(Err(_))) => {
                        self.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        if !retired {
            self.gauge.left();
        }
        last_byte
    }
}

/// Measures `endpoint` at `connections` connections (a fixed count, or the
/// ramp up to a count), with a fresh connection pool so earlier runs do not
/// warm this one.
pub async fn bench_endpoint(
    http_config: &HttpConfig,
    hub_config: &HubConfig,
    repo: &RepoRef,
    revision: &Revision,
    path: Option<&str>,
    connections: BenchConnections,
    config: &BenchConfig,
) -> Result<BenchResult> {
    let mut http_config = http_config.clone();
    let (most, ramped) = match connections {
        BenchConnections::Fixed(n) => (n.max(1), false),
        BenchConnections::Ramp(n) => (n.max(1), true),
    };
    http_config.max_connections_per_host =
        std::num::NonZeroUsize::new(most).expect("connections >= 1");
    let http = HttpClient::new(http_config)?;
    let hub = HubClient::new(hub_config.clone(), http.clone());
    let (commit, file) = bench_target(&hub, repo, revision, path).await?;
    let resolved = hub.resolve(repo, &commit, &file).await?;
    let size = file.size.max(1);
    let started = Instant::now();
    let fetch = Arc::new(Fetch {
        headers: hub.download_headers(&resolved),
        url: resolved.url.expose().to_owned(),
        http: http.clone(),
        size,
        chunk: config.chunk.clamp(1, size),
        max_bytes: config.max_bytes,
        started,
        deadline: started + config.duration,
        next: AtomicU64::new(0),
        received: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_byte: Mutex::new(None),
        gauge: RampGauge::default(),
    });
    let mut workers = Vec::with_capacity(most);
    let spawn = |workers: &mut Vec<tokio::task::JoinHandle<Instant>>, count: usize| {
        for _ in 0..count {
            fetch.gauge.joined();
            workers.push(tokio::spawn(Arc::clone(&fetch).worker(ramped)));
        }
    };
    let mut settled = None;
    if ramped {
        // The download's rule and windows, over this file's ranges.
        let engine = EngineConfig::default();
        let mut ramp = ConnectionRamp::new(engine.ramp_start.get(), most);
        spawn(&mut workers, ramp.current());
        let (more_tx, mut more_rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = tokio_util::sync::CancellationToken::new();
        let until_deadline = stop.clone();
        let deadline = fetch.deadline;
        tokio::spawn(async move {
            tokio::time::sleep_until(deadline.into()).await;
            until_deadline.cancel();
        });
        let has_work = || Instant::now() < fetch.deadline;
        {
            let driver = drive_ramp(
                &mut ramp,
                &fetch.gauge,
                // A benchmark runs for seconds and reports where the ramp
                // settled: windows of 100 ms at least judge each step on
                // more than a few chunks of a throttled connection (a busy
                // machine misjudged steps at 20 ms).
                engine.ramp_window.max(BENCH_RAMP_WINDOW),
                has_work,
                &more_tx,
                &stop,
            );
            tokio::pin!(driver);
            loop {
                tokio::select! {
                    () = &mut driver => break,
                    Some(count) = more_rx.recv() => spawn(&mut workers, count),
                }
            }
        }
        settled = Some(ramp.current());
    } else {
        spawn(&mut workers, most);
    }
    let mut last_byte = started;
    for worker in workers {
        if let Ok(t) = worker.await {
            last_byte = last_byte.max(t);
        }
    }
    let time_to_first_byte = *fetch.first_byte.lock().await;
    Ok(BenchResult {
        endpoint: hub_config.endpoint.as_str().to_owned(),
        file: file.path,
        connections: most,
        settled,
        time_to_first_byte,
        bytes: fetch.received.load(Ordering::Relaxed),
        elapsed: last_byte - started,
        errors: fetch.errors.load(Ordering::Relaxed),
        connections_opened: http.stats().connections_opened,
    })
}
