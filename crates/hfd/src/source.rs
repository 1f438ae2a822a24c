//! The engine's [`RangeSource`] over the hub client and the HTTP transport.
//!
//! Each file is resolved at most once (single-flight, on its first request)
//! and every range reuses the resulting URL. A CDN answering 401/403/400/410
//! marks the URL expired; the next request re-resolves it, once for all the
//! file's workers. A re-resolved URL that the CDN refuses before it ever
//! served an answer is not re-resolved again: the refusals are retried with
//! backoff and end, bounded by the engine's retry policy, in a clear error
//! (no resolve loop against a CDN that keeps saying no).
//!
//! When a file's bytes fail their check, the engine calls
//! [`RangeSource::reset_file`]: the URL is forgotten (the next request
//! resolves afresh), the connections that carried the file are retired (the
//! next request opens a new one, possibly to another server behind the same
//! name), and the host that served the bad bytes is remembered for the
//! error message ([`HubSource::bad_hosts`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use http::header;
use tokio::sync::Mutex;

use crate::fetch_list::FetchList;
use hfd_engine::{BodyStream, FileKey, RangeSource, SlotId, SourceError};
use hfd_http::{Body, ConnectionChoice, ConnectionId, HttpClient};
use hfd_hub::{Commit, HubClient, RemoteFile, RepoRef, ResolvedFile};
use hfd_types::ByteRange;

/// A resolved URL plus the first `ETag` the download host gave for it.
#[derive(Debug, Default)]
struct FileUrl {
    resolved: Option<Arc<ResolvedFile>>,
    /// Resolves made for this file so far.
    resolutions: u32,
    /// Whether the current URL has served at least one good answer.
    proven: bool,
    /// ETag of the first answer from the download URL: a later answer with
    /// another one means the file changed under us.
    seen_etag: Option<String>,
    /// Connections that carried bytes of the current attempt (retired when
    /// the bytes fail their check).
    connections: Vec<ConnectionId>,
    /// The connection of the latest request on each engine slot (retired
    /// when the engine drops that request as slow).
    by_slot: Vec<(SlotId, ConnectionId)>,
    /// Hosts whose bytes failed the file's check, in order, without repeats.
    bad_hosts: Vec<String>,
}

/// Whether one download origin honours range requests, learnt from its
/// first answer to a partial range. Until then, one range request at a time
/// asks it: a server that answers `200` with the whole body (Olah) would
/// otherwise send the whole file once per connection before the engine
/// falls back to one stream.
#[derive(Debug, Default)]
struct OriginRanges {
    honoured: std::sync::Mutex<Option<bool>>,
    probe: Mutex<()>,
}

/// A range request's turn at an origin: whether it asks alone (the probe,
/// held until its answer says whether ranges are honoured) or with every
/// other request.
enum RangeTurn<'a> {
    /// Held until the answer: the probe ends when it is dropped.
    Probe {
        _held: tokio::sync::MutexGuard<'a, ()>,
    },
    Known(bool),
}

impl OriginRanges {
    /// Waits for this request's turn. Requests that queued behind the probe
    /// look again once it answered and then all go at once: holding the
    /// probe each in turn until its own answer sent a file's first requests
    /// one round trip apart (32 connections took 1.6 s to start 50 ms away,
    /// decision 0075).
    async fn turn(&self) -> RangeTurn<'_> {
        if let Some(known) = self.get() {
            return RangeTurn::Known(known);
        }
        let probe = self.probe.lock().await;
        match self.get() {
            Some(known) => RangeTurn::Known(known),
            None => RangeTurn::Probe { _held: probe },
        }
    }

    fn get(&self) -> Option<bool> {
        *self
            .honoured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, honoured: bool) {
        *self
            .honoured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(honoured);
    }
}

/// Connections remembered per file; more are not retired (the pool opens
/// at most a few per origin anyway).
const MAX_REMEMBERED_CONNECTIONS: usize = 64;

/// Fetches the files of one pinned commit.
#[derive(Debug)]
pub(crate) struct HubSource {
    hub: HubClient,
    /// For ranges of large files: a connection each while the cap allows.
    http: HttpClient,
    /// For small files (one request each): streams on shared HTTP/2
    /// connections.
    small_http: HttpClient,
    /// Files up to this size are small.
    small_file_max: u64,
    repo: RepoRef,
    commit: Commit,
    files: Arc<FetchList>,
    /// Per-file URL state of the files started and not finished yet (a
    /// failed file's stays, for its error message): bounded by the files in
    /// flight, not by the listing.
    file_urls: std::sync::Mutex<HashMap<u64, Arc<Mutex<FileUrl>>>>,
    resolves: AtomicU64,
    /// Range support per `scheme://authority` of the download URLs.
    origins: std::sync::Mutex<HashMap<String, Arc<OriginRanges>>>,
}

