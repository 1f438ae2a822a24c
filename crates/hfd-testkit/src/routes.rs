//! Request routing for the hub and CDN listeners.

#![expect(
    clippy::result_large_err,
    reason = "an early error answer is built once per request; boxing it buys nothing"
)]

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full, Limited};
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::body::{ContentRequest, content_response, counted_full, header_value};
use crate::content::Blob;
use crate::fault::{FaultKind, RequestFacts, Stage};
use crate::fixture::{Access, RepoType};
use crate::hub::Shared;
use crate::log::{ConnShared, EntryCell, LogEntry, Origin, Route, lock};
use crate::state::{Commit, RepoState, amz_time, iso_time, parse_amz_time};

pub(crate) type ResBody = UnsyncBoxBody<Bytes, std::io::Error>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

pub(crate) fn empty() -> ResBody {
    Empty::new()
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// Encodes everything but unreserved characters and `/` (file paths in resolve URLs).
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
/// Encodes everything but unreserved characters (revisions, query values).
const COMPONENT_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn encode_path(s: &str) -> String {
    utf8_percent_encode(s, PATH_SET).to_string()
}

pub(crate) fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT_SET).to_string()
}

/// Per-request context.
struct Ctx {
    shared: Arc<Shared>,
    conn: Arc<ConnShared>,
    cell: Arc<EntryCell>,
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    route: Route,
}

impl Ctx {
    fn range(&self) -> Option<&str> {
        self.headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
    }

