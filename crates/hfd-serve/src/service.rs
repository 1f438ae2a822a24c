//! One request: route it, find the repo, commit and file, answer as the hub
//! does. With upstreams configured, misses go through [`crate::pull`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;
use serde_json::Value;

use hfd::hfd_hub::{RepoRef, Revision};

use crate::answer::{self, Content, decode_cursor, encode_cursor};
use crate::body::{Logged, RequestLog, RequestRecord, ResBody};
use crate::listing::Listing;
use crate::pull::{Access, Upstream};
use crate::route::{Endpoint, Unroutable, route};
use crate::store::{Catalog, Located, Store};

/// Shared state of every connection.
pub(crate) struct Service {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) upstream: Option<Arc<Upstream>>,
    pub(crate) page_size: usize,
    pub(crate) log: Option<RequestLog>,
    /// `http` or `https`, for `Link` URLs.
    pub(crate) scheme: &'static str,
    pub(crate) local_addr: SocketAddr,
}

/// The request facts the handlers need.
struct Asked<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    raw_path: &'a str,
    authority: Option<&'a str>,
    token: Option<String>,
}

impl Asked<'_> {
    fn flag(&self, name: &str) -> bool {
        query_pairs(self.query)
            .iter()
            .any(|(k, v)| k == name && (v.eq_ignore_ascii_case("true") || v == "1"))
    }
}

/// Where a repo at a commit is answered from.
struct View {
    store: Option<Store>,
    commit: String,
    /// Set in pull-through mode: the upstream's complete listing.
    remote: Option<Arc<Listing>>,
}

impl Service {
    pub(crate) async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResBody> {
        let started = Instant::now();
        let (parts, body) = req.into_parts();
        let method = parts.method.clone();
        let asked = Asked {
            method: &parts.method,
            headers: &parts.headers,
            query: parts.uri.query(),
            raw_path: parts.uri.path(),
            authority: parts.uri.authority().map(http::uri::Authority::as_str),
            token: bearer(&parts.headers),
        };
        let resp = self.dispatch(&asked, body).await;
        let Some(sink) = self.log.clone() else {
            return resp;
        };
        let record = RequestRecord {
            peer,
            method: method.to_string(),
            path: parts.uri.path().to_owned(),
            version: format!("{:?}", parts.version),
            status: resp.status().as_u16(),
            bytes: 0,
            complete: false,
            elapsed: std::time::Duration::ZERO,
        };
        let (head, body) = resp.into_parts();
        Response::from_parts(
            head,
            Logged::new(body, record, started, sink).boxed_unsync(),
        )
    }

    async fn dispatch(&self, asked: &Asked<'_>, body: Incoming) -> Response<ResBody> {
        let method = asked.method;
        let endpoint = match route(asked.raw_path) {
            Ok(e) => e,
            Err(Unroutable::NotFound) => return answer::not_found(method),
            Err(Unroutable::BadPath) => return answer::bad_path(method),
        };
        let read = *method == Method::GET || *method == Method::HEAD;
        match endpoint {
            Endpoint::Info { repo, revision } if read => self.info(asked, &repo, &revision).await,
            Endpoint::Tree {
                repo,
                revision,
                path,
            } if read => self.tree(asked, &repo, &revision, &path).await,
            Endpoint::PathsInfo { repo, revision } if *method == Method::POST => {
                let Ok(collected) = Limited::new(body, 4 << 20).collect().await else {
                    return answer::error(
                        method,
                        StatusCode::BAD_REQUEST,
                        None,
                        "Unreadable or oversized body",
                    );
                };
                let form = collected.to_bytes();
                self.paths_info(asked, &repo, &revision, &form).await
            }
            Endpoint::Resolve {
                repo,
                revision,
                path,
            } if read => self.resolve(asked, &repo, &revision, &path).await,
            _ => answer::method_not_allowed(method),
        }
    }