/// An error with a message, for causes that are not a typed error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Message(String);

impl HubSource {
    /// A source of `files` at `commit`; files up to `small_file_max` bytes
    /// (fetched in one request) share HTTP/2 connections as streams.
    pub(crate) fn new(
        hub: HubClient,
        http: HttpClient,
        repo: RepoRef,
        commit: Commit,
        files: Arc<FetchList>,
        small_file_max: u64,
    ) -> Self {
        Self {
            hub,
            small_http: http.clone().with_connection_choice(ConnectionChoice::Share),
            http,
            small_file_max,
            repo,
            commit,
            files,
            file_urls: std::sync::Mutex::default(),
            resolves: AtomicU64::new(0),
            origins: std::sync::Mutex::default(),
        }
    }

    /// Resolve requests made so far (one per file, plus re-resolves after
    /// expiry).
    pub(crate) fn resolves(&self) -> u64 {
        self.resolves.load(Ordering::Relaxed)
    }

    /// Hosts that served bytes of `key` which failed its check.
    pub(crate) fn bad_hosts(&self, key: FileKey) -> Vec<String> {
        match self.file(key) {
            Ok((_, url_state)) => url_state
                .try_lock()
                .map(|s| s.bad_hosts.clone())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// Remembers that `body` carries bytes of `key`, for the request on
    /// `slot`.
    async fn note_connection(&self, key: FileKey, slot: SlotId, body: &Body) {
        if let Ok((_, url_state)) = self.file(key) {
            let id = body.connection().id;
            let mut url_state = url_state.lock().await;
            if !url_state.connections.contains(&id)
                && url_state.connections.len() < MAX_REMEMBERED_CONNECTIONS
            {
                url_state.connections.push(id);
            }
            match url_state.by_slot.iter_mut().find(|(s, _)| *s == slot) {
                Some(entry) => entry.1 = id,
                None => url_state.by_slot.push((slot, id)),
            }
        }
    }

    /// The file `key` and its URL state (created on its first request).
    fn file(&self, key: FileKey) -> Result<(Arc<RemoteFile>, Arc<Mutex<FileUrl>>), SourceError> {
        let Some(file) = self.files.get(key) else {
            return Err(SourceError::fatal(Message(format!("unknown {key}"))));
        };
        let mut urls = self
            .file_urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = urls.entry(key.0).or_default();
        Ok((file, Arc::clone(state)))
    }

    /// The file's URL, resolving it if needed. With [`Resolve::Open`], a
    /// file not yet resolved is opened with a GET, and when the hub serves
    /// the content itself (regular files) its body comes back too: one
    /// request instead of a HEAD and a GET.
    async fn location(
        &self,
        key: FileKey,
        how: Resolve,
    ) -> Result<(Arc<ResolvedFile>, Option<Body>), SourceError> {
        let (file, url_state) = self.file(key)?;
        let mut url_state = url_state.lock().await;
        if let Some(resolved) = &url_state.resolved {
            return Ok((Arc::clone(resolved), None));
        }
        self.resolves.fetch_add(1, Ordering::Relaxed);
        let (resolved, body) = if how == Resolve::Open {
            let opened = self
                .hub
                .open(&self.repo, &self.commit, &file)
                .await
                .map_err(hub_error)?;
            (opened.resolved, opened.body)
        } else {
            let resolved = self
                .hub
                .resolve(&self.repo, &self.commit, &file)
                .await
                .map_err(hub_error)?;
            (resolved, None)
        };
        let resolved = Arc::new(resolved);
        url_state.resolved = Some(Arc::clone(&resolved));
        url_state.resolutions += 1;
        // A body that came with the resolve proves the URL.
        url_state.proven = body.is_some();
        Ok((resolved, body))
    }

    /// Forgets `stale` so the next request re-resolves (unless another
    /// worker already replaced it). `false` when `stale` came from a
    /// re-resolve and never served an answer: the CDN refuses fresh URLs
    /// too, and resolving again would only loop.
    async fn expire(&self, key: FileKey, stale: &Arc<ResolvedFile>) -> bool {
        let Ok((_, url_state)) = self.file(key) else {
            return false;
        };
        let mut url_state = url_state.lock().await;
        if !url_state
            .resolved
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(r, stale))
        {
            // Already replaced by another worker: retry with the new one.
            return true;
        }
        if url_state.resolutions > 1 && !url_state.proven {
            return false;
        }
        url_state.resolved = None;
        true
    }

    /// Marks `resolved` as a working URL and records the download host's
    /// ETag; a change mid-download is an integrity error.
    async fn accept(
        &self,
        key: FileKey,
        resolved: &Arc<ResolvedFile>,
        headers: &http::HeaderMap,
    ) -> Result<(), SourceError> {
        let (file, url_state) = self.file(key)?;
        let mut url_state = url_state.lock().await;
        if url_state
            .resolved
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(r, resolved))
        {
            url_state.proven = true;
        }
        let Some(etag) = headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(hfd_hub::normalize_etag)
        else {
            return Ok(());
        };
        match &url_state.seen_etag {
            None => {
                url_state.seen_etag = Some(etag);
                Ok(())
            }
            Some(seen) if *seen == etag => Ok(()),
            Some(seen) => Err(SourceError::integrity(Message(format!(
                "{}: the server's ETag changed from {seen} to {etag} during the download",
                file.path
            )))),
        }
    }

