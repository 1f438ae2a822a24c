//! The Hub endpoint, origins, Hub hosts and URL building (docs/hub-protocol.md §1).

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use crate::error::{Error, Result};
use crate::repo::RepoRef;
use hfd_types::RedactedUrl;

/// The official Hub, used when no endpoint is configured.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Hosts that are Hub hosts whatever the configured endpoint is (over https,
/// port 443): `constants.HF_URL_HOSTS` of the reference client plus staging.
pub const OFFICIAL_HUB_HOSTS: [&str; 3] = ["huggingface.co", "hf.co", "hub-ci.huggingface.co"];

/// Python's `quote(s, safe="")`: everything but `A-Z a-z 0-9 _ . - ~`.
const REVISION_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// Python's `quote(s)` (default `safe="/"`): as above, but `/` kept.
const PATH_SET: &AsciiSet = &REVISION_SET.remove(b'/');

/// Percent-encodes a revision as one URL segment, with no safe characters:
/// `refs/pr/1` → `refs%2Fpr%2F1` (docs/hub-protocol.md §1).
pub fn encode_revision(revision: &str) -> String {
    utf8_percent_encode(revision, REVISION_SET).to_string()
}

/// Percent-encodes a repo file path for resolve URLs, keeping `/`:
/// `dir/my file+1#?.bin` → `dir/my%20file%2B1%23%3F.bin` (docs/hub-protocol.md §1).
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH_SET).to_string()
}

/// Scheme, host and port of a URL: what "same origin" compares.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct UrlOrigin {
    scheme: String,
    host: String,
    port: u16,
}

impl UrlOrigin {
    /// The origin of an http(s) URL with a host.
    pub(crate) fn of(url: &Url) -> Option<Self> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        Some(Self {
            scheme: scheme.to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// Whether this is one of [`OFFICIAL_HUB_HOSTS`] over https on port 443.
    pub(crate) fn is_official_hub(&self) -> bool {
        self.scheme == "https"
            && self.port == 443
            && OFFICIAL_HUB_HOSTS.contains(&self.host.as_str())
    }

    pub(crate) fn is_https(&self) -> bool {
        self.scheme == "https"
    }
}

/// A validated Hub endpoint: `http(s)://host[:port][/prefix]`, no trailing
/// `/`, no userinfo, query or fragment. Default: [`DEFAULT_ENDPOINT`].
///
/// Every URL is built by appending to this string, so a path prefix (a
/// corporate proxy mounting the Hub under `/repository/hf`) is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    base: String,
    origin: UrlOrigin,
    /// The path prefix (`/repository/hf`), empty when mounted at the root.
    prefix: String,
}

impl Endpoint {
    /// Parses and validates an endpoint URL; one trailing `/` (or several)
    /// is removed.
    pub fn parse(endpoint: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidEndpoint {
            endpoint: RedactedUrl::new(endpoint),
            reason: reason.to_owned(),
        };
        let trimmed = endpoint.trim();
        let url = Url::parse(trimmed).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(invalid("the scheme must be http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials in the endpoint URL are not supported; pass a token instead",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("the endpoint must not have a query or a fragment"));
        }
        let origin = UrlOrigin::of(&url).ok_or_else(|| invalid("the endpoint has no host"))?;
        let base = url.as_str().trim_end_matches('/').to_owned();
        let prefix = url.path().trim_end_matches('/').to_owned();
        Ok(Self {
            base,
            origin,
            prefix,
        })
    }

    /// The endpoint URL without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// Whether the endpoint is the official Hub (or its staging twin) rather
    /// than a mirror.
    pub fn is_official(&self) -> bool {
        self.origin.is_official_hub()
    }

    pub(crate) fn origin(&self) -> &UrlOrigin {
        &self.origin
    }

    /// Whether `url` is on a Hub host: the endpoint's own origin, or an
    /// official Hub host over https:443. CDN and storage hosts are not.
    pub(crate) fn is_hub_url(&self, url: &Url) -> bool {
        UrlOrigin::of(url).is_some_and(|o| o == self.origin || o.is_official_hub())
    }

