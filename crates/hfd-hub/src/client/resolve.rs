//! Resolving a file (one `HEAD` or `GET` on `/resolve/{commit}/{path}`):
//! where its bytes live, checked against the listing and the pinned commit.

use http::{HeaderMap, Method, StatusCode, header};
use tracing::debug;
use url::Url;

use super::error_answer::Purpose;
use super::hub_client::HubClient;
use super::redirect::ForeignRedirect;
use super::retry::retrying;
use crate::error::{Error, Result};
use crate::file::RemoteFile;
use crate::headers;
use crate::repo::{Commit, RepoRef};
use hfd_http::Body;
use hfd_types::RedactedUrl;

/// Where and how to fetch one file, from a single resolve request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedFile {
    /// Path in the repo.
    pub path: String,
    /// The URL to GET the bytes from: the CDN `Location` of a cross-host
    /// redirect, or the Hub URL that answered 200. Its query may be a
    /// credential; it is redacted in `Display`/`Debug`.
    pub url: RedactedUrl,
    /// Size in bytes (`X-Linked-Size` or a 200's `Content-Length`, checked
    /// against the listing; the listing's when the server gave none).
    pub size: u64,
    /// The server's normalised ETag (resume identity). A mirror may invent
    /// one that is no hash; verify content with
    /// [`RemoteFile::expected_digest`].
    pub etag: String,
    /// The commit that served it (`X-Repo-Commit`), equal to the pinned one.
    pub commit: Commit,
    /// Whether requests to `url` may carry the token (a Hub host).
    pub send_token: bool,
    /// Whether `url` is on another origin than the endpoint and not a Hub
    /// host (a CDN or storage host).
    pub is_cdn: bool,
    /// `X-Xet-Hash` when the file is Xet-backed (64 hex).
    pub xet_hash: Option<String>,
}

/// A resolved file plus, when the Hub served the content directly (200 to
/// the GET), its body.
#[derive(Debug)]
pub struct OpenedFile {
    /// Where the file lives.
    pub resolved: ResolvedFile,
    /// The whole content, when the final answer was a 200; `None` when the
    /// answer was a redirect to a CDN (GET `resolved.url` then).
    pub body: Option<Body>,
}

impl HubClient {
    /// Headers to send with GETs of `file.url`: `Authorization` only when
    /// [`ResolvedFile::send_token`] is set (marked sensitive).
    pub fn download_headers(&self, file: &ResolvedFile) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(token) = &self.config().token
            && file.send_token
            && self.sends_token_to(file.url.expose())
        {
            headers.insert(header::AUTHORIZATION, token.header_value());
        }
        headers
    }

    /// Resolves `file` with one `HEAD` on `/resolve/{commit}/{path}`,
    /// following same-origin and Hub-host redirects and stopping at a
    /// cross-host one (docs/hub-protocol.md §4.3–4.4). Checks `X-Repo-Commit` against
    /// `commit`, and ETag and size against the listing.
    pub async fn resolve(
        &self,
        repo: &RepoRef,
        commit: &Commit,
        file: &RemoteFile,
    ) -> Result<ResolvedFile> {
        let opened = self.resolve_with(Method::HEAD, repo, commit, file).await?;
        Ok(opened.resolved)
    }

    /// Like [`Self::resolve`] but with a `GET`, so a file the Hub serves
    /// directly (regular files, mirrors answering 200) comes with its body
    /// in the same request: no separate metadata request for it.
    pub async fn open(
        &self,
        repo: &RepoRef,
        commit: &Commit,
        file: &RemoteFile,
    ) -> Result<OpenedFile> {
        self.resolve_with(Method::GET, repo, commit, file).await
    }

    async fn resolve_with(
        &self,
        method: Method,
        repo: &RepoRef,
        commit: &Commit,
        file: &RemoteFile,
    ) -> Result<OpenedFile> {
        let start = Self::parse_url(&self.endpoint().resolve_url(
            repo,
            commit.as_str(),
            &file.path,
        ))?;
        let purpose = Purpose::Resolve(&file.path);
        let answer = retrying(
            &self.config().retry,
            || self.has_answered(),
            || async {
                let answer = self
                    .follow(&method, start.clone(), ForeignRedirect::Return)
                    .await?;
                let status = answer.response.status();
                if answer.location.is_none() && !status.is_success() {
                    return Err(self
                        .error_answer(answer, repo, commit.as_str(), purpose)
                        .await);
                }
                Ok(answer)
            },
        )
        .await?;
        let status = answer.response.status();
        let final_url = answer
            .location
            .clone()
            .unwrap_or_else(|| answer.url.clone());
        let meta = extract_metadata(status, answer.response.headers(), file, commit, &answer.url)?;
        let resolved = ResolvedFile {
            path: file.path.clone(),
            url: RedactedUrl::new(final_url.as_str()),
            size: meta.size,
            etag: meta.etag,
            commit: commit.clone(),
            send_token: self.token_allowed(&final_url),
            is_cdn: !self.endpoint().is_hub_url(&final_url),
            xet_hash: meta.xet_hash,
        };
        debug!(
            file = %file.path,
            url = %resolved.url,
            size = resolved.size,
            cdn = resolved.is_cdn,
            "resolved"
        );
        let body = (method == Method::GET && answer.location.is_none())
            .then(|| answer.response.into_body().expect_len(resolved.size));
        Ok(OpenedFile { resolved, body })
    }
}

