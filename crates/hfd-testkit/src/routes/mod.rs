//! Request routing for the hub and CDN listeners.

#![expect(
    clippy::result_large_err,
    reason = "an early error answer is built once per request; boxing it buys nothing"
)]

mod access;
mod api;
mod cdn;
mod ctx;
mod faults;
mod resolve;
mod tree;
mod url;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;

use crate::body::header_value;
use crate::hub::Shared;
use crate::log::{ConnShared, LogEntry, Origin, Route, lock};

use access::authenticate;
use api::api;
use cdn::cdn;
use ctx::Ctx;
use faults::{post_fault, pre_fault};
use resolve::{resolve, resolve_cache};
pub use tree::tree_cursor;
use url::decode_segments;
pub(crate) use url::{encode_component, encode_path};

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

/// Entry point for both listeners.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnShared>,
    req: Request<Incoming>,
) -> Result<Response<ResBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    // Mounted under a prefix: what is outside it is not the hub.
    let (path, outside) = if conn.origin == Origin::Cdn || shared.prefix.is_empty() {
        (path, false)
    } else {
        match path.strip_prefix(shared.prefix.as_str()) {
            Some(rest) if rest.starts_with('/') => (rest.to_owned(), false),
            _ => (path, true),
        }
    };
    let query = parts.uri.query().map(str::to_owned);
    let route = if outside {
        Route::Other
    } else {
        classify(conn.origin, &path)
    };
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
    let mut resp = if ctx.conn.over_cap {
        over_cap(&ctx)
    } else {
        match pre_fault(&ctx).await {
            Some(resp) => resp,
            None => dispatch(&ctx, body).await,
        }
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

/// A request on a connection beyond the client's cap: 429, then close.
fn over_cap(ctx: &Ctx) -> Response<ResBody> {
    lock(&ctx.cell.entry).fault = Some("over-connection-cap");
    let mut resp = ctx.error(
        StatusCode::TOO_MANY_REQUESTS,
        None,
        "Too many connections from your address.",
        None,
    );
    resp.headers_mut()
        .insert(header::CONNECTION, header_value("close"));
    resp
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