    /// Finds the repo and pins the revision: locally, or (pull-through)
    /// upstream with the client's token.
    async fn view(
        &self,
        asked: &Asked<'_>,
        repo: &RepoRef,
        revision: &Revision,
    ) -> Result<View, Response<ResBody>> {
        let method = asked.method;
        let store = self.catalog.find(repo);
        if let Some(up) = &self.upstream {
            let (commit, listing) = up
                .pin_and_list(repo, revision, asked.token.as_deref())
                .await
                .map_err(|e| e.answer(method))?;
            return Ok(View {
                store,
                commit,
                remote: Some(listing),
            });
        }
        let Some(store) = store else {
            return Err(answer::repo_not_found(method));
        };
        let found = {
            let store = store.clone();
            let revision = revision.clone();
            blocking(move || Catalog::resolve_revision(&store, &revision)).await
        };
        let Some(commit) = found else {
            return Err(answer::revision_not_found(method, revision.as_str()));
        };
        Ok(View {
            store: Some(store),
            commit,
            remote: None,
        })
    }

    async fn listing(&self, view: &View) -> Arc<Listing> {
        if let Some(remote) = &view.remote {
            return Arc::clone(remote);
        }
        let Some(store) = view.store.clone() else {
            return Arc::new(Listing {
                commit: view.commit.clone(),
                files: Vec::new(),
            });
        };
        let catalog = Arc::clone(&self.catalog);
        let commit = view.commit.clone();
        Arc::new(blocking(move || catalog.listing(&store, &commit)).await)
    }

