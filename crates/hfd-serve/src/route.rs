//! Which hub endpoint a request path names (pure: no I/O).
//!
//! Paths are decoded one segment at a time; repo ids, revisions and file
//! paths are validated here, so nothing later sees `..`, an absolute path,
//! a backslash, NUL or an encoded `/` that climbs out.

use hfd::hfd_hub::{RepoId, RepoRef, RepoType, Revision};
use percent_encoding::percent_decode_str;

/// A request the server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `GET /api/{models,datasets,spaces}/{repo}[/revision/{rev}]`.
    Info { repo: RepoRef, revision: Revision },
    /// `GET /api/…/{repo}/tree/{rev}[/{path}]`; `path` is empty for the root.
    Tree {
        repo: RepoRef,
        revision: Revision,
        path: String,
    },
    /// `POST /api/…/{repo}/paths-info/{rev}`.
    PathsInfo { repo: RepoRef, revision: Revision },
    /// `GET|HEAD /[datasets/|spaces/]{repo}/resolve/{rev}/{path}`.
    Resolve {
        repo: RepoRef,
        revision: Revision,
        path: String,
    },
}

/// Why a path names nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unroutable {
    /// No such endpoint (404 without a hub error code).
    NotFound,
    /// A malformed or unsafe path: bad encoding, `..`, absolute, … (400).
    BadPath,
}

const API_KEYWORDS: [&str; 3] = ["revision", "tree", "paths-info"];

/// Routes a request path (as received, still percent-encoded).
pub(crate) fn route(raw_path: &str) -> Result<Endpoint, Unroutable> {
    let segs = decode_segments(raw_path)?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    match segs.first().copied() {
        Some("api") => api(&segs[1..]),
        Some("datasets") => resolve(RepoType::Dataset, &segs[1..]),
        Some("spaces") => resolve(RepoType::Space, &segs[1..]),
        Some(_) => resolve(RepoType::Model, &segs),
        None => Err(Unroutable::NotFound),
    }
}

fn decode_segments(raw_path: &str) -> Result<Vec<String>, Unroutable> {
    let Some(rest) = raw_path.strip_prefix('/') else {
        return Err(Unroutable::BadPath);
    };
    rest.split('/')
        .map(|s| {
            percent_decode_str(s)
                .decode_utf8()
                .map(std::borrow::Cow::into_owned)
                .map_err(|_| Unroutable::BadPath)
        })
        .collect()
}

fn repo_type(plural: &str) -> Option<RepoType> {
    match plural {
        "models" => Some(RepoType::Model),
        "datasets" => Some(RepoType::Dataset),
        "spaces" => Some(RepoType::Space),
        _ => None,
    }
}

fn repo(kind: RepoType, parts: &[&str]) -> Result<RepoRef, Unroutable> {
    let id = parts.join("/");
    // Each part is one decoded segment: an encoded `/` inside one is refused.
    if parts.iter().any(|p| p.contains('/') || p.is_empty()) {
        return Err(Unroutable::BadPath);
    }
    let id = RepoId::new(&id).map_err(|_| Unroutable::BadPath)?;
    Ok(RepoRef::new(id, kind))
}

/// Whether `path` is a relative `/`-separated path that stays where it is
/// joined: not empty, not absolute, no drive letter, no empty, `.` or `..`
/// segment, no backslash, NUL or other control character, at most 4096
/// bytes and 255 per segment (the rules hfd-hub applies to listings).
pub(crate) fn safe_repo_path(path: &str) -> bool {
    let b = path.as_bytes();
    let drive_letter = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
    let refused = path.is_empty()
        || path.len() > 4096
        || path.starts_with('/')
        || drive_letter
        || path.chars().any(|c| c == '\\' || c.is_control());
    !refused
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg.len() <= 255)
}

fn check_repo_path(path: &str) -> Result<(), Unroutable> {
    if safe_repo_path(path) {
        Ok(())
    } else {
        Err(Unroutable::BadPath)
    }
}

fn revision(raw: &str) -> Result<Revision, Unroutable> {
    let revision = Revision::new(raw).map_err(|_| Unroutable::BadPath)?;
    // Branch names become nested folders under `refs/`: the same rules as
    // a repo path keep them inside.
    check_repo_path(raw)?;
    Ok(revision)
}

/// A file path from its (decoded) segments.
fn file_path(segs: &[&str]) -> Result<String, Unroutable> {
    let path = segs.join("/");
    check_repo_path(&path)?;
    Ok(path)
}