/// What a resolve answer says about the file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Metadata {
    pub(crate) etag: String,
    pub(crate) size: u64,
    pub(crate) xet_hash: Option<String>,
}

/// Reads commit, ETag, size and Xet hash from the final resolve answer
/// (docs/hub-protocol.md §4.4) and checks them against the pinned commit and the
/// listing. `url` is the URL that gave the answer.
///
/// Trust hashes, not headers: the URL names the pinned commit and the
/// listing gives the file's hash, which checks the bytes. So a missing
/// `X-Repo-Commit` or `ETag` (Olah answers a GET without both) is a quirk,
/// not an error; only a header that contradicts the pin or the listing is.
pub(crate) fn extract_metadata(
    status: StatusCode,
    response_headers: &HeaderMap,
    file: &RemoteFile,
    commit: &Commit,
    url: &Url,
) -> Result<Metadata> {
    let shown = RedactedUrl::new(url.as_str());
    if let Some(served_commit) = headers::text(response_headers, "x-repo-commit")
        && !served_commit.eq_ignore_ascii_case(commit.as_str())
    {
        return Err(Error::CommitMismatch {
            path: file.path.clone(),
            expected: commit.to_string(),
            got: served_commit,
        });
    }
    let etag = headers::text(response_headers, "x-linked-etag")
        .or_else(|| headers::text(response_headers, "etag"))
        .map(|raw| headers::normalize_etag(&raw))
        .filter(|e| !e.is_empty())
        // The listing's hash is the identity the Hub would have sent.
        .unwrap_or_else(|| file.etag());
    let is_hash =
        (etag.len() == 40 || etag.len() == 64) && etag.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hash && !etag.eq_ignore_ascii_case(&file.etag()) {
        return Err(Error::Changed {
            path: file.path.clone(),
            what: "etag",
            listed: file.etag(),
            served: etag,
        });
    }
    // A redirect's Content-Length is the size of its own body: never the file's.
    let identity = response_headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim().eq_ignore_ascii_case("identity"));
    if !status.is_redirection() && !identity {
        return Err(Error::Malformed {
            url: shown,
            reason: format!(
                "{:?} came with Content-Encoding {:?} although identity was asked; the bytes \
                 would not be the file's",
                file.path,
                headers::text(response_headers, "content-encoding").unwrap_or_default()
            ),
        });
    }
    let served_size = headers::number(response_headers, "x-linked-size").or_else(|| {
        (!status.is_redirection() && identity)
            .then(|| headers::number(response_headers, "content-length"))
            .flatten()
    });
    if let Some(served) = served_size
        && served != file.size
    {
        return Err(Error::Changed {
            path: file.path.clone(),
            what: "size",
            listed: file.size.to_string(),
            served: served.to_string(),
        });
    }
    let xet_hash = headers::text(response_headers, "x-xet-hash")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|h| h.to_ascii_lowercase());
    Ok(Metadata {
        etag,
        size: file.size,
        xet_hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::hub_client::tests::client;
    use hfd_types::ContentDigest;
    use http::HeaderValue;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const SHA256: &str = "dffd6021bb2bd5b0af676290809ec3a53191dd81c7f70a4b28688a362182986f";
    const SHA1: &str = "b45ef6fec89518d314f546fd6c3025367b721684";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn lfs_file(size: u64) -> RemoteFile {
        RemoteFile {
            path: "model.safetensors".into(),
            size,
            oid: ContentDigest::from_hex(SHA1).unwrap(),
            lfs_sha256: Some(ContentDigest::from_hex(SHA256).unwrap()),
            xet_hash: None,
        }
    }

    fn meta(status: u16, pairs: &[(&'static str, &str)], file: &RemoteFile) -> Result<Metadata> {
        extract_metadata(
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            file,
            &Commit::parse(COMMIT).unwrap(),
            &Url::parse("https://huggingface.co/o/m/resolve/c/model.safetensors").unwrap(),
        )
    }

    #[test]
    fn size_comes_from_x_linked_size_never_a_redirect_body() {
        // Appendix B 2: Content-Length 341 on a 302 is the redirect body's.
        let m = meta(
            302,
            &[
                ("x-repo-commit", COMMIT),
                ("x-linked-etag", &format!("\"{SHA256}\"")),
                ("x-linked-size", "818"),
                ("content-length", "341"),
            ],
            &lfs_file(818),
        )
        .unwrap();
        assert_eq!(m.size, 818);
        let m = meta(
            307,
            &[
                ("x-repo-commit", COMMIT),
                ("etag", &format!("\"{SHA256}\"")),
                ("content-length", "341"),
            ],
            &lfs_file(818),
        )
        .unwrap();
        assert_eq!(m.size, 818);
        let err = meta(
            200,
            &[
                ("x-repo-commit", COMMIT),
                ("etag", &format!("\"{SHA256}\"")),
                ("content-length", "341"),
            ],
            &lfs_file(818),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Changed { what: "size", .. }), "{err}");
    }

    #[test]
    fn linked_etag_wins_and_is_normalized() {
        // Appendix B 5.
        let m = meta(
            302,
            &[
                ("x-repo-commit", COMMIT),
                ("x-linked-etag", &format!("W/\"{SHA256}\"")),
                ("etag", "\"something-else\""),
                ("x-xet-hash", &"AB".repeat(32)),
            ],
            &lfs_file(1),
        )
        .unwrap();
        assert_eq!(m.etag, SHA256);
        assert_eq!(m.xet_hash.unwrap(), "ab".repeat(32));
        // A mirror's invented etag is kept but not compared.
        let m = meta(
            200,
            &[("x-repo-commit", COMMIT), ("etag", "\"0123abcd-10\"")],
            &lfs_file(1),
        )
        .unwrap();
        assert_eq!(m.etag, "0123abcd-10");
        let err = meta(
            302,
            &[("x-repo-commit", COMMIT), ("x-linked-etag", SHA1)],
            &lfs_file(1),
        )
        .unwrap_err();
        assert!(matches!(err, Error::Changed { what: "etag", .. }), "{err}");
        // No ETag at all: the listing's hash stands in (the bytes are
        // checked against it anyway).
        let m = meta(302, &[("x-repo-commit", COMMIT)], &lfs_file(1)).unwrap();
        assert_eq!(m.etag, SHA256);
    }

    #[test]
    fn missing_commit_is_a_quirk_and_other_commit_is_a_mismatch() {
        // Olah answers a resolve GET with neither X-Repo-Commit nor ETag:
        // the URL names the pinned commit, the listing gives the hash.
        let m = meta(200, &[], &lfs_file(1)).unwrap();
        assert_eq!((m.etag.as_str(), m.size), (SHA256, 1));
        let m = meta(200, &[("etag", SHA256)], &lfs_file(1)).unwrap();
        assert_eq!(m.etag, SHA256);
        let err = meta(
            200,
            &[("x-repo-commit", &"f".repeat(40)), ("etag", SHA256)],
            &lfs_file(1),
        )
        .unwrap_err();
        assert!(matches!(err, Error::CommitMismatch { .. }));
    }

    #[test]
    fn download_headers_follow_send_token() {
        let c = client("http://127.0.0.1:9000", Some("hf_x"), true);
        let mut f = ResolvedFile {
            path: "a".into(),
            url: RedactedUrl::new("http://127.0.0.1:9001/cdn/a?sig=1"),
            size: 1,
            etag: SHA1.into(),
            commit: Commit::parse(COMMIT).unwrap(),
            send_token: false,
            is_cdn: true,
            xet_hash: None,
        };
        assert!(c.download_headers(&f).is_empty());
        // Even a wrongly set flag cannot send the token to a CDN host.
        f.send_token = true;
        assert!(c.download_headers(&f).is_empty());
        f.url = RedactedUrl::new("http://127.0.0.1:9000/api/resolve-cache/a");
        let h = c.download_headers(&f);
        assert!(h[header::AUTHORIZATION].is_sensitive());
    }
}
