//! Injected faults that answer before routing (pre) or rewrite the real answer (post).

use bytes::Bytes;
use http::{Method, Response, StatusCode, header};
use http_body_util::BodyExt as _;

use super::cdn::s3_error;
use super::ctx::Ctx;
use super::resolve::redirect;
use super::url::query_pairs;
use super::{ResBody, empty};
use crate::body::header_value;
use crate::fault::{EchoChannel, FaultKind, Stage};

/// Faults that rewrite the real answer (huge header, downgraded redirect).
pub(super) fn post_fault(ctx: &Ctx, resp: &mut Response<ResBody>) {
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
        FaultKind::EchoTokenIn(channel) => echo_token(ctx, resp, channel),
        _ => {}
    }
}

/// Echoes the request's token through `channel` of `resp`.
fn echo_token(ctx: &Ctx, resp: &mut Response<ResBody>, channel: EchoChannel) {
    let sent = ctx
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let token = sent.strip_prefix("Bearer ").unwrap_or(&sent).to_owned();
    match channel {
        EchoChannel::Header(name) => {
            resp.headers_mut().insert(name, header_value(&token));
        }
        EchoChannel::NextLink => {
            let next = format!(
                "<{}/api/echo/{token}?cursor={token}>; rel=\"next\"",
                ctx.shared.hub_base
            );
            resp.headers_mut().insert(header::LINK, header_value(&next));
        }
        EchoChannel::Location => {
            let Some(location) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
            else {
                return;
            };
            let (path, query) = location.split_once('?').unwrap_or((&location, ""));
            let echoed = format!("{path}/{token}?echo={token}&{query}");
            resp.headers_mut()
                .insert(header::LOCATION, header_value(&echoed));
        }
    }
}

/// The value of `hfd-hop` in a query, 0 when absent.
pub(super) fn hop_of(query: Option<&str>) -> u32 {
    query_pairs(query)
        .iter()
        .find(|(k, _)| k == "hfd-hop")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// The request's path and query with `hfd-hop` set to `hop`.
pub(super) fn with_hop(ctx: &Ctx, hop: u32) -> String {
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
pub(super) fn endless_json() -> ResBody {
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
pub(super) async fn pre_fault(ctx: &Ctx) -> Option<Response<ResBody>> {
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
        FaultKind::HtmlPage => Some(html_page(ctx)),
        _ => None,
    }
}

/// A captcha-like web page with status 200, as hf-mirror sends instead of
/// the file on a challenge.
fn html_page(ctx: &Ctx) -> Response<ResBody> {
    let page = "<!DOCTYPE html><html><head><title>Just a moment...</title></head>\
                <body>Checking your browser before accessing the mirror.</body></html>\n";
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CONTENT_LENGTH, page.len())
        .body(if ctx.method == Method::HEAD {
            empty()
        } else {
            crate::body::counted_full(&ctx.cell, page)
        })
        .expect("valid response")
}