    /// `url` with the endpoint's path prefix put back: a URL on the
    /// endpoint's own origin whose path is a Hub API path (`/api/…`) outside
    /// the prefix. A proxy that mounts the Hub under a path (nginx's
    /// `location /hf/ { proxy_pass …; }`, a worker) passes the Hub's own
    /// absolute-path redirects (`/api/resolve-cache/…`) and links through
    /// unchanged; asked as they are, they miss the mount. Anything else is
    /// returned as it is.
    pub(crate) fn keep_prefix(&self, url: Url) -> Url {
        if self.prefix.is_empty()
            || UrlOrigin::of(&url).as_ref() != Some(&self.origin)
            || url.path().starts_with(&format!("{}/", self.prefix))
            || !url.path().starts_with("/api/")
        {
            return url;
        }
        let mut inside = url.clone();
        inside.set_path(&format!("{}{}", self.prefix, url.path()));
        inside
    }

    /// `E/api/{types}/{repo}/revision/{enc_rev}`.
    pub fn revision_url(&self, repo: &RepoRef, revision: &str) -> String {
        format!(
            "{}/api/{}/{}/revision/{}",
            self.base,
            repo.repo_type.api_plural(),
            repo.id,
            encode_revision(revision)
        )
    }

    /// `E/api/{types}/{repo}`: the repository at its default branch.
    pub fn repo_info_url(&self, repo: &RepoRef) -> String {
        format!(
            "{}/api/{}/{}",
            self.base,
            repo.repo_type.api_plural(),
            repo.id
        )
    }

    /// `E/api/{types}/{repo}/tree/{enc_rev}?recursive=true&expand=false`.
    pub fn tree_url(&self, repo: &RepoRef, revision: &str) -> String {
        format!(
            "{}/api/{}/{}/tree/{}?recursive=true&expand=false",
            self.base,
            repo.repo_type.api_plural(),
            repo.id,
            encode_revision(revision)
        )
    }

    /// `E/{prefix}{repo}/resolve/{enc_rev}/{enc_path}`.
    pub fn resolve_url(&self, repo: &RepoRef, revision: &str, path: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.base,
            repo.url_path(),
            encode_revision(revision),
            encode_path(path)
        )
    }

    /// The page where a user asks for access to a gated repo. Mirrors do not
    /// grant access, so for them this is the official Hub's page.
    pub(crate) fn access_page(&self, repo: &RepoRef) -> String {
        let base = if self.is_official() {
            self.base.as_str()
        } else {
            DEFAULT_ENDPOINT
        };
        format!("{base}/{}", repo.url_path())
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Self::parse(DEFAULT_ENDPOINT).expect("the default endpoint is a valid URL")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.base)
    }
}

impl std::str::FromStr for Endpoint {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{RepoId, RepoType};

    fn repo(id: &str, t: RepoType) -> RepoRef {
        RepoRef::new(RepoId::new(id).unwrap(), t)
    }

