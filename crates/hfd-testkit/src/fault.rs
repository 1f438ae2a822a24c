//! Runtime-settable fault injection.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::log::{Origin, Route, lock};

/// What goes wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// Send `bytes` body bytes, wait 50 ms, then reset the TCP connection (RST; under
    /// HTTP/2 the whole connection, not just the stream). No effect if the body is shorter.
    ResetAfterBytes(u64),
    /// Send `bytes` body bytes, then send nothing for `duration`, then continue.
    StallAfterBytes {
        /// Body bytes sent before the stall.
        bytes: u64,
        /// How long nothing is sent.
        duration: Duration,
    },
    /// Answer with this status (e.g. 500, 502, 503) and a small JSON error body.
    Status(u16),
    /// Answer 429 with `Retry-After: secs` and `RateLimit: "resolvers";r=0;t=secs`.
    RateLimited {
        /// Seconds in `Retry-After` and in the `t=` of `RateLimit`.
        retry_after_secs: u64,
    },
    /// Answer a range request with 200 and the whole body.
    IgnoreRange,
    /// Answer a range request with 206 and the right bytes but a `Content-Range` shifted by one.
    WrongContentRange,
    /// Promise the full length, send `missing` bytes less, wait 50 ms, then close the
    /// connection (FIN; under HTTP/2 the stream is reset).
    ShortBody {
        /// Bytes withheld at the end.
        missing: u64,
    },
    /// Send `extra` bytes more than the `Content-Range` (or file size) says; `Content-Length`
    /// covers them.
    LongBody {
        /// Bytes appended.
        extra: u64,
    },
    /// Answer content with a different `ETag` than the resolve step announced.
    ChangeEtag,
    /// Right status and headers, wrong bytes: every body byte of the content is inverted
    /// (a glitching CDN, or an error page of the same length). Only the hash can tell.
    /// With [`Fault::times`] it corrupts the first N answers for a path.
    CorruptBody,
    /// CDN only: answer 403 as if the presigned URL had expired.
    ExpiredUrl,
    /// Wait this long before answering.
    Delay(Duration),
    /// Hostile: announce `Content-Length: n` (e.g. far more than the file), send the real
    /// bytes, wait 50 ms and close the connection.
    LyingContentLength(u64),
    /// Hostile: send the content without `Content-Length`, then garbage forever (until the
    /// client hangs up, or 4 GiB). Under HTTP/1.1 the body is chunked.
    EndlessBody,
    /// Hostile: answer with `Content-Encoding: gzip` and the content gzipped (stored
    /// blocks), although the client asked for `Accept-Encoding: identity`. `Content-Range`
    /// still names the uncompressed bytes.
    GzipBody,
    /// Hostile: a 206 whose `Content-Range` names bytes past the end of the file
    /// (`bytes <size>-<size+len-1>/<size>`), with the right body.
    ContentRangeOutside,
    /// Hostile: add an `x-hostile-padding` header of this many bytes to the real answer.
    HugeHeader(usize),
    /// Hostile: rewrite the `Location` of the real answer (a redirect) from `https://` to
    /// `http://`; answers that are not redirects are left alone.
    DowngradeRedirect,
    /// Hostile: answer 302 to the very URL requested (a redirect loop).
    RedirectLoop,
    /// Hostile: a chain of `hops` 302 redirects (same origin, `hfd-hop=N` in the query)
    /// before the real answer. Use with [`Fault::always`].
    RedirectChain(u32),
    /// Hostile: answer 307 to this absolute URL (e.g. another host).
    RedirectTo(String),
    /// Hostile: answer 200 `application/json` with this raw body (JSON bombs, junk).
    JsonBody(String),
    /// Hostile: answer 400 with the request's `Authorization` value echoed in
    /// `X-Error-Message` and in the JSON error body (a server fishing for a leak).
    EchoAuthorization,
    /// Mirror quirk: remove these headers (lower-case names, e.g. `x-repo-commit`, `etag`)
    /// from the real answer, as mirrors that do not pass the Hub's headers through do.
    DropHeaders(Vec<String>),
    /// Mirror quirk: send `ETag` and `X-Linked-ETag` as weak validators (`W/"…"`).
    WeakEtag,
    /// Mirror quirk: send the hashes in `ETag` and `X-Linked-ETag` in upper case.
    UppercaseEtag,
    /// Mirror quirk: a tree page's `Link: rel="next"` points at `https://huggingface.co`
    /// (the Hub's own link passed through) instead of the mirror.
    HubNextLink,
    /// Mirror quirk (hf-mirror on a captcha or for some `Referer`s): answer `200 text/html`
    /// with a small web page instead of the file.
    HtmlPage,
    /// Hostile: echo the request's `Authorization` (the token, without `Bearer `)
    /// through one text channel of the real answer; see [`EchoChannel`]. Use with
    /// [`Fault::always`] on the route whose answer carries the channel.
    EchoTokenIn(EchoChannel),
    /// Hostile: answer 200 `application/json` with a tree listing that never ends
    /// (`[` then directory entries forever, no `Content-Length`), until the client hangs up
    /// or 4 GiB.
    EndlessJson,
}

