//! Repository ids, repository types, revisions and pinned commits.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Longest namespace or name part of a repo id (`utils/_validators.py`).
const MAX_PART_LEN: usize = 96;

/// A validated repository id: `name` or `namespace/name`.
///
/// Rules (docs/hub-protocol.md §1, restricted to ASCII): at most one `/`; each part is
/// 1–96 characters from `[A-Za-z0-9._-]`, not starting or ending with `-` or
/// `.`; no `--` or `..` anywhere; not ending in `.git`. The id is never
/// URL-encoded, so anything outside this set is rejected here.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoId(String);

impl RepoId {
    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self> {
        let invalid = |reason: &'static str| Error::InvalidRepoId {
            id: id.chars().take(200).collect(),
            reason,
        };
        if id.is_empty() {
            return Err(invalid("it is empty"));
        }
        let parts: Vec<&str> = id.split('/').collect();
        if parts.len() > 2 {
            return Err(invalid(
                "expected `name` or `namespace/name` (at most one `/`)",
            ));
        }
        for part in &parts {
            if part.is_empty() {
                return Err(invalid("the namespace and the name must not be empty"));
            }
            if part.len() > MAX_PART_LEN {
                return Err(invalid("a part is longer than 96 characters"));
            }
            if !part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(invalid(
                    "only ASCII letters, digits, `_`, `-` and `.` are allowed",
                ));
            }
            if part.starts_with(['-', '.']) || part.ends_with(['-', '.']) {
                return Err(invalid("a part must not start or end with `-` or `.`"));
            }
        }
        if id.contains("--") || id.contains("..") {
            return Err(invalid("`--` and `..` are not allowed"));
        }
        if id.to_ascii_lowercase().ends_with(".git") {
            return Err(invalid("it must not end with `.git`"));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RepoId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Display for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RepoId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoId({})", self.0)
    }
}

/// The kind of repository. Default: [`RepoType::Model`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RepoType {
    /// A model repository (no URL prefix).
    #[default]
    Model,
    /// A dataset repository (`datasets/` prefix).
    Dataset,
    /// A Space repository (`spaces/` prefix).
    Space,
}

impl RepoType {
    /// `model`, `dataset` or `space`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Dataset => "dataset",
            Self::Space => "space",
        }
    }

    /// The plural used in API URLs: `models`, `datasets`, `spaces`.
    pub fn api_plural(self) -> &'static str {
        match self {
            Self::Model => "models",
            Self::Dataset => "datasets",
            Self::Space => "spaces",
        }
    }

    /// The prefix of resolve URLs: `""`, `"datasets/"`, `"spaces/"`.
    pub fn url_prefix(self) -> &'static str {
        match self {
            Self::Model => "",
            Self::Dataset => "datasets/",
            Self::Space => "spaces/",
        }
    }
}

impl FromStr for RepoType {
    type Err = Error;
    /// Accepts `model`, `dataset`, `space` and their plurals, any case.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "model" | "models" => Ok(Self::Model),
            "dataset" | "datasets" => Ok(Self::Dataset),
            "space" | "spaces" => Ok(Self::Space),
            _ => Err(Error::InvalidRepoType {
                value: s.chars().take(64).collect(),
            }),
        }
    }
}

impl fmt::Display for RepoType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A repository on the Hub: id plus type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepoRef {
    /// The repository id.
    pub id: RepoId,
    /// The repository type.
    pub repo_type: RepoType,
}

impl RepoRef {
    /// A repository of the given type.
    pub fn new(id: RepoId, repo_type: RepoType) -> Self {
        Self { id, repo_type }
    }

    /// A model repository.
    pub fn model(id: RepoId) -> Self {
        Self::new(id, RepoType::Model)
    }

    /// A dataset repository.
    pub fn dataset(id: RepoId) -> Self {
        Self::new(id, RepoType::Dataset)
    }

    /// A Space repository.
    pub fn space(id: RepoId) -> Self {
        Self::new(id, RepoType::Space)
    }

    /// The repo's path below the endpoint: `{prefix}{id}`, e.g. `datasets/org/name`.
    pub fn url_path(&self) -> String {
        format!("{}{}", self.repo_type.url_prefix(), self.id)
    }
}

impl fmt::Display for RepoRef {
    /// `org/name` for models, `datasets/org/name` and `spaces/org/name` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.repo_type.url_prefix(), self.id)
    }
}

