//! `/api/…`: repo info, `whoami-v2`, refs, and the dispatch to the tree listing.

use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::ResBody;
use super::access::{Caller, check_read, find_repo, revision_not_found, take_revision};
use super::ctx::Ctx;
use super::tree::{paths_info, tree};
use super::url::{is_true, query_pairs};
use crate::fixture::{Access, RepoType};
use crate::state::{Commit, RepoState, iso_time};

pub(super) async fn api(
    ctx: &Ctx,
    caller: Caller,
    segs: &[&str],
    body: Incoming,
) -> Response<ResBody> {
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

pub(super) fn whoami(ctx: &Ctx, caller: Caller) -> Response<ResBody> {
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

pub(super) fn repo_info(
    ctx: &Ctx,
    repo: &RepoState,
    commit: &Commit,
    blobs: bool,
) -> Response<ResBody> {
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
pub(super) fn refs(ctx: &Ctx, repo: &RepoState, include_prs: bool) -> Response<ResBody> {
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
