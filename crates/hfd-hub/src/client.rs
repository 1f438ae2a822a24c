//! [`HubClient`]: pinning, listing, resolving, with the redirect and token
//! policy of protocol §3.3 and §5.2.

use std::collections::HashSet;
use std::future::Future;
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use serde::Deserialize;
use tracing::{debug, warn};
use url::Url;

use crate::auth::Token;
use crate::endpoint::{Endpoint, Origin};
use crate::error::{self, Context, Error, Purpose, Result};
use crate::file::{RemoteFile, parse_page};
use crate::headers;
use crate::repo::{Commit, RepoRef, Revision};
use crate::repo_path::find_path_collision;
use crate::selection::Selection;
use hfd_http::{Body, HttpClient, RequestBody};
use hfd_types::RedactedUrl;

/// How much of an error body is read for its message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Bounded retries of idempotent Hub requests (revision info, tree pages,
/// resolves) on transport errors, 408, 429 and 5xx.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt. Default: 4.
    pub max_retries: u32,
    /// First backoff delay, doubled per retry (±25 % jitter). Default: 1 s.
    pub base_delay: Duration,
    /// Cap of the backoff delay. Default: 8 s.
    pub max_delay: Duration,
    /// Longest server-requested wait (`RateLimit`, `Retry-After`) honoured by
    /// sleeping; a longer one is returned as [`Error::RateLimited`] at once.
    /// Default: 60 s.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_wait: Duration::from_mins(1),
        }
    }
}

impl RetryPolicy {
    /// No retries: every failure is returned at once.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }
}

/// Settings of a [`HubClient`]. Start from [`HubConfig::default`] and set
/// fields; the CLI fills them from flags and the environment.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HubConfig {
    /// The Hub or mirror to talk to. Default: `https://huggingface.co`.
    pub endpoint: Endpoint,
    /// Access token. Default: none.
    pub token: Option<Token>,
    /// Whether the token may go to a non-official endpoint (a mirror).
    /// Official Hub hosts always get it. Default: true (what the reference
    /// client does); the CLI may clear it for tokens not given explicitly.
    pub send_token_to_endpoint: bool,
    /// `User-Agent`; `None` keeps the HTTP client's. Default: `None`.
    pub user_agent: Option<String>,
    /// Largest JSON answer read (one tree page, revision info). Default: 64 MiB.
    pub max_json_bytes: usize,
    /// Most entries (files and folders) accepted in one listing.
    /// Default: 5,000,000.
    pub max_files: usize,
    /// Most redirects followed per request. Default: 10.
    pub max_redirects: u32,
    /// Retry behaviour. Default: [`RetryPolicy::default`].
    pub retry: RetryPolicy,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            endpoint: Endpoint::default(),
            token: None,
            send_token_to_endpoint: true,
            user_agent: None,
            max_json_bytes: 64 << 20,
            max_files: 5_000_000,
            max_redirects: 10,
            retry: RetryPolicy::default(),
        }
    }
}

/// Where and how to fetch one file, from a single resolve request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedFile {
    /// Path in the repo.
    pub path: String,
    /// The URL to GET the bytes from: the CDN `Location` of a cross-host
    /// redirect, or the Hub URL that answered 200. Its query may be a
    /// credential; it is redacted in `Display`/`Debug`.
    pub url: RedactedUrl,
    /// Size in bytes (`X-Linked-Size` or a 200's `Content-Length`, checked
    /// against the listing; the listing's when the server gave none).
    pub size: u64,
    /// The server's normalised ETag (resume identity). A mirror may invent
    /// one that is no hash; verify content with
    /// [`RemoteFile::expected_digest`].
    pub etag: String,
    /// The commit that served it (`X-Repo-Commit`), equal to the pinned one.
    pub commit: Commit,
    /// Whether requests to `url` may carry the token (a Hub host).
    pub send_token: bool,
    /// Whether `url` is on another origin than the endpoint and not a Hub
    /// host (a CDN or storage host).
    pub is_cdn: bool,
    /// `X-Xet-Hash` when the file is Xet-backed (64 hex).
    pub xet_hash: Option<String>,
}

/// A resolved file plus, when the Hub served the content directly (200 to
/// the GET), its body.
#[derive(Debug)]
pub struct OpenedFile {
    /// Where the file lives.
    pub resolved: ResolvedFile,
    /// The whole content, when the final answer was a 200; `None` when the
    /// answer was a redirect to a CDN (GET `resolved.url` then).
    pub body: Option<Body>,
}

/// The outcome of pin + list + filter.
#[derive(Clone, Debug)]
pub struct RepoPlan {
    /// The repository.
    pub repo: RepoRef,
    /// The revision as asked.
    pub revision: Revision,
    /// The commit it was pinned to.
    pub commit: Commit,
    /// The selected files, in listing order.
    pub files: Vec<RemoteFile>,
    /// Number of files in the whole listing (before the selection).
    pub listed_files: usize,
    /// Sum of the selected files' sizes.
    pub total_bytes: u64,
    /// HTTP requests made to build this plan (redirect hops and retries
    /// included).
    pub requests: u64,
}

