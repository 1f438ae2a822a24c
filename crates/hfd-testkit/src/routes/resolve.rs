//! `resolve` and `resolve-cache`: regular files, LFS redirects to the CDN, redirect shapes.

use std::time::{SystemTime, UNIX_EPOCH};

use http::{Method, Response, StatusCode, header};
use percent_encoding::percent_decode_str;
use sha2::Digest as _;

use super::access::{
    Caller, check_files, check_read, entry_not_found, find_repo, revision_not_found, take_revision,
};
use super::ctx::Ctx;
use super::url::{encode_component, encode_path};
use super::{ResBody, empty};
use crate::body::{counted_full, header_value};
use crate::content::Blob;
use crate::fixture::{Access, RepoType};
use crate::state::{Commit, RepoState, amz_time};

pub(super) fn resolve(ctx: &Ctx, caller: Caller, segs: &[&str]) -> Response<ResBody> {
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

pub(super) fn redirect(
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

pub(super) fn lfs_redirect(
    ctx: &Ctx,
    repo: &RepoState,
    commit: &Commit,
    blob: &Blob,
) -> Response<ResBody> {
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
    let mut headers = vec![
        ("x-repo-commit", commit.sha.clone()),
        ("x-linked-etag", format!("\"{sha}\"")),
        ("x-linked-size", blob.size.to_string()),
        ("etag", format!("\"{}\"", blob.git_oid)),
        ("accept-ranges", "bytes".to_owned()),
    ];
    if ctx.shared.bridge {
        // What the Hub sends with a redirect to its Xet bridge (a made-up
        // but well-formed 64-hex value: nothing checks it against content).
        headers.push((
            "x-xet-hash",
            hex::encode(sha1::Sha1::digest(sha.as_bytes())).repeat(2)[..64].to_owned(),
        ));
    }
    redirect(ctx, StatusCode::FOUND, &location, "Found", headers)
}

pub(super) fn resolve_cache(ctx: &Ctx, caller: Caller, segs: &[&str]) -> Response<ResBody> {
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
