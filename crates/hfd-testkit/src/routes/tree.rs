//! Tree listing with `Link` pagination (real and synthetic) and `paths-info`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use http::{Response, StatusCode, header};
use serde_json::{Value, json};
use sha2::Digest as _;

use super::ResBody;
use super::access::entry_not_found;
use super::ctx::Ctx;
use super::url::is_true;
use crate::body::header_value;
use crate::content::Blob;
use crate::state::{Commit, iso_time};

pub(super) fn file_entry(path: &str, blob: &Blob, commit: &Commit, expand: bool) -> Value {
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

pub(super) fn dir_entry(path: &str, commit: &Commit, expand: bool) -> Value {
    let mut h = sha1::Sha1::new();
    h.update(format!("tree\0{}\0{path}", commit.sha).as_bytes());
    let mut v =
        json!({ "type": "directory", "oid": hex::encode(h.finalize()), "size": 0, "path": path });
    if expand {
        v["lastCommit"] = last_commit(commit);
    }
    v
}

pub(super) fn last_commit(commit: &Commit) -> Value {
    json!({ "id": commit.sha, "title": commit.title, "date": iso_time(commit.date_secs) })
}

pub(super) fn all_dirs(commit: &Commit) -> BTreeSet<String> {
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

pub(super) fn tree(
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
    let entries = commit.entries.get_or_init(|| {
        let mut entries: Vec<(String, Option<Arc<Blob>>)> = commit
            .files
            .iter()
            .map(|(p, b)| (p.clone(), Some(Arc::clone(b))))
            .chain(all_dirs(commit).into_iter().map(|d| (d, None)))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    });
    if !sub.is_empty()
        && entries
            .binary_search_by(|(p, _)| p.as_str().cmp(sub))
            .map_or(true, |i| entries[i].1.is_some())
    {
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
    let items: Vec<(&str, Option<&Arc<Blob>>)> = entries
        .iter()
        .filter(|(p, _)| keep(p))
        .map(|(p, b)| (p.as_str(), b.as_ref()))
        .collect();

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

pub(super) fn set_next_link(ctx: &Ctx, resp: &mut Response<ResBody>, next_offset: usize) {
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
pub(super) fn synthetic_tree(
    ctx: &Ctx,
    total: u64,
    query: &[(String, String)],
) -> Response<ResBody> {
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

/// The `cursor` query value of the tree page that starts at entry `offset`
/// (files and folders, sorted by path), as the fake hub's next-page links
/// carry it: a fault can aim at one page with
/// [`Fault::query_contains`](crate::Fault::query_contains).
pub fn tree_cursor(offset: usize) -> String {
    encode_cursor(offset)
}

/// Opaque-looking cursor: base16 of `"p:<offset>"`.
pub(super) fn encode_cursor(offset: usize) -> String {
    hex::encode(format!("p:{offset}"))
}

pub(super) fn decode_cursor(cursor: &str) -> Option<usize> {
    let raw = hex::decode(cursor).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("p:")?
        .parse()
        .ok()
}

pub(super) fn paths_info(
    ctx: &Ctx,
    commit: &Commit,
    paths: &[&str],
    expand: bool,
) -> Response<ResBody> {
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
