//! The hub's answers: JSON documents, error headers, file responses.

use std::fs::File;
use std::sync::Arc;

use http::{Method, Response, StatusCode, header};
use serde_json::{Value, json};
use sha1::Digest as _;

use hfd::hfd_hub::{RepoRef, RepoType};

use crate::arrival::Arrival;
use crate::body::{ResBody, empty, file_range, full};
use crate::listing::{FileEntry, Listing};
use crate::range::{RangeAnswer, answer as range_answer};

/// Hub error codes clients branch on (`X-Error-Code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HubError {
    RepoNotFound,
    RevisionNotFound,
    EntryNotFound,
    GatedRepo,
}

impl HubError {
    fn code(self) -> &'static str {
        match self {
            Self::RepoNotFound => "RepoNotFound",
            Self::RevisionNotFound => "RevisionNotFound",
            Self::EntryNotFound => "EntryNotFound",
            Self::GatedRepo => "GatedRepo",
        }
    }
}

fn header_value(text: &str) -> http::HeaderValue {
    // Header values must be visible ASCII: anything else becomes `?`.
    let clean: String = text
        .chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect();
    http::HeaderValue::from_str(&clean).unwrap_or_else(|_| http::HeaderValue::from_static("?"))
}

pub(crate) fn json(method: &Method, status: StatusCode, value: &Value) -> Response<ResBody> {
    let body = serde_json::to_vec(value).expect("JSON values serialize");
    let len = body.len();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::CONTENT_LENGTH, len)
        .body(if method == Method::HEAD {
            empty()
        } else {
            full(body)
        })
        .expect("valid response")
}

/// An error answer: JSON `{"error": message}`, `X-Error-Message`, and the
/// hub's `X-Error-Code` when there is one.
pub(crate) fn error(
    method: &Method,
    status: StatusCode,
    code: Option<HubError>,
    message: &str,
) -> Response<ResBody> {
    let mut resp = json(method, status, &json!({ "error": message }));
    let h = resp.headers_mut();
    if let Some(code) = code {
        h.insert("x-error-code", http::HeaderValue::from_static(code.code()));
    }
    h.insert("x-error-message", header_value(message));
    resp
}

pub(crate) fn repo_not_found(method: &Method) -> Response<ResBody> {
    error(
        method,
        StatusCode::NOT_FOUND,
        Some(HubError::RepoNotFound),
        "Repository not found",
    )
}

pub(crate) fn revision_not_found(method: &Method, revision: &str) -> Response<ResBody> {
    error(
        method,
        StatusCode::NOT_FOUND,
        Some(HubError::RevisionNotFound),
        &format!("Invalid rev id: {revision}"),
    )
}

pub(crate) fn entry_not_found(
    method: &Method,
    path: &str,
    revision: &str,
    commit: &str,
) -> Response<ResBody> {
    let mut resp = error(
        method,
        StatusCode::NOT_FOUND,
        Some(HubError::EntryNotFound),
        &format!("{path} does not exist on \"{revision}\""),
    );
    resp.headers_mut()
        .insert("x-repo-commit", header_value(commit));
    resp
}

pub(crate) fn not_found(method: &Method) -> Response<ResBody> {
    error(method, StatusCode::NOT_FOUND, None, "Not Found")
}

pub(crate) fn bad_path(method: &Method) -> Response<ResBody> {
    error(
        method,
        StatusCode::BAD_REQUEST,
        None,
        "Invalid path: not a repository path this server serves",
    )
}

pub(crate) fn method_not_allowed(method: &Method) -> Response<ResBody> {
    error(
        method,
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "Method not allowed: this server is read-only",
    )
}

/// `/api/{type}s/{repo}/revision/{rev}`: the fields clients read.
pub(crate) fn repo_info(repo: &RepoRef, listing: &Listing, blobs: bool) -> Value {
    let siblings: Vec<Value> = listing
        .files
        .iter()
        .map(|f| {
            if blobs {
                let mut v = json!({ "rfilename": f.path, "size": f.size, "blobId": f.oid });
                if let Some(sha) = &f.lfs_sha256 {
                    v["lfs"] =
                        json!({ "sha256": sha, "size": f.size, "pointerSize": f.pointer_size() });
                }
                v
            } else {
                json!({ "rfilename": f.path })
            }
        })
        .collect();
    let id = repo.id.as_str();
    let mut v = json!({
        "_id": format!("hfd-serve-{}", &listing.commit),
        "id": id,
        "author": id.split_once('/').map(|(a, _)| a),
        "sha": listing.commit,
        "private": false,
        "gated": false,
        "disabled": false,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": listing.files.iter().map(|f| f.size).sum::<u64>(),
    });
    if repo.repo_type == RepoType::Model {
        v["modelId"] = json!(id);
    }
    v
}

/// A file entry of the tree and paths-info APIs.
pub(crate) fn file_entry(f: &FileEntry) -> Value {
    let mut v = json!({ "type": "file", "oid": f.oid, "size": f.size, "path": f.path });
    if let Some(sha) = &f.lfs_sha256 {
        v["lfs"] = json!({ "oid": sha, "size": f.size, "pointerSize": f.pointer_size() });
    }
    v
}

