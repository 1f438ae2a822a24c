//! Who is asking (token → caller) and which repo, revision and files they may read.

use std::sync::Arc;

use http::{Response, StatusCode, header};

use super::ResBody;
use super::ctx::Ctx;
use crate::fixture::{Access, RepoType};
use crate::state::RepoState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Caller {
    Anonymous,
    /// A valid token with access to every repo.
    Full,
    /// A valid token without access to private or gated repos.
    Limited,
}

pub(super) fn authenticate(ctx: &Ctx) -> Result<Caller, Response<ResBody>> {
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

/// Finds the repo named by the first one or two segments. Returns the repo (if it exists
/// with that type), its id as written and how many segments it used.
pub(super) fn find_repo(
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
pub(super) fn take_revision(repo: &RepoState, segs: &[&str]) -> (String, usize) {
    if segs.first() == Some(&"refs") && segs.len() >= 3 {
        let joined = segs[..3].join("/");
        if repo.resolve(&joined).is_some() {
            return (joined, 3);
        }
    }
    (segs.first().copied().unwrap_or("").to_owned(), 1)
}

pub(super) fn check_read(
    ctx: &Ctx,
    repo: Option<Arc<RepoState>>,
    caller: Caller,
) -> Result<Arc<RepoState>, Response<ResBody>> {
    match repo {
        Some(r) if r.access != Access::Private || caller == Caller::Full => Ok(r),
        _ => Err(ctx.repo_not_found(caller)),
    }
}

pub(super) fn check_files(
    ctx: &Ctx,
    repo: &RepoState,
    caller: Caller,
) -> Result<(), Response<ResBody>> {
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

pub(super) fn revision_not_found(ctx: &Ctx, rev: &str) -> Response<ResBody> {
    ctx.error(
        StatusCode::NOT_FOUND,
        Some("RevisionNotFound"),
        &format!("Invalid rev id: {rev}"),
        None,
    )
}

pub(super) fn entry_not_found(ctx: &Ctx, path: &str, rev: &str, commit: &str) -> Response<ResBody> {
    ctx.error(
        StatusCode::NOT_FOUND,
        Some("EntryNotFound"),
        &format!("{path} does not exist on \"{rev}\""),
        Some(commit),
    )
}