    async fn fetch(
        &self,
        key: FileKey,
        range: Option<ByteRange>,
        slot: SlotId,
    ) -> Result<BodyStream, SourceError> {
        let (file, _) = self.file(key)?;
        let whole = range.is_none_or(|r| r.start() == 0 && r.end() == file.size);
        // Regular files are served by the hub itself: one GET resolves and
        // fetches them. LFS files redirect to a CDN, and the 302 to a GET
        // carries a body that would cost its HTTP/1.1 connection; a HEAD
        // resolves them without one.
        let how = if whole && !file.is_lfs() {
            Resolve::Open
        } else {
            Resolve::Head
        };
        let (resolved, body) = self.location(key, how).await?;
        if let Some(body) = body {
            // The hub answered the GET with the whole file (200).
            self.note_connection(key, slot, &body).await;
            return Ok(stream(body));
        }
        let headers = self.hub.download_headers(&resolved);
        let url = resolved.url.expose();
        let http = if file.size <= self.small_file_max {
            &self.small_http
        } else {
            &self.http
        };
        let outcome = match range {
            // A partial range from an origin whose range support is not
            // known yet: ask it alone, and remember the answer.
            Some(range) if !whole => {
                let origin = self.origin_ranges(url);
                let turn = origin.turn().await;
                if matches!(turn, RangeTurn::Known(false)) {
                    return Err(SourceError::range_unsupported(Message(format!(
                        "{}: the server answers range requests with the whole file",
                        file.path
                    ))));
                }
                let outcome = http.get_range(url, range, Some(file.size), &headers).await;
                match &outcome {
                    Ok(_) => origin.set(true),
                    Err(hfd_http::Error::RangeIgnored { .. }) => origin.set(false),
                    Err(_) => {}
                }
                drop(turn);
                outcome.map(|r| (r.headers, r.body))
            }
            Some(range) => http
                .get_range(url, range, Some(file.size), &headers)
                .await
                .map(|r| (r.headers, r.body)),
            // Checks 200, no Content-Encoding, Content-Length == size, and
            // caps the body at the file size (an endless body cannot grow it).
            None => http.get_whole(url, file.size, &headers).await,
        };
        match outcome {
            Ok((response_headers, body)) => {
                self.accept(key, &resolved, &response_headers).await?;
                self.note_connection(key, slot, &body).await;
                Ok(stream(body))
            }
            Err(e) => {
                if resolved.is_cdn && is_expiry(&e) {
                    if self.expire(key, &resolved).await {
                        return Err(SourceError::url_expired(e));
                    }
                    tracing::warn!(file = %file.path, error = %e,
                        "the CDN refuses the freshly resolved URL too; not resolving again");
                    return Err(SourceError::retryable(e));
                }
                Err(http_error(e))
            }
        }
    }
}

