//! Mirror throughput: how fast one endpoint serves one file over N
//! connections, measured into a null sink.
//!
//! A run resolves the file once (like a download) and then has N workers
//! fetch consecutive byte ranges of it, wrapping around at the end, until a
//! time or byte budget is spent. Nothing is written to disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hfd_http::{HttpClient, HttpConfig};
use hfd_hub::{HubClient, HubConfig, RemoteFile, RepoRef, Revision, Selection};
use hfd_types::ByteRange;
use tokio::sync::Mutex;

use crate::error::{Error, Result};

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
    /// Connections used.
    pub connections: usize,
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

/// Measures `endpoint` at `connections` connections, with a fresh
/// connection pool so earlier runs do not warm this one.
pub async fn bench_endpoint(
    http_config: &HttpConfig,
    hub_config: &HubConfig,
    repo: &RepoRef,
    revision: &Revision,
    path: Option<&str>,
    connections: usize,
    config: &BenchConfig,
) -> Result<BenchResult> {
    let mut http_config = http_config.clone();
    let connections = connections.max(1);
    http_config.max_connections_per_host =
        std::num::NonZeroUsize::new(connections).expect("connections >= 1");
    let http = HttpClient::new(http_config)?;
    let hub = HubClient::new(hub_config.clone(), http.clone());
    let (commit, file) = bench_target(&hub, repo, revision, path).await?;
    let resolved = hub.resolve(repo, &commit, &file).await?;
    let headers = hub.download_headers(&resolved);
    let url = resolved.url.expose().to_owned();
    let size = file.size.max(1);
    let chunk = config.chunk.clamp(1, size);

    let next = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_byte: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
    let started = Instant::now();
    let deadline = started + config.duration;
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (http, headers, url) = (http.clone(), headers.clone(), url.clone());
        let (next, received, errors, first_byte) = (
            Arc::clone(&next),
            Arc::clone(&received),
            Arc::clone(&errors),
            Arc::clone(&first_byte),
        );
        let max_bytes = config.max_bytes;
        workers.push(tokio::spawn(async move {
            let mut last_byte = started;
            while Instant::now() < deadline && received.load(Ordering::Relaxed) < max_bytes {
                let offset = next.fetch_add(chunk, Ordering::Relaxed) % size;
                let Some(range) = ByteRange::new(offset, (offset + chunk).min(size)) else {
                    break;
                };
                let remaining = deadline.saturating_duration_since(Instant::now());
                let request = http.get_range(&url, range, Some(size), &headers);
                let mut response = match tokio::time::timeout(remaining, request).await {
                    Ok(Ok(response)) => response,
                    Ok(Err(_)) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    Err(_) => break,
                };
                loop {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(remaining, response.body.next_chunk()).await {
                        Ok(Some(Ok(bytes))) => {
                            let now = Instant::now();
                            let mut first = first_byte.lock().await;
                            first.get_or_insert(now - started);
                            drop(first);
                            received.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                            last_byte = now;
                        }
                        Ok(Some(Err(_))) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            last_byte
        }));
    }
    let mut last_byte = started;
    for worker in workers {
        if let Ok(t) = worker.await {
            last_byte = last_byte.max(t);
        }
    }
    let time_to_first_byte = *first_byte.lock().await;
    Ok(BenchResult {
        endpoint: hub_config.endpoint.as_str().to_owned(),
        file: file.path,
        connections,
        time_to_first_byte,
        bytes: received.load(Ordering::Relaxed),
        elapsed: last_byte - started,
        errors: errors.load(Ordering::Relaxed),
        connections_opened: http.stats().connections_opened,
    })
}