/// Where [`FaultKind::EchoTokenIn`] puts the echoed token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EchoChannel {
    /// Replaces the value of this response header (`etag`, `x-repo-commit`,
    /// `x-linked-etag`, `x-linked-size`, `x-error-message`, …) with the token.
    Header(&'static str),
    /// Adds a `Link: <…/token?cursor=token>; rel="next"` header (a next page named by it).
    NextLink,
    /// Inserts the token as a path segment and a query value of the `Location`.
    Location,
}

/// When a fault acts on a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Replaces or delays the whole answer, before routing.
    Pre,
    /// Changes a response that carries file bytes.
    Content,
    /// Rewrites the real answer after routing.
    Post,
}

impl FaultKind {
    /// Short name, as recorded in [`crate::LogEntry::fault`].
    pub fn name(&self) -> &'static str {
        match self {
            Self::ResetAfterBytes(_) => "reset",
            Self::StallAfterBytes { .. } => "stall",
            Self::Status(_) => "status",
            Self::RateLimited { .. } => "rate-limited",
            Self::IgnoreRange => "ignore-range",
            Self::WrongContentRange => "wrong-content-range",
            Self::ShortBody { .. } => "short-body",
            Self::LongBody { .. } => "long-body",
            Self::ChangeEtag => "change-etag",
            Self::CorruptBody => "corrupt-body",
            Self::ExpiredUrl => "expired-url",
            Self::Delay(_) => "delay",
            Self::LyingContentLength(_) => "lying-content-length",
            Self::EndlessBody => "endless-body",
            Self::GzipBody => "gzip-body",
            Self::ContentRangeOutside => "content-range-outside",
            Self::HugeHeader(_) => "huge-header",
            Self::DowngradeRedirect => "downgrade-redirect",
            Self::RedirectLoop => "redirect-loop",
            Self::RedirectChain(_) => "redirect-chain",
            Self::RedirectTo(_) => "redirect-to",
            Self::JsonBody(_) => "json-body",
            Self::EndlessJson => "endless-json",
            Self::EchoAuthorization => "echo-authorization",
            Self::DropHeaders(_) => "drop-headers",
            Self::WeakEtag => "weak-etag",
            Self::UppercaseEtag => "uppercase-etag",
            Self::HubNextLink => "hub-next-link",
            Self::HtmlPage => "html-page",
            Self::EchoTokenIn(_) => "echo-token",
        }
    }

    pub(crate) fn stage(&self) -> Stage {
        if self.needs_content() {
            Stage::Content
        } else if matches!(
            self,
            Self::HugeHeader(_)
                | Self::DowngradeRedirect
                | Self::DropHeaders(_)
                | Self::WeakEtag
                | Self::UppercaseEtag
                | Self::HubNextLink
                | Self::EchoTokenIn(_)
        ) {
            Stage::Post
        } else {
            Stage::Pre
        }
    }

    /// Whether the fault only makes sense on a response that carries file content.
    fn needs_content(&self) -> bool {
        matches!(
            self,
            Self::ResetAfterBytes(_)
                | Self::StallAfterBytes { .. }
                | Self::IgnoreRange
                | Self::WrongContentRange
                | Self::ShortBody { .. }
                | Self::LongBody { .. }
                | Self::ChangeEtag
                | Self::CorruptBody
                | Self::LyingContentLength(_)
                | Self::EndlessBody
                | Self::GzipBody
                | Self::ContentRangeOutside
        )
    }

    fn needs_range(&self) -> bool {
        matches!(
            self,
            Self::IgnoreRange | Self::WrongContentRange | Self::ContentRangeOutside
        )
    }
}