/// A Hub client. Cheap to clone; clones share the counters and the
/// connection pool.
///
/// Cancel safety: every method is safe to drop mid-way; nothing is cached.
#[derive(Clone, Debug)]
pub struct HubClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: HubConfig,
    http: HttpClient,
    requests: AtomicU64,
    /// Whether the endpoint (or any host) has answered a request yet.
    answered: AtomicBool,
}

/// One answer at the end of a redirect chain.
struct Answer {
    /// The URL that gave `response`.
    url: Url,
    response: Response<Body>,
    /// Whether the request that got `response` carried the token.
    authenticated: bool,
    /// For a redirect we stopped at: its target.
    location: Option<Url>,
}

#[derive(Deserialize)]
struct RevisionInfo {
    #[serde(default)]
    sha: Option<String>,
}

impl HubClient {
    /// A client for `config.endpoint`, sending requests through `http`.
    pub fn new(config: HubConfig, http: HttpClient) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                http,
                requests: AtomicU64::new(0),
                answered: AtomicBool::new(false),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.config.endpoint
    }

    /// HTTP requests sent so far by this client and its clones.
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Whether a request to `url` may carry the token: it is the endpoint's
    /// origin (and [`HubConfig::send_token_to_endpoint`] allows it) or an
    /// official Hub host over https:443. Never a CDN host.
    pub fn sends_token_to(&self, url: &str) -> bool {
        Url::parse(url).is_ok_and(|u| self.token_allowed(&u))
    }

    /// Headers to send with GETs of `file.url`: `Authorization` only when
    /// [`ResolvedFile::send_token`] is set (marked sensitive).
    pub fn download_headers(&self, file: &ResolvedFile) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(token) = &self.inner.config.token
            && file.send_token
            && self.sends_token_to(file.url.expose())
        {
            headers.insert(header::AUTHORIZATION, token.header_value());
        }
        headers
    }

    /// Pins `revision` to a commit: a 40-hex revision is used as is (no
    /// request), anything else is asked from
    /// `GET /api/{types}/{repo}/revision/{rev}` (`sha`).
    pub async fn pin_revision(&self, repo: &RepoRef, revision: &Revision) -> Result<Commit> {
        if let Some(commit) = revision.as_commit() {
            return Ok(commit);
        }
        let url = Self::parse_url(&self.endpoint().revision_url(repo, revision.as_str()))?;
        let answer = self
            .api_get(&url, repo, revision.as_str(), Purpose::Revision)
            .await;
        let (final_url, _, body) = match answer {
            // Some mirrors (Olah) answer "repository not found" for a
            // revision they do not have: if the repository itself answers,
            // it is the revision that is missing.
            Err(Error::RepoNotFound { request_id, .. })
                if revision.as_str() != "main" && self.repo_answers(repo).await =>
            {
                return Err(Error::RevisionNotFound {
                    repo: repo.to_string(),
                    revision: revision.as_str().to_owned(),
                    request_id,
                });
            }
            other => other?,
        };
        let malformed = |reason: String| Error::Malformed {
            url: RedactedUrl::new(final_url.as_str()),
            reason,
        };
        let info: RevisionInfo = serde_json::from_slice(&body)
            .map_err(|e| malformed(format!("the revision info is not a JSON object: {e}")))?;
        let sha = info
            .sha
            .ok_or_else(|| malformed("the revision info has no `sha`".to_owned()))?;
        let commit = Commit::parse(&sha).ok_or_else(|| {
            malformed(format!(
                "`sha` {:?} is not a 40-hex commit",
                headers::sanitize(&sha)
            ))
        })?;
        debug!(repo = %repo, revision = %revision, commit = %commit, "pinned revision");
        Ok(commit)
    }

    /// Whether the repository exists and is visible to us: its info, or
    /// else its `main` branch (an offline Olah cannot answer the info, which
    /// needs the upstream hub), answers.
    async fn repo_answers(&self, repo: &RepoRef) -> bool {
        let endpoint = self.endpoint();
        for url in [
            endpoint.repo_info_url(repo),
            endpoint.revision_url(repo, "main"),
        ] {
            let Ok(url) = Self::parse_url(&url) else {
                return false;
            };
            if self
                .api_get(&url, repo, "main", Purpose::Revision)
                .await
                .is_ok()
            {
                return true;
            }
        }
        false
    }

    /// Lists every file of `repo` at `commit` through the recursive tree API,
    /// following `Link: rel="next"` pagination. Directories are skipped and
    /// every path is checked. A repeated page, an empty page with a next
    /// link, a duplicate path or a next link to a foreign host is an
    /// [`Error::IncompleteListing`]: a truncated listing is never returned.
    pub async fn list_files(&self, repo: &RepoRef, commit: &Commit) -> Result<Vec<RemoteFile>> {
        let (files, _) = self.list_selected(repo, commit, &Selection::all()).await?;
        Ok(files)
    }

    /// [`Self::list_files`], keeping only the files `selection` picks while
    /// the pages stream in, so memory grows with the selection, not with the
    /// listing: one page (at most `max_json_bytes`) is held at a time, plus
    /// 8 bytes per listed path for duplicate detection. Returns the selected
    /// files and the number of files listed. Fails with
    /// [`Error::PathNotInListing`] when an explicit path of the selection
    /// names no listed file.
    pub async fn list_selected(
        &self,
        repo: &RepoRef,
        commit: &Commit,
        selection: &Selection,
    ) -> Result<(Vec<RemoteFile>, usize)> {
        let config = &self.inner.config;
        let mut next = Some(Self::parse_url(
            &self.endpoint().tree_url(repo, commit.as_str()),
        )?);
        let mut files: Vec<RemoteFile> = Vec::new();
        // Hashes (keyed at random, so a server cannot aim collisions) of
        // every listed path: 8 bytes each instead of the path. A collision
        // (odds about n²/2⁶⁵) reports a duplicate that is none; it never
        // lets a duplicate through.
        let path_keys = RandomState::new();
        let mut seen_paths: HashSet<u64> = HashSet::new();
        let mut seen_pages: HashSet<u64> = HashSet::new();
        let mut explicit_found = vec![false; selection.explicit_paths().len()];
        let mut entries_total = 0usize;
        let mut listed_files = 0usize;
        let mut page_number = 0u64;
        while let Some(url) = next.take() {
            page_number += 1;
            let (final_url, page_headers, body) = self
                .api_get(&url, repo, commit.as_str(), Purpose::Tree)
                .await?;
            let shown = RedactedUrl::new(final_url.as_str());
            let incomplete = |reason: String| Error::IncompleteListing {
                url: shown.clone(),
                reason,
            };
            let mut hasher = DefaultHasher::new();
            body.hash(&mut hasher);
            if !seen_pages.insert(hasher.finish()) {
                return Err(incomplete(format!(
                    "page {page_number} repeats an earlier page (a mirror that ignores the \
                     pagination cursor?)"
                )));
            }
            let (page_files, entry_count) = parse_page(&body, &shown)?;
            drop(body);
            let next_url = self.next_page_url(&final_url, &page_headers)?;
            if entry_count == 0 && next_url.is_some() {
                return Err(incomplete(format!(
                    "page {page_number} is empty but links to a next page"
                )));
            }
            entries_total = entries_total.saturating_add(entry_count);
            if entries_total > config.max_files {
                return Err(Error::TooManyFiles {
                    limit: config.max_files,
                });
            }
            for file in page_files {
                if !seen_paths.insert(path_keys.hash_one(file.path.as_str())) {
                    return Err(incomplete(format!(
                        "{:?} is listed twice (page {page_number})",
                        file.path
                    )));
                }
                listed_files += 1;
                for (found, wanted) in explicit_found.iter_mut().zip(selection.explicit_paths()) {
                    *found = *found || crate::selection::names(wanted, &file.path);
                }
                if selection.matches(&file.path) {
                    files.push(file);
                }
            }
            debug!(
                page = page_number,
                listed = listed_files,
                selected = files.len(),
                "tree page"
            );
            next = next_url;
        }
        if let Some(missing) = explicit_found
            .iter()
            .zip(selection.explicit_paths())
            .find_map(|(found, wanted)| (!found).then_some(wanted))
        {
            return Err(Error::PathNotInListing {
                path: missing.clone(),
            });
        }
        Ok((files, listed_files))
    }

    /// Resolves `file` with one `HEAD` on `/resolve/{commit}/{path}`,
    /// following same-origin and Hub-host redirects and stopping at a
    /// cross-host one (protocol §3.3–3.4). Checks `X-Repo-Commit` against
    /// `commit`, and ETag and size against the listing.
    pub async fn resolve(
        &self,
        repo: &RepoRef,
        commit: &Commit,
        file: &RemoteFile,
    ) -> Result<ResolvedFile> {
        let opened = self.resolve_with(Method::HEAD, repo, commit, file).await?;
        Ok(opened.resolved)
    }

    /// Like [`Self::resolve`] but with a `GET`, so a file the Hub serves
    /// directly (regular files, mirrors answering 200) comes with its body
    /// in the same request: no separate metadata request for it.
    pub async fn open(
        &self,
        repo: &RepoRef,
        commit: &Commit,
        file: &RemoteFile,
    ) -> Result<OpenedFile> {
        self.resolve_with(Method::GET, repo, commit, file).await
    }

    /// Pins `revision`, lists the files at that commit and applies
    /// `selection`: what a dry run shows. [`RepoPlan::requests`] counts the
    /// requests it made. Selected paths that would overwrite each other on
    /// a case-insensitive or normalising file system are an
    /// [`Error::PathCollision`].
    pub async fn plan(
        &self,
        repo: &RepoRef,
        revision: &Revision,
        selection: &Selection,
    ) -> Result<RepoPlan> {
        let before = self.requests_sent();
        let commit = self.pin_revision(repo, revision).await?;
        let (files, listed_files) = self.list_selected(repo, &commit, selection).await?;
        if let Some((first, second)) = find_path_collision(files.iter().map(|f| f.path.as_str())) {
            return Err(Error::PathCollision {
                first: first.to_owned(),
                second: second.to_owned(),
            });
        }
        let total_bytes = files.iter().map(|f| f.size).sum();
        Ok(RepoPlan {
            repo: repo.clone(),
            revision: revision.clone(),
            commit,
            listed_files,
            files,
            total_bytes,
            requests: self.requests_sent() - before,
        })
    }

    async fn resolve_with(
        &self,
        method: Method,
        repo: &RepoRef,
        commit: &Commit,
        file: &RemoteFile,
    ) -> Result<OpenedFile> {
        let start = Self::parse_url(&self.endpoint().resolve_url(
            repo,
            commit.as_str(),
            &file.path,
        ))?;
        let purpose = Purpose::Resolve(&file.path);
        let answer = self
            .retrying(|| async {
                let answer = self.follow(&method, start.clone(), false).await?;
                let status = answer.response.status();
                if answer.location.is_none() && !status.is_success() {
                    return Err(self
                        .error_answer(answer, repo, commit.as_str(), purpose)
                        .await);
                }
                Ok(answer)
            })
            .await?;
        let status = answer.response.status();
        let final_url = answer
            .location
            .clone()
            .unwrap_or_else(|| answer.url.clone());
        let meta = extract_metadata(status, answer.response.headers(), file, commit, &answer.url)?;
        let resolved = ResolvedFile {
            path: file.path.clone(),
            url: RedactedUrl::new(final_url.as_str()),
            size: meta.size,
            etag: meta.etag,
            commit: commit.clone(),
            send_token: self.token_allowed(&final_url),
            is_cdn: !self.endpoint().is_hub_url(&final_url),
            xet_hash: meta.xet_hash,
        };
        debug!(
            file = %file.path,
            url = %resolved.url,
            size = resolved.size,
            cdn = resolved.is_cdn,
            "resolved"
        );
        let body = (method == Method::GET && answer.location.is_none())
            .then(|| answer.response.into_body().expect_len(resolved.size));
        Ok(OpenedFile { resolved, body })
    }

    /// GETs a JSON API URL (following only Hub redirects), returning the
    /// final URL, headers and body (at most `max_json_bytes`).
    async fn api_get(
        &self,
        url: &Url,
        repo: &RepoRef,
        revision: &str,
        purpose: Purpose<'_>,
    ) -> Result<(Url, HeaderMap, Bytes)> {
        let limit = self.inner.config.max_json_bytes;
        self.retrying(|| async move {
            let answer = self.follow(&Method::GET, url.clone(), true).await?;
            if !answer.response.status().is_success() {
                return Err(self.error_answer(answer, repo, revision, purpose).await);
            }
            let (parts, body) = answer.response.into_parts();
            let bytes = body
                .collect_limited(limit)
                .await
                .map_err(|e| body_error(&answer.url, e, limit))?;
            Ok((answer.url, parts.headers, bytes))
        })
        .await
    }

    /// Turns a non-success answer into an [`Error`].
    async fn error_answer(
        &self,
        answer: Answer,
        repo: &RepoRef,
        revision: &str,
        purpose: Purpose<'_>,
    ) -> Error {
        let (mut parts, body) = answer.response.into_parts();
        let mut body = body
            .collect_limited(ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        // A hostile server may echo the token back in its error text, which
        // ends up in our error message: scrub it first.
        if let Some(token) = &self.inner.config.token {
            body = scrub(&body, token.expose().as_bytes()).into();
            for value in parts.headers.values_mut() {
                let scrubbed = scrub(value.as_bytes(), token.expose().as_bytes());
                if scrubbed != value.as_bytes()
                    && let Ok(clean) = http::HeaderValue::from_bytes(&scrubbed)
                {
                    *value = clean;
                }
            }
        }
        let url = RedactedUrl::new(answer.url.as_str());
        let ctx = Context {
            repo,
            revision,
            endpoint: self.endpoint(),
            purpose,
            url: &url,
            authenticated: answer.authenticated,
        };
        error::from_response(parts.status, &parts.headers, &body, &ctx)
    }

    /// Sends `method` to `start`, following redirects the policy allows.
    /// At a redirect it must not follow: an error for API requests
    /// (`api`), else the answer with its `location`.
    async fn follow(&self, method: &Method, start: Url, api: bool) -> Result<Answer> {
        let max = self.inner.config.max_redirects;
        let first = RedactedUrl::new(start.as_str());
        let mut url = start;
        for _ in 0..=max {
            let (response, authenticated) = self.send_once(method, &url).await?;
            let status = response.status();
            if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
                return Ok(Answer {
                    url,
                    response,
                    authenticated,
                    location: None,
                });
            }
            let target = redirect_target(&url, response.headers())?;
            if may_follow(self.endpoint(), &url, &target) {
                debug!(
                    from = %RedactedUrl::new(url.as_str()),
                    to = %RedactedUrl::new(target.as_str()),
                    status = status.as_u16(),
                    "following redirect"
                );
                drain(response).await;
                url = target;
                continue;
            }
            if url.scheme() == "https" && target.scheme() != "https" {
                return Err(Error::InsecureRedirect {
                    from: RedactedUrl::new(url.as_str()),
                    to: RedactedUrl::new(target.as_str()),
                });
            }
            if api {
                return Err(Error::OffHubRedirect {
                    from: RedactedUrl::new(url.as_str()),
                    to: RedactedUrl::new(target.as_str()),
                });
            }
            return Ok(Answer {
                url,
                response,
                authenticated,
                location: Some(target),
            });
        }
        Err(Error::TooManyRedirects {
            url: first,
            hops: max,
        })
    }

    /// One request; returns the response and whether the token was sent.
    async fn send_once(&self, method: &Method, url: &Url) -> Result<(Response<Body>, bool)> {
        let config = &self.inner.config;
        let shown = RedactedUrl::new(url.as_str());
        let authenticated = self.token_allowed(url);
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(url.as_str())
            .header(header::ACCEPT_ENCODING, "identity");
        if let Some(agent) = &config.user_agent {
            builder = builder.header(header::USER_AGENT, agent.as_str());
        }
        if authenticated && let Some(token) = &config.token {
            builder = builder.header(header::AUTHORIZATION, token.header_value());
        }
        let request = builder
            .body(RequestBody::default())
            .map_err(|e| Error::Malformed {
                url: shown.clone(),
                reason: format!("the URL cannot be requested: {e}"),
            })?;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        debug!(method = %method, url = %shown, auth = authenticated, "hub request");
        let response = self
            .inner
            .http
            .send(request)
            .await
            .map_err(|source| match source {
                // The server answered, but not in HTTP: say so rather
                // than "cannot reach".
                hfd_http::Error::MalformedResponse { source, .. } => Error::Malformed {
                    url: shown.clone(),
                    reason: format!(
                        "the response is not valid HTTP or its header exceeds the limits \
                             ({source})"
                    ),
                },
                source => Error::Unreachable {
                    url: shown.clone(),
                    source,
                },
            })?;
        self.inner.answered.store(true, Ordering::Relaxed);
        Ok((response, authenticated))
    }

    fn token_allowed(&self, url: &Url) -> bool {
        let config = &self.inner.config;
        if config.token.is_none() {
            return false;
        }
        let Some(origin) = Origin::of(url) else {
            return false;
        };
        let endpoint = &config.endpoint;
        origin.is_official_hub()
            || (origin == *endpoint.origin()
                && (config.send_token_to_endpoint || endpoint.is_official()))
    }

    /// The next tree page, if any. A link to the endpoint is used verbatim;
    /// a link to an official Hub host from a mirror is asked from the
    /// endpoint (same path and query); anything else is refused.
    fn next_page_url(&self, current: &Url, page_headers: &HeaderMap) -> Result<Option<Url>> {
        let Some(raw) = headers::link_next(page_headers) else {
            return Ok(None);
        };
        let shown = RedactedUrl::new(current.as_str());
        let next = current.join(&raw).map_err(|e| Error::Malformed {
            url: shown.clone(),
            reason: format!("unreadable next-page link: {e}"),
        })?;
        let endpoint = self.endpoint();
        let origin = Origin::of(&next);
        if origin.as_ref() == Some(endpoint.origin()) {
            return Ok(Some(next));
        }
        if origin.is_some_and(|o| o.is_official_hub()) {
            let mut local = format!("{}{}", endpoint.as_str(), next.path());
            if let Some(query) = next.query() {
                local.push('?');
                local.push_str(query);
            }
            warn!(
                link = %RedactedUrl::new(next.as_str()),
                "the mirror passed the Hub's next-page link through; asking the mirror"
            );
            return Self::parse_url(&local).map(Some);
        }
        Err(Error::IncompleteListing {
            url: shown,
            reason: format!(
                "the next-page link points to {}, which is neither the endpoint nor a Hub host",
                RedactedUrl::new(next.as_str())
            ),
        })
    }

    fn parse_url(url: &str) -> Result<Url> {
        Url::parse(url).map_err(|e| Error::Malformed {
            url: RedactedUrl::new(url),
            reason: format!("not a valid URL: {e}"),
        })
    }

    /// Runs `op` until it succeeds, fails for good, or retries run out.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let policy = &self.inner.config.retry;
        let mut attempt = 0u32;
        loop {
            let error = match op().await {
                Ok(value) => return Ok(value),
                Err(e) if !e.is_retryable() || attempt >= policy.max_retries => return Err(e),
                // An endpoint that refuses the very first connection is down
                // or mistyped, not busy: backing off (about 15 s) only delays
                // the fail-over to the next endpoint, or the error.
                Err(e) if e.is_refused() && !self.inner.answered.load(Ordering::Relaxed) => {
                    return Err(e);
                }
                Err(e) => e,
            };
            let delay = match error.retry_after() {
                Some(wait) if wait > policy.max_wait => return Err(error),
                Some(wait) => wait,
                None => backoff(policy, attempt),
            };
            attempt += 1;
            warn!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "hub request failed; retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// `text` with every occurrence of `secret` replaced by `hf_***`.
fn scrub(text: &[u8], secret: &[u8]) -> Vec<u8> {
    if secret.is_empty() {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if rest.starts_with(secret) {
            out.extend_from_slice(b"hf_***");
            rest = &rest[secret.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Capped exponential backoff with ±25 % jitter.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let base = policy
        .base_delay
        .saturating_mul(1u32 << attempt.min(16))
        .min(policy.max_delay);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // 0.75 ..= 1.25 of the base delay.
    let factor = 0.75 + f64::from(nanos % 1000) / 1998.0;
    base.mul_f64(factor)
}

/// Reads a small redirect body so the connection can be reused; drops it
/// unread when it is large or of unknown size.
async fn drain(response: Response<Body>) {
    let small = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n <= 64 * 1024);
    if small {
        let _ = response.into_body().collect_limited(64 * 1024).await;
    }
}

fn body_error(url: &Url, error: hfd_http::Error, limit: usize) -> Error {
    let shown = RedactedUrl::new(url.as_str());
    match error {
        hfd_http::Error::BodyTooLarge { .. } => Error::Malformed {
            url: shown,
            reason: format!("the answer is larger than {limit} bytes"),
        },
        source => Error::Unreachable { url: shown, source },
    }
}

/// The absolute target of a redirect, resolved against `current` (RFC 3986:
/// the target's query is kept, the base query is not).
pub(crate) fn redirect_target(current: &Url, response_headers: &HeaderMap) -> Result<Url> {
    let malformed = |reason: String| Error::Malformed {
        url: RedactedUrl::new(current.as_str()),
        reason,
    };
    let location = response_headers
        .get(header::LOCATION)
        .ok_or_else(|| malformed("a redirect without a Location header".to_owned()))?
        .to_str()
        .map_err(|_| malformed("a Location header that is not ASCII".to_owned()))?;
    current
        .join(location.trim())
        .map_err(|e| malformed(format!("an unreadable Location header: {e}")))
}

/// The redirect policy of protocol §3.3: never https→http; same origin
/// (scheme, host, port) is followed; otherwise only https Hub hosts.
pub(crate) fn may_follow(endpoint: &Endpoint, from: &Url, to: &Url) -> bool {
    let (Some(from_origin), Some(to_origin)) = (Origin::of(from), Origin::of(to)) else {
        return false;
    };
    if from_origin.is_https() && !to_origin.is_https() {
        return false;
    }
    if from_origin == to_origin {
        return true;
    }
    to_origin.is_https() && endpoint.is_hub_url(to)
}

/// What a resolve answer says about the file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub(crate) etag: String,
    pub(crate) size: u64,
    pub(crate) xet_hash: Option<String>,
}

/// Reads commit, ETag, size and Xet hash from the final resolve answer
/// (protocol §3.4) and checks them against the pinned commit and the
/// listing. `url` is the URL that gave the answer.
///
/// Trust hashes, not headers: the URL names the pinned commit and the
/// listing gives the file's hash, which checks the bytes. So a missing
/// `X-Repo-Commit` or `ETag` (Olah answers a GET without both) is a quirk,
/// not an error; only a header that contradicts the pin or the listing is.
pub(crate) fn extract_metadata(
    status: StatusCode,
    response_headers: &HeaderMap,
    file: &RemoteFile,
    commit: &Commit,
    url: &Url,
) -> Result<Metadata> {
    let shown = RedactedUrl::new(url.as_str());
    if let Some(served_commit) = headers::text(response_headers, "x-repo-commit")
        && !served_commit.eq_ignore_ascii_case(commit.as_str())
    {
        return Err(Error::CommitMismatch {
            path: file.path.clone(),
            expected: commit.to_string(),
            got: served_commit,
        });
    }
    let etag = headers::text(response_headers, "x-linked-etag")
        .or_else(|| headers::text(response_headers, "etag"))
        .map(|raw| headers::normalize_etag(&raw))
        .filter(|e| !e.is_empty())
        // The listing's hash is the identity the Hub would have sent.
        .unwrap_or_else(|| file.etag());
    let is_hash =
        (etag.len() == 40 || etag.len() == 64) && etag.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hash && !etag.eq_ignore_ascii_case(&file.etag()) {
        return Err(Error::Changed {
            path: file.path.clone(),
            what: "etag",
            listed: file.etag(),
            served: etag,
        });
    }
    // A redirect's Content-Length is the size of its own body: never the file's.
    let identity = response_headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim().eq_ignore_ascii_case("identity"));
    if !status.is_redirection() && !identity {
        return Err(Error::Malformed {
            url: shown,
            reason: format!(
                "{:?} came with Content-Encoding {:?} although identity was asked; the bytes \
                 would not be the file's",
                file.path,
                headers::text(response_headers, "content-encoding").unwrap_or_default()
            ),
        });
    }
    let served_size = headers::number(response_headers, "x-linked-size").or_else(|| {
        (!status.is_redirection() && identity)
            .then(|| headers::number(response_headers, "content-length"))
            .flatten()
    });
    if let Some(served) = served_size
        && served != file.size
    {
        return Err(Error::Changed {
            path: file.path.clone(),
            what: "size",
            listed: file.size.to_string(),
            served: served.to_string(),
        });
    }
    let xet_hash = headers::text(response_headers, "x-xet-hash")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|h| h.to_ascii_lowercase());
    Ok(Metadata {
        etag,
        size: file.size,
        xet_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hfd_types::ContentDigest;
    use http::HeaderValue;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const SHA256: &str = "dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f";
    const SHA1: &str = "b45ef6fec89518d314f546fd6c3025367b721684";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn lfs_file(size: u64) -> RemoteFile {
        RemoteFile {
            path: "model.safetensors".into(),
            size,
            oid: ContentDigest::from_hex(SHA1).unwrap(),
            lfs_sha256: Some(ContentDigest::from_hex(SHA256).unwrap()),
            xet_hash: None,
        }
    }

    fn meta(status: u16, pairs: &[(&'static str, &str)], file: &RemoteFile) -> Result<Metadata> {
        extract_metadata(
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            file,
            &Commit::parse(COMMIT).unwrap(),
            &Url::parse("https://huggingface.co/o/m/resolve/c/model.safetensors").unwrap(),
        )
    }

    #[test]
    fn size_comes_from_x_linked_size_never_a_redirect_body() {
        // Appendix B 2: Content-Length 341 on a 302 is the redirect body's.
        let m = meta(
            302,
            &[
                ("x-repo-commit", COMMIT),
                ("x-linked-etag", &format!("\"{SHA256}\"")),
                ("x-linked-size", "818"),
                ("content-length", "341"),
            ],
            &lfs_file(818),
        )
        .unwrap();
        assert_eq!(m.size, 818);
        let m = meta(
            307,
            &[
                ("x-repo-commit", COMMIT),
                ("etag", &format!("\"{SHA256}\"")),
                ("content-length", "341"),
            ],
            &lfs_file(818),
        )
        .unwrap();
        assert_eq!(m.size, 818);
        let err = meta(
            200,
            &[
                ("x-repo-commit", COMMIT),
                ("etag", &format!("\"{SHA256}\"")),
                ("content-length", "341"),
            ],
            &lfs_file(818),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Changed { what: "size", .. }), "{err}");
    }

    #[test]
    fn linked_etag_wins_and_is_normalized() {
        // Appendix B 5.
        let m = meta(
            302,
            &[
                ("x-repo-commit", COMMIT),
                ("x-linked-etag", &format!("W/\"{SHA256}\"")),
                ("etag", "\"something-else\""),
                ("x-xet-hash", &"AB".repeat(32)),
            ],
            &lfs_file(1),
        )
        .unwrap();
        assert_eq!(m.etag, SHA256);
        assert_eq!(m.xet_hash.unwrap(), "ab".repeat(32));
        // A mirror's invented etag is kept but not compared.
        let m = meta(
            200,
            &[("x-repo-commit", COMMIT), ("etag", "\"0123abcd-10\"")],
            &lfs_file(1),
        )
        .unwrap();
        assert_eq!(m.etag, "0123abcd-10");
        let err = meta(
            302,
            &[("x-repo-commit", COMMIT), ("x-linked-etag", SHA1)],
            &lfs_file(1),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Changed { what: "etag", .. }), "{err}");
        // No ETag at all: the listing's hash stands in (the bytes are
        // checked against it anyway).
        let m = meta(302, &[("x-repo-commit", COMMIT)], &lfs_file(1)).unwrap();
        assert_eq!(m.etag, SHA256);
    }

    #[test]
    fn missing_commit_is_a_quirk_and_other_commit_is_a_mismatch() {
        // Olah answers a resolve GET with neither X-Repo-Commit nor ETag:
        // the URL names the pinned commit, the listing gives the hash.
        let m = meta(200, &[], &lfs_file(1)).unwrap();
        assert_eq!((m.etag.as_str(), m.size), (SHA256, 1));
        let m = meta(200, &[("etag", SHA256)], &lfs_file(1)).unwrap();
        assert_eq!(m.etag, SHA256);
        let err = meta(
            200,
            &[("x-repo-commit", &"f".repeat(40)), ("etag", SHA256)],
            &lfs_file(1),
        )
        .unwrap_err();
        assert!(matches!(err, Error::CommitMismatch { .. }));
    }

    #[test]
    fn redirect_targets_resolve_per_rfc3986() {
        // Appendix B 3: the target's query is kept, the base's dropped.
        let base = Url::parse("https://huggingface.co/o/m/resolve/c/a.txt?base=1").unwrap();
        let t = redirect_target(
            &base,
            &headers(&[(
                "location",
                "/api/resolve-cache/models/o/m/c/a.txt?etag=%22x%22",
            )]),
        )
        .unwrap();
        assert_eq!(
            t.as_str(),
            "https://huggingface.co/api/resolve-cache/models/o/m/c/a.txt?etag=%22x%22"
        );
        let t = redirect_target(&base, &headers(&[("location", "../other")])).unwrap();
        assert_eq!(t.as_str(), "https://huggingface.co/o/m/resolve/other");
        assert!(redirect_target(&base, &HeaderMap::new()).is_err());
    }

    #[test]
    fn redirect_policy() {
        let mirror = Endpoint::parse("https://hf-mirror.com").unwrap();
        let u = |s: &str| Url::parse(s).unwrap();
        let from = u("https://hf-mirror.com/o/m/resolve/c/x");
        // Same origin: followed.
        assert!(may_follow(
            &mirror,
            &from,
            &u("https://hf-mirror.com/api/resolve-cache/x")
        ));
        // Mirror → official Hub over https: followed (hf-mirror's 308).
        assert!(may_follow(
            &mirror,
            &from,
            &u("https://huggingface.co/o/m/resolve/c/x")
        ));
        // CDN: stop.
        assert!(!may_follow(
            &mirror,
            &from,
            &u("https://cdn-lfs.hf-mirror.com/x?sig=1")
        ));
        assert!(!may_follow(
            &mirror,
            &from,
            &u("https://cas-bridge.xethub.hf.co/x")
        ));
        // Downgrade and other port: stop.
        assert!(!may_follow(&mirror, &from, &u("http://hf-mirror.com/x")));
        assert!(!may_follow(&mirror, &from, &u("http://huggingface.co/x")));
        assert!(!may_follow(
            &mirror,
            &from,
            &u("https://hf-mirror.com:8443/x")
        ));
        assert!(!may_follow(
            &mirror,
            &from,
            &u("https://huggingface.co:444/x")
        ));
        // A plain-http local endpoint follows its own origin only.
        let local = Endpoint::parse("http://127.0.0.1:9000").unwrap();
        let from = u("http://127.0.0.1:9000/o/m/resolve/c/x");
        assert!(may_follow(
            &local,
            &from,
            &u("http://127.0.0.1:9000/api/resolve-cache/x")
        ));
        assert!(!may_follow(
            &local,
            &from,
            &u("http://127.0.0.1:9001/cdn/x")
        ));
        assert!(!may_follow(&local, &from, &u("http://localhost:9000/x")));
    }

    fn client(endpoint: &str, token: Option<&str>, to_endpoint: bool) -> HubClient {
        let config = HubConfig {
            endpoint: Endpoint::parse(endpoint).unwrap(),
            token: token.map(|t| Token::new(t).unwrap()),
            send_token_to_endpoint: to_endpoint,
            ..HubConfig::default()
        };
        HubClient::new(
            config,
            HttpClient::new(hfd_http::HttpConfig::default()).unwrap(),
        )
    }

    #[test]
    fn token_goes_to_hub_hosts_only() {
        let c = client("https://hf-mirror.com", Some("hf_x"), true);
        assert!(c.sends_token_to("https://hf-mirror.com/o/m/resolve/c/x"));
        assert!(c.sends_token_to("https://huggingface.co/o/m/resolve/c/x"));
        assert!(!c.sends_token_to("http://huggingface.co/x"));
        assert!(!c.sends_token_to("https://cdn-lfs.hf.co/x"));
        assert!(!c.sends_token_to("https://hf-mirror.com:8443/x"));
        let c = client("https://hf-mirror.com", Some("hf_x"), false);
        assert!(!c.sends_token_to("https://hf-mirror.com/o/m/resolve/c/x"));
        assert!(c.sends_token_to("https://huggingface.co/o/m/resolve/c/x"));
        let c = client("https://huggingface.co", Some("hf_x"), false);
        assert!(c.sends_token_to("https://huggingface.co/x"));
        let c = client("https://huggingface.co", None, true);
        assert!(!c.sends_token_to("https://huggingface.co/x"));
        let c = client("http://127.0.0.1:9000", Some("hf_x"), true);
        assert!(c.sends_token_to("http://127.0.0.1:9000/x"));
        assert!(!c.sends_token_to("http://127.0.0.1:9001/x"));
    }

    #[test]
    fn download_headers_follow_send_token() {
        let c = client("http://127.0.0.1:9000", Some("hf_x"), true);
        let mut f = ResolvedFile {
            path: "a".into(),
            url: RedactedUrl::new("http://127.0.0.1:9001/cdn/a?sig=1"),
            size: 1,
            etag: SHA1.into(),
            commit: Commit::parse(COMMIT).unwrap(),
            send_token: false,
            is_cdn: true,
            xet_hash: None,
        };
        assert!(c.download_headers(&f).is_empty());
        // Even a wrongly set flag cannot send the token to a CDN host.
        f.send_token = true;
        assert!(c.download_headers(&f).is_empty());
        f.url = RedactedUrl::new("http://127.0.0.1:9000/api/resolve-cache/a");
        let h = c.download_headers(&f);
        assert!(h[header::AUTHORIZATION].is_sensitive());
    }

    #[test]
    fn scrub_removes_every_copy_of_the_secret() {
        assert_eq!(
            scrub(b"bad token Bearer hf_x1 and hf_x1.", b"hf_x1"),
            b"bad token Bearer hf_*** and hf_***."
        );
        assert_eq!(scrub(b"hf_", b"hf_x1"), b"hf_");
        assert_eq!(scrub(b"abc", b""), b"abc");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        let d0 = backoff(&p, 0);
        assert!(d0 >= Duration::from_millis(750) && d0 <= Duration::from_millis(1250));
        let d5 = backoff(&p, 5);
        assert!(d5 >= Duration::from_secs(6) && d5 <= Duration::from_secs(10));
        let d40 = backoff(&p, 40);
        assert!(d40 <= Duration::from_secs(10));
    }
}