/// A revision as the user gave it: branch, tag, `refs/...` ref or commit.
///
/// Default: `main`. Branch names may contain `/`; the revision is
/// percent-encoded as one URL segment (`refs/pr/1` → `refs%2Fpr%2F1`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Revision(String);

impl Revision {
    /// Validates `revision`: not empty, not `.` or `..`, at most 255 bytes,
    /// no whitespace or control characters.
    pub fn new(revision: &str) -> Result<Self> {
        let invalid = |reason: &'static str| Error::InvalidRevision {
            revision: revision.chars().take(200).collect(),
            reason,
        };
        if revision.is_empty() {
            return Err(invalid("it is empty"));
        }
        if revision.len() > 255 {
            return Err(invalid("it is longer than 255 bytes"));
        }
        if revision == "." || revision == ".." {
            return Err(invalid("`.` and `..` are not revisions"));
        }
        if revision
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid("it contains whitespace or control characters"));
        }
        Ok(Self(revision.to_owned()))
    }

    /// The revision as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The commit, when the revision is already a full 40-hex commit id
    /// (lower case, as huggingface_hub's `REGEX_COMMIT_HASH`). Short hashes
    /// are treated as ref names.
    pub fn as_commit(&self) -> Option<Commit> {
        Commit::parse(&self.0).filter(|c| c.0 == self.0)
    }
}

impl Default for Revision {
    fn default() -> Self {
        Self("main".to_owned())
    }
}

impl FromStr for Revision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Revision({})", self.0)
    }
}

/// A pinned commit: 40 lower-case hex digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Commit(String);

impl Commit {
    /// Parses 40 hex digits (either case; stored lower case).
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(s.to_ascii_lowercase()))
    }

    /// The 40-hex commit id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Commit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Commit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Commit({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_repo_ids() {
        for id in [
            "gpt2",
            "openai-community/gpt2",
            "meta-llama/Llama-2-7b-hf",
            "a/b",
            "HuggingFaceFW/fineweb",
            "org_1/name.v2",
            &format!("{}/x", "a".repeat(96)),
        ] {
            assert_eq!(RepoId::new(id).unwrap().as_str(), id, "{id}");
        }
    }

    #[test]
    fn rejects_invalid_repo_ids() {
        for id in [
            "",
            "/",
            "a/",
            "/a",
            "a/b/c",
            "a b",
            "org/na me",
            "org/-name",
            "org/name-",
            ".org/name",
            "org/name.",
            "org/na--me",
            "org/na..me",
            "org/name.git",
            "org/naïve",
            "org/name?x",
            "org/name#x",
            "../etc",
            &"a".repeat(97),
        ] {
            assert!(RepoId::new(id).is_err(), "{id:?} accepted");
        }
    }

    #[test]
    fn repo_types_parse_and_prefix() {
        assert_eq!("dataset".parse::<RepoType>().unwrap(), RepoType::Dataset);
        assert_eq!("Spaces".parse::<RepoType>().unwrap(), RepoType::Space);
        assert_eq!("model".parse::<RepoType>().unwrap(), RepoType::Model);
        assert!("kernel".parse::<RepoType>().is_err());
        let r = RepoRef::dataset(RepoId::new("allenai/c4").unwrap());
        assert_eq!(r.url_path(), "datasets/allenai/c4");
        assert_eq!(r.repo_type.api_plural(), "datasets");
        assert_eq!(RepoType::Model.url_prefix(), "");
        assert_eq!(RepoType::Space.api_plural(), "spaces");
    }

    #[test]
    fn revisions_and_commits() {
        assert_eq!(Revision::default().as_str(), "main");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            Revision::new(sha).unwrap().as_commit().unwrap().as_str(),
            sha
        );
        // Short hashes and upper-case hex are ref names, not commits.
        assert!(Revision::new("0123456").unwrap().as_commit().is_none());
        assert!(
            Revision::new(&sha.to_ascii_uppercase())
                .unwrap()
                .as_commit()
                .is_none()
        );
        assert!(Revision::new("refs/pr/1").unwrap().as_commit().is_none());
        assert!(Revision::new("").is_err());
        assert!(Revision::new("a b").is_err());
        assert!(Revision::new("a\nb").is_err());
        assert!(Revision::new("..").is_err());
        assert!(Revision::new(".").is_err());
        assert!(Commit::parse("xyz").is_none());
        assert_eq!(
            Commit::parse(&sha.to_ascii_uppercase()).unwrap().as_str(),
            sha
        );
    }
}