/// Which requests a fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultTarget {
    /// Every request on either listener.
    Any,
    /// Every request to the hub listener.
    Hub,
    /// `/api/...` JSON endpoints.
    Api,
    /// `/resolve/` requests.
    Resolve,
    /// `/api/resolve-cache/` (regular file content of public repos).
    ResolveCache,
    /// The CDN listener.
    Cdn,
}

impl FaultTarget {
    fn matches(self, origin: Origin, route: Route) -> bool {
        match self {
            Self::Any => true,
            Self::Hub => origin == Origin::Hub,
            Self::Api => route == Route::Api,
            Self::Resolve => route == Route::Resolve,
            Self::ResolveCache => route == Route::ResolveCache,
            Self::Cdn => origin == Origin::Cdn,
        }
    }
}

/// A fault plus its scope: which requests, how many times.
///
/// ```
/// use hfd_testkit::{Fault, FaultKind, FaultTarget};
/// let f = Fault::new(FaultKind::ResetAfterBytes(1000)).on(FaultTarget::Cdn).times(2);
/// # let _ = f;
/// ```
#[derive(Clone, Debug)]
pub struct Fault {
    kind: FaultKind,
    target: FaultTarget,
    path_contains: Option<String>,
    query_contains: Option<String>,
    ranged_only: bool,
    times: Option<u64>,
}

impl Fault {
    /// Fires once, on the next request it applies to, on any listener.
    ///
    /// Content faults (reset, stall, short/long body, range and ETag faults) only apply to
    /// responses carrying file bytes; `IgnoreRange`/`WrongContentRange` only to range requests;
    /// `ExpiredUrl` only to the CDN.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind,
            target: FaultTarget::Any,
            path_contains: None,
            query_contains: None,
            ranged_only: false,
            times: Some(1),
        }
    }

    /// Restricts the fault to one class of requests.
    #[must_use]
    pub fn on(mut self, target: FaultTarget) -> Self {
        self.target = target;
        self
    }

    /// Restricts the fault to requests whose raw (percent-encoded) path contains `needle`.
    #[must_use]
    pub fn path_contains(mut self, needle: &str) -> Self {
        self.path_contains = Some(needle.to_owned());
        self
    }

    /// Restricts the fault to requests whose raw query contains `needle`
    /// (one tree page: `cursor=` and [`crate::tree_cursor`]).
    #[must_use]
    pub fn query_contains(mut self, needle: &str) -> Self {
        self.query_contains = Some(needle.to_owned());
        self
    }

    /// Restricts the fault to requests with a `Range` header.
    #[must_use]
    pub fn ranged_only(mut self) -> Self {
        self.ranged_only = true;
        self
    }

    /// Fires on the next `n` matching requests.
    #[must_use]
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Fires on every matching request until cleared.
    #[must_use]
    pub fn always(mut self) -> Self {
        self.times = None;
        self
    }

    /// The fault kind.
    pub fn kind(&self) -> &FaultKind {
        &self.kind
    }
}