/// A folder entry; its id is derived from the commit and path (stable, not
/// git's tree id, which no client checks).
pub(crate) fn dir_entry(commit: &str, path: &str) -> Value {
    let mut h = sha1::Sha1::new();
    h.update(format!("tree\0{commit}\0{path}").as_bytes());
    json!({ "type": "directory", "oid": hex::encode(h.finalize()), "size": 0, "path": path })
}

/// One page of the tree API below `dir` (empty: the root): entries
/// `[start, start + page)` in path order, and the offset of the next page.
pub(crate) fn tree_page(
    listing: &Listing,
    dir: &str,
    recursive: bool,
    start: usize,
    page: usize,
) -> (Vec<Value>, Option<usize>) {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let keep = |p: &str| {
        p.strip_prefix(prefix.as_str())
            .is_some_and(|rest| !rest.is_empty() && (recursive || !rest.contains('/')))
    };
    let dirs = listing.dirs();
    let mut items: Vec<(&str, Option<&FileEntry>)> = listing
        .files
        .iter()
        .filter(|f| keep(&f.path))
        .map(|f| (f.path.as_str(), Some(f)))
        .chain(dirs.into_iter().filter(|d| keep(d)).map(|d| (d, None)))
        .collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    let end = start.saturating_add(page).min(items.len());
    let values = items
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .map(|(p, f)| match f {
            Some(f) => file_entry(f),
            None => dir_entry(&listing.commit, p),
        })
        .collect();
    (values, (end < items.len()).then_some(end))
}

/// Opaque-looking pagination cursor.
pub(crate) fn encode_cursor(offset: usize) -> String {
    hex::encode(format!("o:{offset}"))
}

pub(crate) fn decode_cursor(cursor: &str) -> Option<usize> {
    let raw = hex::decode(cursor).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("o:")?
        .parse()
        .ok()
}

/// The answer of `resolve`: the file, whole or one range, with the headers
/// huggingface_hub and hfd-rs read (`X-Repo-Commit`, `ETag`,
/// `X-Linked-Etag`, `X-Linked-Size`, `Content-Length`, `Accept-Ranges`).
/// `size` is the size of the open `file` (checked by the caller).
/// Where an answer's bytes come from.
pub(crate) enum Content {
    /// A complete file, opened.
    Ready(File),
    /// A file still being pulled from upstream.
    Arriving(Arc<Arrival>),
}

pub(crate) fn file_response(
    method: &Method,
    range: Option<&str>,
    commit: &str,
    entry: &FileEntry,
    content: Content,
) -> Response<ResBody> {
    let size = entry.size;
    let etag = format!("\"{}\"", entry.etag());
    let mut b = Response::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ETAG, &etag)
        .header("x-repo-commit", commit);
    if entry.lfs_sha256.is_some() {
        b = b
            .header("x-linked-etag", &etag)
            .header("x-linked-size", size);
    }
    let (status, start, len) = match range_answer(range, size) {
        RangeAnswer::Full => (StatusCode::OK, 0, size),
        RangeAnswer::Partial { start, end } => {
            b = b.header(
                header::CONTENT_RANGE,
                format!("bytes {start}-{}/{size}", end - 1),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start)
        }
        RangeAnswer::Unsatisfiable => {
            return b
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .header(header::CONTENT_LENGTH, 0)
                .body(empty())
                .expect("valid response");
        }
    };
    let body = if method == Method::HEAD || len == 0 {
        empty()
    } else {
        match content {
            Content::Ready(file) => file_range(file, start, len),
            Content::Arriving(arrival) => arrival.body(start, len),
        }
    };
    b.status(status)
        .header(header::CONTENT_LENGTH, len)
        .body(body)
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Listing {
        let f = |p: &str| FileEntry::from_etag(p.into(), 1, &"1".repeat(40)).unwrap();
        Listing {
            commit: "c".repeat(40),
            files: vec![f("a/b/c.txt"), f("a/d.txt"), f("e.txt"), f("f.txt")],
        }
        .sorted()
    }

    #[test]
    fn tree_pages_cover_everything_once() {
        let l = listing();
        let mut seen = Vec::new();
        let mut start = 0;
        loop {
            let (page, next) = tree_page(&l, "", true, start, 2);
            seen.extend(page.iter().map(|v| v["path"].as_str().unwrap().to_owned()));
            match next {
                Some(n) => start = n,
                None => break,
            }
        }
        assert_eq!(seen, ["a", "a/b", "a/b/c.txt", "a/d.txt", "e.txt", "f.txt"]);
        let (top, _) = tree_page(&l, "", false, 0, 100);
        assert_eq!(top.len(), 3);
        let (sub, _) = tree_page(&l, "a", false, 0, 100);
        let paths: Vec<_> = sub.iter().map(|v| v["path"].as_str().unwrap()).collect();
        assert_eq!(paths, ["a/b", "a/d.txt"]);
        assert_eq!(decode_cursor(&encode_cursor(1234)), Some(1234));
        assert_eq!(decode_cursor("zz"), None);
    }
}