    #[test]
    fn revision_is_encoded_with_no_safe_chars() {
        assert_eq!(encode_revision("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(
            encode_revision("refs/convert/parquet"),
            "refs%2Fconvert%2Fparquet"
        );
        assert_eq!(encode_revision("feature/x y"), "feature%2Fx%20y");
        assert_eq!(encode_revision("v1.0_rc-1~2"), "v1.0_rc-1~2");
    }

    #[test]
    fn path_keeps_slash_and_encodes_the_rest() {
        assert_eq!(
            encode_path("dir/my file+1#?.bin"),
            "dir/my%20file%2B1%23%3F.bin"
        );
        assert_eq!(encode_path("a b+#.bin"), "a%20b%2B%23.bin");
        assert_eq!(encode_path("données/ü.txt"), "donn%C3%A9es/%C3%BC.txt");
        assert_eq!(encode_path("100%.txt"), "100%25.txt");
        assert_eq!(encode_path("a;b=c&d.txt"), "a%3Bb%3Dc%26d.txt");
    }

    #[test]
    fn endpoint_keeps_prefix_and_drops_trailing_slash() {
        let e = Endpoint::parse("https://nexus.corp/repository/hf/").unwrap();
        assert_eq!(e.as_str(), "https://nexus.corp/repository/hf");
        let r = repo("org/m", RepoType::Model);
        assert_eq!(
            e.resolve_url(&r, "refs/pr/1", "sub dir/a.bin"),
            "https://nexus.corp/repository/hf/org/m/resolve/refs%2Fpr%2F1/sub%20dir/a.bin"
        );
        assert_eq!(
            e.revision_url(&r, "main"),
            "https://nexus.corp/repository/hf/api/models/org/m/revision/main"
        );
        assert!(!e.is_official());
        let d = Endpoint::default();
        assert_eq!(d.as_str(), "https://huggingface.co");
        assert!(d.is_official());
        assert_eq!(
            d.tree_url(&repo("allenai/c4", RepoType::Dataset), "abc"),
            "https://huggingface.co/api/datasets/allenai/c4/tree/abc?recursive=true&expand=false"
        );
        assert_eq!(
            d.resolve_url(&repo("org/app", RepoType::Space), "c", "app.py"),
            "https://huggingface.co/spaces/org/app/resolve/c/app.py"
        );
        let local = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(local.as_str(), "http://127.0.0.1:8080");
    }

    #[test]
    fn hub_api_paths_outside_the_prefix_are_put_back_under_it() {
        let e = Endpoint::parse("http://127.0.0.1:8080/hf/").unwrap();
        let keep = |u: &str| e.keep_prefix(Url::parse(u).unwrap()).to_string();
        assert_eq!(
            keep("http://127.0.0.1:8080/api/resolve-cache/models/o/m/c/a.txt?etag=%22x%22"),
            "http://127.0.0.1:8080/hf/api/resolve-cache/models/o/m/c/a.txt?etag=%22x%22"
        );
        // Already inside, another origin, not a Hub API path: unchanged.
        for same in [
            "http://127.0.0.1:8080/hf/api/models/o/m/tree/c?cursor=x",
            "http://127.0.0.1:8081/api/resolve-cache/x",
            "https://huggingface.co/api/models/o/m",
            "http://127.0.0.1:8080/cdn/x",
            "http://127.0.0.1:8080/hfx/api/y",
        ] {
            assert_eq!(keep(same), same);
        }
        let root = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        let url = "http://127.0.0.1:8080/api/resolve-cache/x";
        assert_eq!(root.keep_prefix(Url::parse(url).unwrap()).as_str(), url);
    }

    #[test]
    fn endpoint_rejects_bad_urls() {
        for bad in [
            "huggingface.co",
            "ftp://host",
            "https://user:pw@host",
            "https://host/?a=1",
            "https://host/#x",
            "",
        ] {
            let err = Endpoint::parse(bad).unwrap_err();
            assert!(!err.to_string().contains("pw"), "{err}");
        }
    }

    #[test]
    fn hub_hosts_compare_scheme_host_and_port() {
        let e = Endpoint::parse("https://hf-mirror.com").unwrap();
        let hub = |u: &str| e.is_hub_url(&Url::parse(u).unwrap());
        assert!(hub("https://hf-mirror.com/x"));
        assert!(hub("https://HF-MIRROR.com:443/x"));
        assert!(!hub("https://hf-mirror.com:8443/x"));
        assert!(!hub("http://hf-mirror.com/x"));
        assert!(hub("https://huggingface.co/x"));
        assert!(hub("https://hf.co/x"));
        assert!(!hub("http://huggingface.co/x"));
        assert!(!hub("https://huggingface.co:444/x"));
        assert!(!hub("https://cdn-lfs.hf.co/x"));
        assert!(!hub("https://cas-bridge.xethub.hf.co/x"));
        assert!(!hub("https://evilhuggingface.co/x"));
    }
}