/// Facts about a request, used to pick a fault.
pub(crate) struct RequestFacts<'a> {
    pub(crate) origin: Origin,
    pub(crate) route: Route,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    pub(crate) has_range: bool,
    pub(crate) has_content: bool,
}

/// The fault knobs of a running hub. Rules are tried in insertion order; the first that
/// applies to a request fires (and uses up one of its `times`).
#[derive(Debug)]
pub struct Faults {
    rules: Mutex<Vec<Fault>>,
    url_ttl_secs: AtomicU64,
    extra_tree_entries: Mutex<Vec<String>>,
    synthetic_tree_entries: AtomicU64,
}

impl Faults {
    pub(crate) fn new(url_ttl: Duration) -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
            url_ttl_secs: AtomicU64::new(url_ttl.as_secs()),
            extra_tree_entries: Mutex::new(Vec::new()),
            synthetic_tree_entries: AtomicU64::new(0),
        }
    }

    /// Adds a fault rule.
    pub fn inject(&self, fault: Fault) {
        lock(&self.rules).push(fault);
    }

    /// Removes every rule.
    pub fn clear(&self) {
        lock(&self.rules).clear();
    }

    /// Rules that can still fire.
    pub fn pending(&self) -> usize {
        lock(&self.rules).len()
    }

    /// Sets `X-Amz-Expires` of CDN URLs signed from now on (whole seconds; 0 = already
    /// expired). The CDN answers 403 once `X-Amz-Date + X-Amz-Expires` has passed.
    pub fn set_cdn_url_ttl(&self, ttl: Duration) {
        self.url_ttl_secs.store(ttl.as_secs(), Ordering::SeqCst);
    }

    /// Hostile listings: splices these raw JSON texts (one entry each, written as is, so
    /// they may be anything, e.g. `{"type":"file","path":"../x",…}`) into the first page
    /// of every tree listing, after the real entries. An empty list turns it off.
    pub fn set_extra_tree_entries<S: Into<String>>(&self, entries: impl IntoIterator<Item = S>) {
        *lock(&self.extra_tree_entries) = entries.into_iter().map(Into::into).collect();
    }

    pub(crate) fn extra_tree_entries(&self) -> Vec<String> {
        lock(&self.extra_tree_entries).clone()
    }

    /// Huge listings: from now on every tree listing consists of `entries` generated files
    /// (`huge/000000000.bin`, … of 1 byte each, all with the oid of the content `"x"`),
    /// paginated by the tree page size and produced page by page on demand, so the hub
    /// never holds the listing. 0 turns it off. Resolving these files answers 404.
    pub fn set_synthetic_tree_entries(&self, entries: u64) {
        self.synthetic_tree_entries.store(entries, Ordering::SeqCst);
    }

    pub(crate) fn synthetic_tree_entries(&self) -> u64 {
        self.synthetic_tree_entries.load(Ordering::SeqCst)
    }

    pub(crate) fn cdn_url_ttl_secs(&self) -> u64 {
        self.url_ttl_secs.load(Ordering::SeqCst)
    }

    /// Finds and consumes the first applicable rule.
    pub(crate) fn take(&self, facts: &RequestFacts<'_>, stage: Stage) -> Option<FaultKind> {
        let mut rules = lock(&self.rules);
        let idx = rules.iter().position(|f| {
            f.target.matches(facts.origin, facts.route)
                && f.kind.stage() == stage
                && (!f.kind.needs_content() || facts.has_content)
                && (!(f.ranged_only || f.kind.needs_range()) || facts.has_range)
                && (f.kind != FaultKind::ExpiredUrl || facts.origin == Origin::Cdn)
                && f.path_contains
                    .as_deref()
                    .is_none_or(|n| facts.path.contains(n))
                && f.query_contains
                    .as_deref()
                    .is_none_or(|n| facts.query.contains(n))
        })?;
        let kind = rules[idx].kind.clone();
        match &mut rules[idx].times {
            Some(n) if *n <= 1 => {
                rules.remove(idx);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(kind)
    }
}