impl HubSource {
    /// The range-support record of `url`'s origin.
    fn origin_ranges(&self, url: &str) -> Arc<OriginRanges> {
        let origin = url
            .parse::<http::Uri>()
            .ok()
            .map(|u| {
                format!(
                    "{}://{}",
                    u.scheme_str().unwrap_or_default(),
                    u.authority()
                        .map(http::uri::Authority::as_str)
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let mut origins = self
            .origins
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(origins.entry(origin).or_default())
    }
}

impl RangeSource for HubSource {
    async fn fetch_range(
        &self,
        key: FileKey,
        range: ByteRange,
        slot: SlotId,
    ) -> Result<BodyStream, SourceError> {
        self.fetch(key, Some(range), slot).await
    }

    async fn fetch_whole(&self, key: FileKey, slot: SlotId) -> Result<BodyStream, SourceError> {
        self.fetch(key, None, slot).await
    }

    async fn retire_slow(&self, key: FileKey, slot: SlotId) {
        let Ok((file, url_state)) = self.file(key) else {
            return;
        };
        let mut url_state = url_state.lock().await;
        let Some(i) = url_state.by_slot.iter().position(|(s, _)| *s == slot) else {
            return;
        };
        let (_, id) = url_state.by_slot.swap_remove(i);
        // An HTTP/1.1 connection is already closed by the dropped body.
        if self.http.retire_connection(id) {
            tracing::debug!(file = %file.path, connection = %id,
                "slow connection retired; the retry opens another");
        }
    }

    async fn finish_file(&self, key: FileKey) {
        self.file_urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key.0);
    }

    async fn reset_file(&self, key: FileKey) {
        let Ok((file, url_state)) = self.file(key) else {
            return;
        };
        let mut url_state = url_state.lock().await;
        if let Some(resolved) = url_state.resolved.take() {
            let host = host_of(resolved.url.expose());
            if !url_state.bad_hosts.contains(&host) {
                url_state.bad_hosts.push(host);
            }
        }
        for id in url_state.connections.drain(..) {
            self.http.retire_connection(id);
        }
        url_state.by_slot.clear();
        url_state.resolutions = 0;
        url_state.proven = false;
        url_state.seen_etag = None;
        tracing::info!(file = %file.path, bad_hosts = ?url_state.bad_hosts,
            "forgetting the file's URL and connections; the next request resolves it again");
    }
}

fn stream(body: Body) -> BodyStream {
    futures::stream::unfold(body, |mut body| async move {
        let chunk = body.next_chunk().await?;
        Some((chunk.map_err(SourceError::retryable), body))
    })
    .boxed()
}

/// The `host[:port]` of `url`, without userinfo (never the query).
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_owned()
}

/// A CDN's way of saying the presigned URL is no longer valid.
fn is_expiry(e: &hfd_http::Error) -> bool {
    matches!(e.status().map(|s| s.as_u16()), Some(400 | 401 | 403 | 410))
}

fn http_error(e: hfd_http::Error) -> SourceError {
    use hfd_http::Error as E;
    match &e {
        E::RangeIgnored { .. } => SourceError::range_unsupported(e),
        E::BadContentRange { .. } | E::SizeMismatch { .. } => SourceError::integrity(e),
        E::Status {
            status,
            retry_after_secs,
            ..
        } if matches!(status.as_u16(), 429 | 503) => {
            let wait = retry_after_secs.map(Duration::from_secs);
            SourceError::rate_limited(e, wait)
        }
        _ if e.is_retryable() => SourceError::retryable(e),
        _ => SourceError::fatal(e),
    }
}

fn hub_error(e: hfd_hub::Error) -> SourceError {
    if let hfd_hub::HubErrorKind::RateLimited { wait } = e.kind() {
        return SourceError::rate_limited(e, wait);
    }
    if e.is_retryable() {
        SourceError::retryable(e)
    } else {
        SourceError::fatal(e)
    }
}

/// How a file not yet resolved is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolve {
    /// A HEAD: the URL only.
    Head,
    /// A GET: the URL, and the body when the hub serves the file itself.
    Open,
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_of_drops_userinfo_path_and_query() {
        assert_eq!(
            super::host_of("https://u:p@cdn.example:8443/a/b?X-Sig=1"),
            "cdn.example:8443"
        );
        assert_eq!(super::host_of("http://127.0.0.1:9/x"), "127.0.0.1:9");
        assert_eq!(super::host_of("https://hub.example?x"), "hub.example");
    }

    /// The first range request to an origin asks alone; those queued behind
    /// it all go at once when it has answered, none holding the others back
    /// until its own answer. If the probe learnt nothing (a failed request),
    /// the next in line probes.
    #[tokio::test]
    async fn requests_queued_behind_the_probe_go_together_once_it_answered() {
        use super::{OriginRanges, RangeTurn};
        use std::sync::Arc;
        let origin = Arc::new(OriginRanges::default());
        let probe = origin.turn().await;
        assert!(matches!(probe, RangeTurn::Probe { .. }));
        let queued: Vec<_> = (0..3)
            .map(|_| {
                let origin = Arc::clone(&origin);
                tokio::spawn(async move {
                    // Held until every queued request has its turn: a
                    // request that still held the probe would block them.
                    let turn = origin.turn().await;
                    let known = matches!(turn, RangeTurn::Known(true));
                    tokio::task::yield_now().await;
                    known
                })
            })
            .collect();
        // On this single-threaded runtime the spawned tasks run here and
        // queue behind the probe.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        origin.set(true);
        drop(probe);
        for task in queued {
            let known = tokio::time::timeout(std::time::Duration::from_secs(5), task)
                .await
                .expect("a queued request waited for another's answer")
                .unwrap();
            assert!(known, "a queued request probed again after the answer");
        }

        // A probe that learnt nothing hands the probe to the next request.
        let fresh = Arc::new(OriginRanges::default());
        let failed = fresh.turn().await;
        let next = tokio::spawn({
            let fresh = Arc::clone(&fresh);
            async move { matches!(fresh.turn().await, RangeTurn::Probe { .. }) }
        });
        tokio::task::yield_now().await;
        drop(failed);
        assert!(next.await.unwrap(), "the next request probes");
    }
}