    fn facts(&self, has_content: bool) -> RequestFacts<'_> {
        RequestFacts {
            origin: self.conn.origin,
            route: self.route,
            path: &self.path,
            has_range: self.headers.contains_key(header::RANGE),
            has_content,
        }
    }

    fn note_fault(&self, kind: &FaultKind) {
        let mut e = lock(&self.cell.entry);
        if e.fault.is_none() {
            e.fault = Some(kind.name());
        }
    }

    fn content(
        &self,
        blob: &Arc<Blob>,
        etag: &str,
        extra_headers: Vec<(&'static str, String)>,
    ) -> Response<ResBody> {
        let fault = self.shared.faults.take(&self.facts(true), Stage::Content);
        if let Some(f) = &fault {
            self.note_fault(f);
        }
        content_response(ContentRequest {
            method: &self.method,
            range: self.range(),
            blob,
            etag,
            extra_headers,
            fault,
            cell: self.cell.clone(),
            conn: self.conn.clone(),
        })
    }

    fn json(&self, value: &Value) -> Response<ResBody> {
        let body = serde_json::to_vec(value).expect("JSON values serialize");
        self.json_bytes(StatusCode::OK, body)
    }

    fn json_bytes(&self, status: StatusCode, body: Vec<u8>) -> Response<ResBody> {
        let len = body.len();
        let body = if self.method == Method::HEAD {
            empty()
        } else {
            counted_full(&self.cell, body)
        };
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .header(header::CONTENT_LENGTH, len)
            .body(body)
            .expect("valid response")
    }

    /// A hub error with `X-Error-Code` / `X-Error-Message` and a JSON body.
    fn error(
        &self,
        status: StatusCode,
        code: Option<&str>,
        message: &str,
        commit: Option<&str>,
    ) -> Response<ResBody> {
        let mut resp = self.json_bytes(
            status,
            serde_json::to_vec(&json!({ "error": message })).expect("JSON values serialize"),
        );
        let h = resp.headers_mut();
        if let Some(code) = code {
            h.insert("x-error-code", header_value(code));
        }
        h.insert("x-error-message", header_value(message));
        if let Some(commit) = commit {
            h.insert("x-repo-commit", header_value(commit));
        }
        resp
    }

    fn not_found(&self) -> Response<ResBody> {
        self.error(StatusCode::NOT_FOUND, None, "Not Found", None)
    }

    fn repo_not_found(&self, caller: Caller) -> Response<ResBody> {
        let status = if caller == Caller::Anonymous {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::NOT_FOUND
        };
        self.error(status, Some("RepoNotFound"), "Repository not found", None)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Anonymous,
    /// A valid token with access to every repo.
    Full,
    /// A valid token without access to private or gated repos.
    Limited,
}

/// Entry point for both listeners.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnShared>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    let route = classify(conn.origin, &path);
    let cell = shared.log.record(LogEntry {
        seq: 0,
        origin: conn.origin,
        route,
        connection_id: conn.id,
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        version: format!("{:?}", parts.version),
        status: 0,
        range: parts
            .headers
            .get(header::RANGE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        has_authorization: parts.headers.contains_key(header::AUTHORIZATION),
        location: None,
        fault: None,
        body_bytes: 0,
    });
    let ctx = Ctx {
        shared: shared.clone(),
        conn,
        cell: cell.clone(),
        method: parts.method,
        path,
        query,
        headers: parts.headers,
        route,
    };
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    let mut resp = match pre_fault(&ctx).await {
        Some(resp) => resp,
        None => dispatch(&ctx, body).await,
    };
    post_fault(&ctx, &mut resp);
    let request_id = format!(
        "Root=1-fakehub-{:08x}",
        shared
            .request_counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    resp.headers_mut()
        .insert("x-request-id", header_value(&request_id));
    {
        let mut e = lock(&cell.entry);
        e.status = resp.status().as_u16();
        e.location = resp
            .headers()
            .get(header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    tracing::debug!(
        origin = ?ctx.conn.origin,
        method = %ctx.method,
        path = %ctx.path,
        status = resp.status().as_u16(),
        "fake hub answered"
    );
    Ok(resp)
}

fn classify(origin: Origin, path: &str) -> Route {
    if origin == Origin::Cdn {
        return Route::Cdn;
    }
    if path.starts_with("/api/resolve-cache/") {
        Route::ResolveCache
    } else if path.starts_with("/api/") {
        Route::Api
    } else if path.split('/').skip(1).take(4).any(|s| s == "resolve") {
        Route::Resolve
    } else {
        Route::Other
    }
}

/// Faults that rewrite the real answer (huge header, downgraded redirect).
fn post_fault(ctx: &Ctx, resp: &mut Response<ResBody>) {
    let Some(kind) = ctx.shared.faults.take(&ctx.facts(false), Stage::Post) else {
        return;
    };
    ctx.note_fault(&kind);
    match kind {
        FaultKind::HugeHeader(n) => {
            let padding = "a".repeat(n);
            resp.headers_mut()
                .insert("x-hostile-padding", header_value(&padding));
        }
        FaultKind::DowngradeRedirect => {
            let Some(location) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
            else {
                return;
            };
            let http_base = ctx.shared.hub_base.replacen("https://", "http://", 1);
            let downgraded = if let Some(rest) = location.strip_prefix("https://") {
                format!("http://{rest}")
            } else if location.starts_with('/') {
                format!("{http_base}{location}")
            } else {
                location
            };
            resp.headers_mut()
                .insert(header::LOCATION, header_value(&downgraded));
        }
        FaultKind::DropHeaders(names) => {
            for name in names {
                resp.headers_mut().remove(name.as_str());
            }
        }
        FaultKind::WeakEtag | FaultKind::UppercaseEtag => {
            for name in [header::ETAG.as_str(), "x-linked-etag"] {
                let Some(value) = resp.headers().get(name).and_then(|v| v.to_str().ok()) else {
                    continue;
                };
                let changed = if kind == FaultKind::WeakEtag {
                    format!("W/{value}")
                } else {
                    value.to_ascii_uppercase()
                };
                resp.headers_mut().insert(name, header_value(&changed));
            }
        }
        FaultKind::HubNextLink => {
            let Some(link) = resp
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
            else {
                return;
            };
            let passed_through = link.replacen(&ctx.shared.hub_base, "https://huggingface.co", 1);
            resp.headers_mut()
                .insert(header::LINK, header_value(&passed_through));
        }
        _ => {}
    }
}

/// The value of `hfd-hop` in a query, 0 when absent.
fn hop_of(query: Option<&str>) -> u32 {
    query_pairs(query)
        .iter()
        .find(|(k, _)| k == "hfd-hop")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// The request's path and query with `hfd-hop` set to `hop`.
fn with_hop(ctx: &Ctx, hop: u32) -> String {
    let mut params: Vec<String> = ctx
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("hfd-hop="))
        .map(str::to_owned)
        .collect();
    params.push(format!("hfd-hop={hop}"));
    format!("{}?{}", ctx.path, params.join("&"))
}

/// A JSON tree listing that never ends (bounded at 4 GiB).
fn endless_json() -> ResBody {
    const LIMIT: u64 = 4 << 30;
    let entry = Bytes::from_static(
        br#"{"type":"directory","oid":"0000000000000000000000000000000000000000","size":0,"path":"endless"},"#,
    );
    let chunk: Bytes = std::iter::repeat_n(entry.as_ref(), 512)
        .flatten()
        .copied()
        .collect::<Vec<u8>>()
        .into();
    let stream = futures::stream::unfold(0u64, move |sent| {
        let chunk = chunk.clone();
        async move {
            if sent >= LIMIT {
                return None;
            }
            let frame = if sent == 0 {
                let mut first = b"[".to_vec();
                first.extend_from_slice(&chunk);
                Bytes::from(first)
            } else {
                chunk
            };
            let n = frame.len() as u64;
            Some((Ok(http_body::Frame::data(frame)), sent + n))
        }
    });
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

/// Faults that replace the whole answer (status, 429, expired URL, hostile redirects and
/// bodies) or delay it.
async fn pre_fault(ctx: &Ctx) -> Option<Response<ResBody>> {
    let kind = ctx.shared.faults.take(&ctx.facts(false), Stage::Pre)?;
    ctx.note_fault(&kind);
    match kind {
        FaultKind::RedirectLoop => {
            let here = match &ctx.query {
                Some(q) => format!("{}?{q}", ctx.path),
                None => ctx.path.clone(),
            };
            Some(redirect(ctx, StatusCode::FOUND, &here, "Found", vec![]))
        }
        FaultKind::RedirectChain(hops) => {
            let hop = hop_of(ctx.query.as_deref());
            (hop < hops).then(|| {
                redirect(
                    ctx,
                    StatusCode::FOUND,
                    &with_hop(ctx, hop + 1),
                    "Found",
                    vec![],
                )
            })
        }
        FaultKind::RedirectTo(url) => Some(redirect(
            ctx,
            StatusCode::TEMPORARY_REDIRECT,
            &url,
            "Temporary Redirect",
            vec![],
        )),
        FaultKind::JsonBody(text) => Some(ctx.json_bytes(StatusCode::OK, text.into_bytes())),
        FaultKind::EchoAuthorization => {
            let sent = ctx
                .headers
                .get(header::AUTHORIZATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            Some(ctx.error(
                StatusCode::BAD_REQUEST,
                None,
                &format!("Bad request with Authorization: {sent}"),
                None,
            ))
        }
        FaultKind::EndlessJson => Some(
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                .body(if ctx.method == Method::HEAD {
                    empty()
                } else {
                    endless_json()
                })
                .expect("valid response"),
        ),
        FaultKind::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
        FaultKind::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let msg = status.canonical_reason().unwrap_or("Injected error");
            Some(ctx.error(status, None, msg, None))
        }
        FaultKind::RateLimited { retry_after_secs } => {
            let mut resp = ctx.error(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                "You have exceeded our rate limit for resolvers.",
                None,
            );
            let h = resp.headers_mut();
            h.insert(header::RETRY_AFTER, retry_after_secs.into());
            h.insert(
                "ratelimit",
                header_value(&format!("\"resolvers\";r=0;t={retry_after_secs}")),
            );
            h.insert(
                "ratelimit-policy",
                header_value("\"fixed window\";\"resolvers\";q=3000;w=300"),
            );
            Some(resp)
        }
        FaultKind::ExpiredUrl => Some(s3_error(ctx, "AccessDenied", "Request has expired")),
        FaultKind::HtmlPage => {
            let page = "<!DOCTYPE html><html><head><title>Just a moment...</title></head>\
                        <body>Checking your browser before accessing the mirror.</body></html>\n";
            Some(
                Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                    .header(header::CONTENT_LENGTH, page.len())
                    .body(if ctx.method == Method::HEAD {
                        empty()
                    } else {
                        counted_full(&ctx.cell, page)
                    })
                    .expect("valid response"),
            )
        }
        _ => None,
    }
}

async fn dispatch(ctx: &Ctx, body: Incoming) -> Response<ResBody> {
    if ctx.conn.origin == Origin::Cdn {
        return cdn(ctx);
    }
    let caller = match authenticate(ctx) {
        Ok(c) => c,
        Err(rejected) => return rejected,
    };
    let Some(segs) = decode_segments(&ctx.path) else {
        return ctx.error(StatusCode::BAD_REQUEST, None, "Invalid URL encoding", None);
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match ctx.route {
        Route::Api => api(ctx, caller, &segs, body).await,
        Route::ResolveCache => resolve_cache(ctx, caller, &segs[2..]),
        Route::Resolve => resolve(ctx, caller, &segs),
        Route::Cdn | Route::Other => ctx.not_found(),
    }
}

fn authenticate(ctx: &Ctx) -> Result<Caller, Response<ResBody>> {
    let Some(value) = ctx.headers.get(header::AUTHORIZATION) else {
        return Ok(Caller::Anonymous);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(t) if ctx.shared.tokens_full.iter().any(|x| x == t) => Ok(Caller::Full),
        Some(t) if ctx.shared.tokens_limited.iter().any(|x| x == t) => Ok(Caller::Limited),
        _ => Err(ctx.error(
            StatusCode::UNAUTHORIZED,
            None,
            "Invalid credentials in Authorization header",
            None,
        )),
    }
}

fn decode_segments(path: &str) -> Option<Vec<String>> {
    path.split('/')
        .skip(1)
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(std::borrow::Cow::into_owned)
        })
        .collect()
}

/// Finds the repo named by the first one or two segments. Returns the repo (if it exists
/// with that type), its id as written and how many segments it used.
fn find_repo(
    ctx: &Ctx,
    repo_type: RepoType,
    segs: &[&str],
    keywords: &[&str],
) -> (Option<Arc<RepoState>>, String, usize) {
    let state = ctx
        .shared
        .state
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let lookup = |id: &str| {
        state
            .repos
            .get(id)
            .filter(|r| r.repo_type == repo_type)
            .cloned()
    };
    if segs.len() >= 2 {
        let id = format!("{}/{}", segs[0], segs[1]);
        if let Some(r) = lookup(&id) {
            return (Some(r), id, 2);
        }
    }
    if let Some(first) = segs.first()
        && let Some(r) = lookup(first)
    {
        return (Some(r), (*first).to_owned(), 1);
    }
    // Unknown: guess the shape so the error names the right id.
    if segs.len() >= 2 && !keywords.contains(&segs[1]) {
        (None, format!("{}/{}", segs[0], segs[1]), 2)
    } else {
        (None, segs.first().copied().unwrap_or("").to_owned(), 1)
    }
}

/// Takes a revision from `segs[0]`, accepting an unencoded `refs/x/y` over three segments.
fn take_revision(repo: &RepoState, segs: &[&str]) -> (String, usize) {
    if segs.first() == Some(&"refs") && segs.len() >= 3 {
        let joined = segs[..3].join("/");
        if repo.resolve(&joined).is_some() {
            return (joined, 3);
        }
    }
    (segs.first().copied().unwrap_or("").to_owned(), 1)
}

fn check_read(
    ctx: &Ctx,
    repo: Option<Arc<RepoState>>,
    caller: Caller,
) -> Result<Arc<RepoState>, Response<ResBody>> {
    match repo {
        Some(r) if r.access != Access::Private || caller == Caller::Full => Ok(r),
        _ => Err(ctx.repo_not_found(caller)),
    }
}

fn check_files(ctx: &Ctx, repo: &RepoState, caller: Caller) -> Result<(), Response<ResBody>> {
    if repo.access != Access::Gated || caller == Caller::Full {
        return Ok(());
    }
    let kind = match repo.repo_type {
        RepoType::Model => "model",
        RepoType::Dataset => "dataset",
        RepoType::Space => "space",
    };
    if caller == Caller::Anonymous {
        Err(ctx.error(
            StatusCode::UNAUTHORIZED,
            Some("GatedRepo"),
            &format!(
                "Access to {kind} {} is restricted. You must have access to it and be authenticated to access it. Please log in.",
                repo.id
            ),
            None,
        ))
    } else {
        Err(ctx.error(
            StatusCode::FORBIDDEN,
            Some("GatedRepo"),
            &format!(
                "Access to {kind} {id} is restricted and you are not in the authorized list. Visit https://huggingface.co/{id} to ask for access.",
                id = repo.id
            ),
            None,
        ))
    }
}

fn revision_not_found(ctx: &Ctx, rev: &str) -> Response<ResBody> {
    ctx.error(
        StatusCode::NOT_FOUND,
        Some("RevisionNotFound"),
        &format!("Invalid rev id: {rev}"),
        None,
    )
}

fn entry_not_found(ctx: &Ctx, path: &str, rev: &str, commit: &str) -> Response<ResBody> {
    ctx.error(
        StatusCode::NOT_FOUND,
        Some("EntryNotFound"),
        &format!("{path} does not exist on \"{rev}\""),
        Some(commit),
    )
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn is_true(v: &str) -> bool {
    v.eq_ignore_ascii_case("true") || v == "1"
}

// ---------------------------------------------------------------------------------------
// API

async fn api(ctx: &Ctx, caller: Caller, segs: &[&str], body: Incoming) -> Response<ResBody> {
    // segs[0] == "api"
    if segs == ["api", "whoami-v2"] {
        return whoami(ctx, caller);
    }
    let Some(repo_type) = segs.get(1).and_then(|t| RepoType::from_plural(t)) else {
        return ctx.not_found();
    };
    let rest = &segs[2..];
    let keywords = ["revision", "tree", "paths-info", "refs"];
    let (repo, _id, used) = find_repo(ctx, repo_type, rest, &keywords);
    let repo = match check_read(ctx, repo, caller) {
        Ok(r) => r,
        Err(rejected) => return rejected,
    };
    let rest = &rest[used..];
    let query = query_pairs(ctx.query.as_deref());
    let flag = |name: &str| query.iter().any(|(k, v)| k == name && is_true(v));
    match rest.first().copied() {
        None => repo_info(ctx, &repo, repo.main(), flag("blobs")),
        Some("revision") if rest.len() >= 2 => {
            let (rev, _) = take_revision(&repo, &rest[1..]);
            match repo.resolve(&rev) {
                Some(c) => repo_info(ctx, &repo, c, flag("blobs")),
                None => revision_not_found(ctx, &rev),
            }
        }
        Some("tree") if rest.len() >= 2 => {
            let (rev, used) = take_revision(&repo, &rest[1..]);
            let Some(commit) = repo.resolve(&rev) else {
                return revision_not_found(ctx, &rev);
            };
            let sub = rest[1 + used..]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("/");
            tree(ctx, commit, &rev, &sub, &query)
        }
        Some("paths-info") if rest.len() >= 2 && ctx.method == Method::POST => {
            let (rev, _) = take_revision(&repo, &rest[1..]);
            let Some(commit) = repo.resolve(&rev) else {
                return revision_not_found(ctx, &rev);
            };
            let Ok(collected) = Limited::new(body, 16 << 20).collect().await else {
                return ctx.error(StatusCode::BAD_REQUEST, None, "Unreadable body", None);
            };
            let body = collected.to_bytes();
            let form = query_pairs(Some(&String::from_utf8_lossy(&body)));
            let expand = form.iter().any(|(k, v)| k == "expand" && is_true(v));
            let paths: Vec<&str> = form
                .iter()
                .filter(|(k, _)| k == "paths" || k == "paths[]")
                .map(|(_, v)| v.trim_matches('/'))
                .collect();
            paths_info(ctx, commit, &paths, expand)
        }
        Some("refs") if rest.len() == 1 => refs(ctx, &repo, flag("include_prs")),
        _ => ctx.not_found(),
    }
}

fn whoami(ctx: &Ctx, caller: Caller) -> Response<ResBody> {
    if caller == Caller::Anonymous {
        return ctx.error(
            StatusCode::UNAUTHORIZED,
            None,
            "Invalid credentials in Authorization header",
            None,
        );
    }
    ctx.json(&json!({
        "type": "user",
        "id": "65f0000000000000000000aa",
        "name": "fake-user",
        "fullname": "Fake User",
        "isPro": false,
        "canPay": false,
        "orgs": [],
        "auth": {
            "type": "access_token",
            "accessToken": {
                "displayName": "fakehub",
                "role": if caller == Caller::Full { "read" } else { "fineGrained" },
                "createdAt": "2024-01-01T00:00:00.000Z"
            }
        }
    }))
}

fn repo_info(ctx: &Ctx, repo: &RepoState, commit: &Commit, blobs: bool) -> Response<ResBody> {
    let siblings: Vec<Value> = commit
        .files
        .iter()
        .map(|(path, blob)| {
            if blobs {
                let mut v = json!({ "rfilename": path, "size": blob.size, "blobId": blob.git_oid });
                if let Some(sha) = &blob.sha256 {
                    v["lfs"] = json!({ "sha256": sha, "size": blob.size, "pointerSize": blob.pointer_size });
                }
                v
            } else {
                json!({ "rfilename": path })
            }
        })
        .collect();
    let used: u64 = commit.files.values().map(|b| b.size).sum();
    let mut v = json!({
        "_id": format!("65f0{}", &commit.sha[..20]),
        "id": repo.id,
        "author": repo.id.split_once('/').map(|(a, _)| a),
        "sha": commit.sha,
        "lastModified": iso_time(commit.date_secs),
        "createdAt": iso_time(repo.commits[0].date_secs),
        "private": repo.access == Access::Private,
        "gated": if repo.access == Access::Gated { json!("auto") } else { json!(false) },
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": used,
    });
    match repo.repo_type {
        RepoType::Model => {
            v["modelId"] = json!(repo.id);
            v["library_name"] = json!("transformers");
        }
        RepoType::Dataset => {}
        RepoType::Space => {
            v["sdk"] = json!("gradio");
            v["subdomain"] = json!(repo.id.replace(['/', '.', '_'], "-"));
            v["runtime"] = json!({ "stage": "RUNNING", "hardware": { "current": "cpu-basic" } });
        }
    }
    ctx.json(&v)
}

/// A tree or paths-info entry.
fn file_entry(path: &str, blob: &Blob, commit: &Commit, expand: bool) -> Value {
    let mut v = json!({ "type": "file", "oid": blob.git_oid, "size": blob.size, "path": path });
    if let Some(sha) = &blob.sha256 {
        v["lfs"] = json!({ "oid": sha, "size": blob.size, "pointerSize": blob.pointer_size });
    }
    if expand {
        v["lastCommit"] = last_commit(commit);
        v["securityFileStatus"] = json!({ "status": "safe", "avScan": { "status": "safe" }, "pickleImportScan": { "status": "unscanned" } });
    }
    v
}

fn dir_entry(path: &str, commit: &Commit, expand: bool) -> Value {
    let mut h = sha1::Sha1::new();
    h.update(format!("tree\0{}\0{path}", commit.sha).as_bytes());
    let mut v =
        json!({ "type": "directory", "oid": hex::encode(h.finalize()), "size": 0, "path": path });
    if expand {
        v["lastCommit"] = last_commit(commit);
    }
    v
}

fn last_commit(commit: &Commit) -> Value {
    json!({ "id": commit.sha, "title": commit.title, "date": iso_time(commit.date_secs) })
}

fn all_dirs(commit: &Commit) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    for path in commit.files.keys() {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            dirs.insert(path[..end].to_owned());
            end += 1;
        }
    }
    dirs
}

fn tree(
    ctx: &Ctx,
    commit: &Commit,
    rev: &str,
    sub: &str,
    query: &[(String, String)],
) -> Response<ResBody> {
    let flag = |name: &str| query.iter().any(|(k, v)| k == name && is_true(v));
    let (recursive, expand) = (flag("recursive"), flag("expand"));
    let synthetic = ctx.shared.faults.synthetic_tree_entries();
    if synthetic > 0 {
        return synthetic_tree(ctx, synthetic, query);
    }
    let dirs = all_dirs(commit);
    if !sub.is_empty() && !dirs.contains(sub) {
        return entry_not_found(ctx, sub, rev, &commit.sha);
    }
    let prefix = if sub.is_empty() {
        String::new()
    } else {
        format!("{sub}/")
    };
    let keep = |p: &str| {
        p.strip_prefix(prefix.as_str())
            .is_some_and(|rest| recursive || !rest.contains('/'))
    };
    // Merge files and directories in path order.
    let mut items: Vec<(&str, Option<&Arc<Blob>>)> = commit
        .files
        .iter()
        .filter(|(p, _)| keep(p))
        .map(|(p, b)| (p.as_str(), Some(b)))
        .chain(dirs.iter().filter(|d| keep(d)).map(|d| (d.as_str(), None)))
        .collect();
    items.sort_by(|a, b| a.0.cmp(b.0));

    let page_size = if expand {
        ctx.shared.tree_page_size.min(50)
    } else {
        ctx.shared.tree_page_size
    };
    let cursor = query.iter().find(|(k, _)| k == "cursor").map(|(_, v)| v);
    let start = match cursor.map(|c| decode_cursor(c)) {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => {
            return ctx.error(StatusCode::BAD_REQUEST, None, "Invalid cursor", None);
        }
    };
    let end = (start + page_size).min(items.len());
    let page: Vec<Value> = items
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .map(|(p, blob)| match blob {
            Some(b) => file_entry(p, b, commit, expand),
            None => dir_entry(p, commit, expand),
        })
        .collect();
    let extra = if start == 0 {
        ctx.shared.faults.extra_tree_entries()
    } else {
        Vec::new()
    };
    let mut resp = if extra.is_empty() {
        ctx.json(&Value::Array(page))
    } else {
        let mut text = serde_json::to_string(&Value::Array(page)).expect("JSON values serialize");
        text.pop();
        for entry in &extra {
            if text.len() > 1 {
                text.push(',');
            }
            text.push_str(entry);
        }
        text.push(']');
        ctx.json_bytes(StatusCode::OK, text.into_bytes())
    };
    if end < items.len() {
        set_next_link(ctx, &mut resp, end);
    }
    resp
}

fn set_next_link(ctx: &Ctx, resp: &mut Response<ResBody>, next_offset: usize) {
    let mut params: Vec<String> = ctx
        .query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("cursor="))
        .map(str::to_owned)
        .collect();
    params.push(format!("cursor={}", encode_cursor(next_offset)));
    let link = format!(
        "<{}{}?{}>; rel=\"next\"",
        ctx.shared.hub_base,
        ctx.path,
        params.join("&")
    );
    resp.headers_mut().insert(header::LINK, header_value(&link));
}

/// A listing of `total` generated 1-byte files, produced one page at a time.
fn synthetic_tree(ctx: &Ctx, total: u64, query: &[(String, String)]) -> Response<ResBody> {
    /// git blob sha1 of the content `x`.
    const OID: &str = "c1b0730e0133447badcfd47fd144e254807b06e1";
    let cursor = query.iter().find(|(k, _)| k == "cursor").map(|(_, v)| v);
    let start = match cursor.map(|c| decode_cursor(c)) {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => {
            return ctx.error(StatusCode::BAD_REQUEST, None, "Invalid cursor", None);
        }
    };
    let total = usize::try_from(total).unwrap_or(usize::MAX);
    let end = start.saturating_add(ctx.shared.tree_page_size).min(total);
    let mut text = String::with_capacity((end.saturating_sub(start)) * 100 + 2);
    text.push('[');
    for i in start..end {
        if i > start {
            text.push(',');
        }
        let _ = write!(
            text,
            r#"{{"type":"file","oid":"{OID}","size":1,"path":"huge/{i:09}.bin"}}"#
        );
    }
    text.push(']');
    let mut resp = ctx.json_bytes(StatusCode::OK, text.into_bytes());
    if end < total {
        set_next_link(ctx, &mut resp, end);
    }
    resp
}

/// Opaque-looking cursor: base16 of `"p:<offset>"`.
fn encode_cursor(offset: usize) -> String {
    hex::encode(format!("p:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let raw = hex::decode(cursor).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("p:")?
        .parse()
        .ok()
}

fn paths_info(ctx: &Ctx, commit: &Commit, paths: &[&str], expand: bool) -> Response<ResBody> {
    let dirs = all_dirs(commit);
    let mut out = Vec::new();
    for p in paths {
        if let Some(blob) = commit.files.get(*p) {
            out.push(file_entry(p, blob, commit, expand));
        } else if dirs.contains(*p) {
            out.push(dir_entry(p, commit, expand));
        }
    }
    ctx.json(&Value::Array(out))
}

fn refs(ctx: &Ctx, repo: &RepoState, include_prs: bool) -> Response<ResBody> {
    let r = |name: &str, full: String, idx: usize| json!({ "name": name, "ref": full, "targetCommit": repo.commits[idx].sha });
    let branches: Vec<Value> = repo
        .branches
        .iter()
        .map(|(n, i)| r(n, format!("refs/heads/{n}"), *i))
        .collect();
    let tags: Vec<Value> = repo
        .tags
        .iter()
        .map(|(n, i)| r(n, format!("refs/tags/{n}"), *i))
        .collect();
    let mut v = json!({ "branches": branches, "tags": tags, "converts": [] });
    if include_prs {
        v["pullRequests"] = repo
            .prs
            .iter()
            .map(|(n, i)| r(&n.to_string(), format!("refs/pr/{n}"), *i))
            .collect();
    }
    ctx.json(&v)
}

// ---------------------------------------------------------------------------------------
// Resolve

fn resolve(ctx: &Ctx, caller: Caller, segs: &[&str]) -> Response<ResBody> {
    let (repo_type, rest) = match segs.first().copied() {
        Some("datasets") => (RepoType::Dataset, &segs[1..]),
        Some("spaces") => (RepoType::Space, &segs[1..]),
        _ => (RepoType::Model, segs),
    };
    let Some(pos) = rest.iter().take(3).position(|s| *s == "resolve") else {
        return ctx.not_found();
    };
    if pos == 0 {
        return ctx.not_found();
    }
    let (repo, _, _) = find_repo(ctx, repo_type, &rest[..pos], &[]);
    let repo = match check_read(ctx, repo, caller) {
        Ok(r) => r,
        Err(rejected) => return rejected,
    };
    if let Err(rejected) = check_files(ctx, &repo, caller) {
        return rejected;
    }
    let after = &rest[pos + 1..];
    if after.is_empty() {
        return ctx.not_found();
    }
    let (rev, used) = take_revision(&repo, after);
    let Some(commit) = repo.resolve(&rev) else {
        return revision_not_found(ctx, &rev);
    };
    let path = after[used..].join("/");
    let Some(blob) = commit.files.get(&path) else {
        return entry_not_found(ctx, &path, &rev, &commit.sha);
    };
    if blob.is_lfs {
        return lfs_redirect(ctx, &repo, commit, blob);
    }
    if repo.access == Access::Private {
        // Case A: served directly.
        return ctx.content(
            blob,
            &blob.git_oid,
            vec![("x-repo-commit", commit.sha.clone())],
        );
    }
    let location = format!(
        "/api/resolve-cache/{}/{}/{}/{}?{}=&etag=%22{}%22",
        repo.repo_type.plural(),
        repo.id,
        commit.sha,
        encode_path(&path),
        encode_component(&percent_decode_str(&ctx.path).decode_utf8_lossy()),
        blob.git_oid
    );
    redirect(
        ctx,
        StatusCode::TEMPORARY_REDIRECT,
        &location,
        "Temporary Redirect",
        vec![("x-repo-commit", commit.sha.clone())],
    )
}

fn redirect(
    ctx: &Ctx,
    status: StatusCode,
    location: &str,
    word: &str,
    headers: Vec<(&'static str, String)>,
) -> Response<ResBody> {
    let text = format!("{word}. Redirecting to {location}");
    let len = text.len();
    let body = if ctx.method == Method::HEAD {
        empty()
    } else {
        counted_full(&ctx.cell, text)
    };
    let mut b = Response::builder()
        .status(status)
        .header(header::LOCATION, header_value(location))
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, len);
    for (name, value) in headers {
        b = b.header(name, header_value(&value));
    }
    b.body(body).expect("valid response")
}

fn lfs_redirect(ctx: &Ctx, repo: &RepoState, commit: &Commit, blob: &Blob) -> Response<ResBody> {
    let sha = blob.sha256.as_deref().expect("LFS blobs have a sha256");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let ttl = ctx.shared.faults.cdn_url_ttl_secs();
    let mut h = sha1::Sha1::new();
    h.update(repo.id.as_bytes());
    let cdn_path = format!("/xet-bridge-us/{}/{sha}", &hex::encode(h.finalize())[..24]);
    let date = amz_time(now);
    let sig = ctx.shared.sign(&cdn_path, &date, ttl);
    let location = format!(
        "{}{cdn_path}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&X-Amz-Credential=FAKEHUB%2F{}%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date={date}&X-Amz-Expires={ttl}&X-Amz-Signature={sig}&X-Amz-SignedHeaders=host&x-id=GetObject",
        ctx.shared.cdn_base,
        &date[..8],
    );
    redirect(
        ctx,
        StatusCode::FOUND,
        &location,
        "Found",
        vec![
            ("x-repo-commit", commit.sha.clone()),
            ("x-linked-etag", format!("\"{sha}\"")),
            ("x-linked-size", blob.size.to_string()),
            ("etag", format!("\"{}\"", blob.git_oid)),
            ("accept-ranges", "bytes".to_owned()),
        ],
    )
}

fn resolve_cache(ctx: &Ctx, caller: Caller, segs: &[&str]) -> Response<ResBody> {
    // segs: {types}/{repo...}/{commit}/{path...}
    let Some(repo_type) = segs.first().and_then(|t| RepoType::from_plural(t)) else {
        return ctx.not_found();
    };
    let rest = &segs[1..];
    let (repo, _, used) = find_repo(ctx, repo_type, rest, &[]);
    let repo = match check_read(ctx, repo, caller) {
        Ok(r) => r,
        Err(rejected) => return rejected,
    };
    if let Err(rejected) = check_files(ctx, &repo, caller) {
        return rejected;
    }
    let rest = &rest[used..];
    let Some(rev) = rest.first() else {
        return ctx.not_found();
    };
    let Some(commit) = repo.resolve(rev).filter(|c| c.sha == *rev) else {
        return revision_not_found(ctx, rev);
    };
    let path = rest[1..].join("/");
    let Some(blob) = commit.files.get(&path) else {
        return entry_not_found(ctx, &path, rev, &commit.sha);
    };
    ctx.content(
        blob,
        blob.etag(),
        vec![("x-repo-commit", commit.sha.clone())],
    )
}

// ---------------------------------------------------------------------------------------
// CDN

fn s3_error(ctx: &Ctx, code: &str, message: &str) -> Response<ResBody> {
    let status = match code {
        "NoSuchKey" => StatusCode::NOT_FOUND,
        "InvalidArgument" => StatusCode::BAD_REQUEST,
        "MethodNotAllowed" => StatusCode::METHOD_NOT_ALLOWED,
        _ => StatusCode::FORBIDDEN,
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let len = xml.len();
    let body = if ctx.method == Method::HEAD {
        empty()
    } else {
        counted_full(&ctx.cell, xml)
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/xml")
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .expect("valid response")
}

fn cdn(ctx: &Ctx) -> Response<ResBody> {
    if ctx.method != Method::GET && ctx.method != Method::HEAD {
        return s3_error(
            ctx,
            "MethodNotAllowed",
            "The specified method is not allowed",
        );
    }
    if ctx.shared.strict_cdn && ctx.headers.contains_key(header::AUTHORIZATION) {
        return s3_error(
            ctx,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
        );
    }
    let Some(sha) = ctx
        .path
        .strip_prefix("/xet-bridge-us/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, sha)| sha)
    else {
        return s3_error(ctx, "NoSuchKey", "The specified key does not exist.");
    };
    let query = query_pairs(ctx.query.as_deref());
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let (Some(date), Some(expires), Some(sig)) = (
        get("X-Amz-Date"),
        get("X-Amz-Expires"),
        get("X-Amz-Signature"),
    ) else {
        return s3_error(
            ctx,
            "AccessDenied",
            "Query-string authentication requires the X-Amz-Signature, X-Amz-Date and X-Amz-Expires parameters",
        );
    };
    let Ok(ttl) = expires.parse::<u64>() else {
        return s3_error(ctx, "AccessDenied", "X-Amz-Expires must be a number");
    };
    if ctx.shared.sign(&ctx.path, date, ttl) != sig {
        return s3_error(
            ctx,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if parse_amz_time(date).is_none_or(|signed| now >= signed.saturating_add(ttl)) {
        return s3_error(ctx, "AccessDenied", "Request has expired");
    }
    let blob = {
        let state = ctx
            .shared
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state.lfs_blobs.get(sha).cloned()
    };
    let Some(blob) = blob else {
        return s3_error(ctx, "NoSuchKey", "The specified key does not exist.");
    };
    ctx.content(&blob, sha, vec![])
}

impl Shared {
    /// The fake presigned-URL signature: sha256 over a per-hub secret, the path, date and ttl.
    pub(crate) fn sign(&self, path: &str, date: &str, ttl: u64) -> String {
        let mut h = sha2::Sha256::new();
        h.update(format!("{}\n{path}\n{date}\n{ttl}", self.secret).as_bytes());
        hex::encode(h.finalize())
    }
}
