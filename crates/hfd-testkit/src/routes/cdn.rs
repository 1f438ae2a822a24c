//! The CDN listener: presigned-URL checks and S3-style XML errors.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{Method, Response, StatusCode, header};
use sha2::Digest as _;

use super::ctx::Ctx;
use super::url::query_pairs;
use super::{ResBody, empty};
use crate::body::counted_full;
use crate::hub::Shared;
use crate::state::parse_amz_time;

pub(super) fn s3_error(ctx: &Ctx, code: &str, message: &str) -> Response<ResBody> {
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

pub(super) fn cdn(ctx: &Ctx) -> Response<ResBody> {
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