/// Splits a revision off `segs`, accepting an unencoded `refs/pr/N` (or
/// `refs/convert/x`) over three segments when `more` segments must follow.
fn take_revision<'a>(segs: &'a [&'a str], more: usize) -> Option<(String, &'a [&'a str])> {
    if segs.first() == Some(&"refs") && segs.len() >= 3 + more {
        return Some((segs[..3].join("/"), &segs[3..]));
    }
    let (first, rest) = segs.split_first()?;
    Some(((*first).to_owned(), rest))
}

fn api(segs: &[&str]) -> Result<Endpoint, Unroutable> {
    let Some(kind) = segs.first().and_then(|p| repo_type(p)) else {
        return Err(Unroutable::NotFound);
    };
    let rest = &segs[1..];
    let id_len = if rest.len() >= 3 && API_KEYWORDS.contains(&rest[2]) {
        2
    } else if rest.len() >= 2 && API_KEYWORDS.contains(&rest[1]) {
        1
    } else if rest.len() == 1 || rest.len() == 2 {
        rest.len()
    } else {
        return Err(Unroutable::NotFound);
    };
    let repo = repo(kind, &rest[..id_len])?;
    let rest = &rest[id_len..];
    let Some((keyword, rest)) = rest.split_first() else {
        return Ok(Endpoint::Info {
            repo,
            revision: Revision::default(),
        });
    };
    let Some((rev, rest)) = take_revision(rest, 0) else {
        return Err(Unroutable::NotFound);
    };
    let revision = revision(&rev)?;
    match *keyword {
        "revision" if rest.is_empty() => Ok(Endpoint::Info { repo, revision }),
        "paths-info" if rest.is_empty() => Ok(Endpoint::PathsInfo { repo, revision }),
        "tree" => {
            let parts: Vec<&str> = rest.iter().copied().filter(|s| !s.is_empty()).collect();
            let path = if parts.is_empty() {
                String::new()
            } else {
                file_path(&parts)?
            };
            Ok(Endpoint::Tree {
                repo,
                revision,
                path,
            })
        }
        _ => Err(Unroutable::NotFound),
    }
}

fn resolve(kind: RepoType, segs: &[&str]) -> Result<Endpoint, Unroutable> {
    let id_len = if segs.get(2) == Some(&"resolve") {
        2
    } else if segs.get(1) == Some(&"resolve") {
        1
    } else {
        return Err(Unroutable::NotFound);
    };
    let repo = repo(kind, &segs[..id_len])?;
    let Some((rev, rest)) = take_revision(&segs[id_len + 1..], 1) else {
        return Err(Unroutable::NotFound);
    };
    if rest.is_empty() {
        return Err(Unroutable::NotFound);
    }
    Ok(Endpoint::Resolve {
        repo,
        revision: revision(&rev)?,
        path: file_path(rest)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_of(p: &str) -> (String, String, String) {
        match route(p) {
            Ok(Endpoint::Resolve {
                repo,
                revision,
                path,
            }) => (repo.url_path(), revision.as_str().to_owned(), path),
            other => panic!("{p}: {other:?}"),
        }
    }

    #[test]
    fn resolve_urls() {
        assert_eq!(
            resolve_of("/org/m/resolve/main/a/b.txt"),
            ("org/m".into(), "main".into(), "a/b.txt".into())
        );
        assert_eq!(
            resolve_of("/gpt2/resolve/main/config.json"),
            ("gpt2".into(), "main".into(), "config.json".into())
        );
        assert_eq!(
            resolve_of("/datasets/org/d/resolve/refs%2Fpr%2F1/odd%20name%2B1%23%3F.txt"),
            (
                "datasets/org/d".into(),
                "refs/pr/1".into(),
                "odd name+1#?.txt".into()
            )
        );
        assert_eq!(
            resolve_of("/org/m/resolve/refs/pr/1/x"),
            ("org/m".into(), "refs/pr/1".into(), "x".into())
        );
    }

    #[test]
    fn api_urls() {
        assert!(matches!(
            route("/api/models/org/m/revision/main"),
            Ok(Endpoint::Info { .. })
        ));
        assert!(matches!(
            route("/api/models/gpt2"),
            Ok(Endpoint::Info { .. })
        ));
        assert!(matches!(
            route("/api/datasets/org/d/tree/main/sub/dir"),
            Ok(Endpoint::Tree { path, .. }) if path == "sub/dir"
        ));
        assert!(matches!(
            route("/api/models/org/m/tree/main"),
            Ok(Endpoint::Tree { path, .. }) if path.is_empty()
        ));
        assert!(matches!(
            route("/api/spaces/org/s/paths-info/abc"),
            Ok(Endpoint::PathsInfo { .. })
        ));
        assert_eq!(route("/api/whoami-v2"), Err(Unroutable::NotFound));
        assert_eq!(route("/"), Err(Unroutable::NotFound));
    }

    #[test]
    fn traversal_is_refused() {
        for p in [
            "/org/m/resolve/main/../../../etc/passwd",
            "/org/m/resolve/main/%2e%2e/%2e%2e/etc/passwd",
            "/org/m/resolve/main/a%2F..%2F..%2Fb",
            "/org/m/resolve/main//etc/passwd",
            "/org/m/resolve/main/a%5C..%5Cb",
            "/org/m/resolve/main/a%00b",
            "/org/m/resolve/..%2F..%2Fx/f",
            "/org/m/resolve/%2E%2E/f",
            "/org/%2E%2E/resolve/main/f",
            "/org%2F..%2Fx/m/resolve/main/f",
            "/api/models/org/m/tree/main/../..",
            "/api/models/org/m/revision/..%2F..%2Fx",
            "/org/m/resolve/main/%ff",
        ] {
            assert_eq!(route(p), Err(Unroutable::BadPath), "{p}");
        }
    }
}