    async fn info(
        &self,
        asked: &Asked<'_>,
        repo: &RepoRef,
        revision: &Revision,
    ) -> Response<ResBody> {
        let view = match self.view(asked, repo, revision).await {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        let listing = self.listing(&view).await;
        let value = answer::repo_info(repo, &listing, asked.flag("blobs"));
        answer::json(asked.method, StatusCode::OK, &value)
    }

    async fn tree(
        &self,
        asked: &Asked<'_>,
        repo: &RepoRef,
        revision: &Revision,
        dir: &str,
    ) -> Response<ResBody> {
        let method = asked.method;
        let view = match self.view(asked, repo, revision).await {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        let listing = self.listing(&view).await;
        if !dir.is_empty() && !listing.dirs().contains(dir) {
            return answer::entry_not_found(method, dir, revision.as_str(), &view.commit);
        }
        let start = match query_pairs(asked.query)
            .iter()
            .find(|(k, _)| k == "cursor")
            .map(|(_, v)| decode_cursor(v))
        {
            None => 0,
            Some(Some(n)) => n,
            Some(None) => {
                return answer::error(method, StatusCode::BAD_REQUEST, None, "Invalid cursor");
            }
        };
        let (page, next) = answer::tree_page(
            &listing,
            dir,
            asked.flag("recursive"),
            start,
            self.page_size,
        );
        let mut resp = answer::json(method, StatusCode::OK, &Value::Array(page));
        if let Some(next) = next {
            let link = format!(
                "<{}://{}{}?{}>; rel=\"next\"",
                self.scheme,
                self.host(asked.authority, asked.headers),
                asked.raw_path,
                with_cursor(asked.query, &encode_cursor(next))
            );
            if let Ok(v) = http::HeaderValue::from_str(&link) {
                resp.headers_mut().insert(header::LINK, v);
            }
        }
        resp
    }

    async fn paths_info(
        &self,
        asked: &Asked<'_>,
        repo: &RepoRef,
        revision: &Revision,
        body: &[u8],
    ) -> Response<ResBody> {
        let view = match self.view(asked, repo, revision).await {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        let listing = self.listing(&view).await;
        let is_json = asked
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let paths: Vec<String> = if is_json {
            serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("paths").cloned())
                .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
                .unwrap_or_default()
        } else {
            query_pairs(Some(&String::from_utf8_lossy(body)))
                .into_iter()
                .filter(|(k, _)| k == "paths" || k == "paths[]")
                .map(|(_, v)| v)
                .collect()
        };
        let dirs = listing.dirs();
        let out: Vec<Value> = paths
            .iter()
            .take(10_000)
            .map(|p| p.trim_matches('/'))
            .filter_map(|p| {
                listing.file(p).map(answer::file_entry).or_else(|| {
                    dirs.contains(p)
                        .then(|| answer::dir_entry(&listing.commit, p))
                })
            })
            .collect();
        answer::json(asked.method, StatusCode::OK, &Value::Array(out))
    }

    async fn resolve(
        &self,
        asked: &Asked<'_>,
        repo: &RepoRef,
        revision: &Revision,
        path: &str,
    ) -> Response<ResBody> {
        let method = asked.method;
        let view = match self.view(asked, repo, revision).await {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        let range = asked
            .headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok());
        let mut located = self.open(view.store.clone(), &view.commit, path).await;
        if let (Some(up), Some(remote)) = (&self.upstream, &view.remote) {
            // Pull-through: the client must be allowed to read this repo's
            // files upstream, whether or not they are cached.
            match up.check_files(repo, remote, asked.token.as_deref()).await {
                Access::Granted => {}
                Access::Denied(e) => return e.answer(method),
            }
            let Some(listed) = remote.file(path) else {
                return answer::entry_not_found(method, path, revision.as_str(), &view.commit);
            };
            if located
                .as_ref()
                .is_none_or(|l| l.entry.etag() != listed.etag() || l.entry.size != listed.size)
            {
                let flight = up.fetch(repo, revision, &view.commit, listed, asked.token.as_deref());
                // Answer while the bytes arrive, unless the pull fails
                // before its first byte (then the client gets its error).
                flight.arrival.started().await;
                if !flight.arrival.is_over() {
                    let content = Content::Arriving(Arc::clone(&flight.arrival));
                    return answer::file_response(method, range, &view.commit, listed, content);
                }
                if let Err(e) = flight.outcome().await {
                    return e.answer(method);
                }
                let store = self.catalog.find(repo);
                located = self.open(store, &view.commit, path).await;
            }
        }
        let Some(found) = located else {
            return answer::entry_not_found(method, path, revision.as_str(), &view.commit);
        };
        let file_path = found.file.clone();
        let size = found.entry.size;
        // The size promised must be the size of what is opened.
        let opened = blocking(move || {
            let f = std::fs::File::open(&file_path)?;
            let meta = f.metadata()?;
            if !meta.is_file() || meta.len() != size {
                return Err(std::io::Error::other("the file changed"));
            }
            Ok(f)
        })
        .await;
        match opened {
            Ok(file) => answer::file_response(
                method,
                range,
                &view.commit,
                &found.entry,
                Content::Ready(file),
            ),
            Err(_) => answer::entry_not_found(method, path, revision.as_str(), &view.commit),
        }
    }

    async fn open(&self, store: Option<Store>, commit: &str, path: &str) -> Option<Located> {
        let store = store?;
        let catalog = Arc::clone(&self.catalog);
        let (commit, path) = (commit.to_owned(), path.to_owned());
        blocking(move || catalog.open(&store, &commit, &path)).await
    }

    /// The host clients reached us by, for absolute `Link` URLs: the
    /// HTTP/2 `:authority`, else `Host`; only a plain host[:port] is echoed,
    /// anything else becomes our address.
    fn host(&self, authority: Option<&str>, headers: &HeaderMap) -> String {
        authority
            .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
            .filter(|h| {
                !h.is_empty()
                    && h.len() < 256
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            })
            .map_or_else(|| self.local_addr.to_string(), str::to_owned)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The client's token, from `Authorization: Bearer …`.
fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The query with `cursor` set (other parameters kept as sent).
fn with_cursor(query: Option<&str>, cursor: &str) -> String {
    let mut params: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("cursor="))
        .filter(|kv| {
            kv.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
        })
        .collect();
    let cursor = format!("cursor={cursor}");
    params.push(&cursor);
    params.join("&")
}
