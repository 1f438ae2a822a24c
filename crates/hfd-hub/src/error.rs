//! This crate's error type (Hub error answers are mapped onto it in
//! `client/error_answer.rs`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;

use crate::repo_path::PathProblem;
use hfd_types::RedactedUrl;

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The server's request id, shown as ` (request id …)` when known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestId(pub Option<String>);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(id) => write!(f, " (request id {id})"),
            None => Ok(()),
        }
    }
}

/// A server-supplied message, shown as `: …` when present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerMessage(pub Option<String>);

impl fmt::Display for ServerMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(m) => write!(f, " (server says: {m})"),
            None => Ok(()),
        }
    }
}

/// Everything that can go wrong talking to the Hub. Each `Display` is one
/// sentence meant for the user; [`Error::kind`] is what the CLI maps to an
/// exit code. No variant ever holds a token or a signed URL query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The repository id is not valid.
    #[error("invalid repository id {id:?}: {reason}")]
    InvalidRepoId {
        /// The id as given (truncated).
        id: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// The repository type is not model, dataset or space.
    #[error("invalid repository type {value:?}: expected model, dataset or space")]
    InvalidRepoType {
        /// The value as given.
        value: String,
    },
    /// The revision is not usable.
    #[error("invalid revision {revision:?}: {reason}")]
    InvalidRevision {
        /// The revision as given (truncated).
        revision: String,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// The endpoint URL is not usable.
    #[error("invalid endpoint {endpoint}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given (credentials and query redacted).
        endpoint: RedactedUrl,
        /// Why it was rejected.
        reason: String,
    },
    /// The token value cannot be used.
    #[error("the token is unusable: {reason}")]
    InvalidTokenValue {
        /// Why (never the value).
        reason: &'static str,
    },
    /// The token file exists but could not be read.
    #[error("cannot read the token file {}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A listing named a file with a path that is unsafe to write.
    #[error("refusing the file path {path:?} listed by {url}: {problem}")]
    UnsafePath {
        /// The path as listed.
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
        /// The listing page.
        url: RedactedUrl,
    },
    /// The repository does not exist, or is private/gated and the request
    /// was not authorized.
    #[error(
        "repository {repo} was not found on {endpoint}: check the id and the repo type \
         (model, dataset or space){}{request_id}",
        if *authenticated { "; if it is private, your token may lack access to it" }
        else { "; a private or gated repository needs a token (--token or HF_TOKEN)" }
    )]
    RepoNotFound {
        /// `org/name`, `datasets/org/name` or `spaces/org/name`.
        repo: String,
        /// The endpoint asked.
        endpoint: String,
        /// Whether a token was sent.
        authenticated: bool,
        /// Server request id.
        request_id: RequestId,
    },
    /// The repository is gated and the caller has no granted access.
    #[error(
        "{repo} is a gated repository{}: visit {access_page} while logged in to request access{}{request_id}",
        if *authenticated { " and your token's account has not been granted access" } else { "" },
        if *authenticated { ", then try again with that token" }
        else { ", then pass a token of that account with --token or HF_TOKEN" }
    )]
    Gated {
        /// The repository.
        repo: String,
        /// Where to request access.
        access_page: String,
        /// Whether a token was sent.
        authenticated: bool,
        /// Server message, kept for logs.
        server_message: Option<String>,
        /// Server request id.
        request_id: RequestId,
    },
    /// The token was rejected as invalid or expired.
    #[error(
        "{endpoint} rejected the token as invalid or expired: check --token, HF_TOKEN or the \
         saved login{request_id}"
    )]
    InvalidToken {
        /// The endpoint.
        endpoint: String,
        /// Server request id.
        request_id: RequestId,
    },
    /// Access was refused for another reason (repo disabled, token without
    /// the right permission).
    #[error(
        "access to {url} was refused (403){message}; make sure your token has the right permissions{request_id}"
    )]
    Forbidden {
        /// The refused URL.
        url: RedactedUrl,
        /// Server message.
        message: ServerMessage,
        /// Server request id.
        request_id: RequestId,
    },
    /// The revision does not exist in the repository.
    #[error("revision {revision:?} does not exist in {repo}{request_id}")]
    RevisionNotFound {
        /// The repository.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// Server request id.
        request_id: RequestId,
    },
    /// The file does not exist at the pinned commit.
    #[error("file {path:?} does not exist in {repo} at revision {revision}{request_id}")]
    EntryNotFound {
        /// The repository.
        repo: String,
        /// The file path.
        path: String,
        /// The revision or commit.
        revision: String,
        /// Server request id.
        request_id: RequestId,
    },
    /// An explicit path given by the user names no file of the listing.
    #[error("no file or folder {path:?} in the repository listing")]
    PathNotInListing {
        /// The path as given.
        path: String,
    },
    /// The server is rate limiting us.
    #[error(
        "{url} is rate limiting requests{}{}{request_id}",
        bucket.as_deref().map(|b| format!(" (bucket {b:?})")).unwrap_or_default(),
        wait.map_or_else(|| "; retry later".to_owned(), |w| format!("; retry in {} s", w.as_secs()))
    )]
    RateLimited {
        /// The rate-limited URL.
        url: RedactedUrl,
        /// How long to wait, when the server said.
        wait: Option<Duration>,
        /// The rate-limit bucket (`api`, `resolvers`, …).
        bucket: Option<String>,
        /// Server request id.
        request_id: RequestId,
    },
    /// The server answered with a 5xx status.
    #[error("{url} answered {status}{message}{request_id}")]
    Server {
        /// The URL.
        url: RedactedUrl,
        /// The status.
        status: StatusCode,
        /// `X-Error-Code`, if any.
        code: Option<String>,
        /// Server message.
        message: ServerMessage,
        /// Server request id.
        request_id: RequestId,
    },
    /// Any other unexpected status.
    #[error("{url} answered {status}{message}{request_id}")]
    UnexpectedStatus {
        /// The URL.
        url: RedactedUrl,
        /// The status.
        status: StatusCode,
        /// `X-Error-Code`, if any.
        code: Option<String>,
        /// Server message.
        message: ServerMessage,
        /// Server request id.
        request_id: RequestId,
    },
    /// No answer: connection refused, DNS, TLS, timeout, reset.
    #[error("cannot reach {url}; check the endpoint, your network and proxy settings")]
    Unreachable {
        /// The URL.
        url: RedactedUrl,
        /// The transport error.
        #[source]
        source: hfd_http::Error,
    },
    /// The answer could not be understood.
    #[error("malformed answer from {url}: {reason}")]
    Malformed {
        /// The URL.
        url: RedactedUrl,
        /// What was wrong.
        reason: String,
    },
    /// The endpoint answered without Hub headers (`X-Repo-Commit`): a
    /// firewall, captive portal, proxy or a misconfigured `HF_ENDPOINT`.
    #[error(
        "{url} does not look like a Hugging Face Hub (no X-Repo-Commit header); check the \
         endpoint {endpoint} (--endpoint / HF_ENDPOINT), proxies and captive portals"
    )]
    NotAHub {
        /// The URL that answered.
        url: RedactedUrl,
        /// The configured endpoint.
        endpoint: String,
    },
    /// The tree listing could not be read completely.
    #[error("incomplete file listing from {url}: {reason}")]
    IncompleteListing {
        /// The page URL.
        url: RedactedUrl,
        /// What went wrong.
        reason: String,
    },
    /// More redirects than allowed.
    #[error("too many redirects ({hops}) starting at {url}")]
    TooManyRedirects {
        /// Where the chain started.
        url: RedactedUrl,
        /// Hops followed.
        hops: u32,
    },
    /// An API request was redirected to a host that is not a Hub host.
    #[error("{from} redirected to {to}, which is not a Hub host; refusing to follow")]
    OffHubRedirect {
        /// The redirecting URL.
        from: RedactedUrl,
        /// The target.
        to: RedactedUrl,
    },
    /// The file was served from a different commit than the pinned one.
    #[error(
        "{path:?} was served from commit {got}, not the pinned commit {expected}; the repository changed or the mirror is inconsistent"
    )]
    CommitMismatch {
        /// The file.
        path: String,
        /// The pinned commit.
        expected: String,
        /// The commit in `X-Repo-Commit`.
        got: String,
    },
    /// The resolve answer disagrees with the listing (etag or size).
    #[error("{path:?}: the listing says {what} {listed}, the server now says {served}")]
    Changed {
        /// The file.
        path: String,
        /// `"etag"` or `"size"`.
        what: &'static str,
        /// Value from the listing.
        listed: String,
        /// Value from the resolve answer.
        served: String,
    },
    /// A redirect from `https://` to plain `http://` (a downgrade): refused,
    /// whether it leads to a Hub host or a CDN.
    #[error("{from} redirected to the insecure {to} (https to http); refusing to follow")]
    InsecureRedirect {
        /// The redirecting URL.
        from: RedactedUrl,
        /// The target.
        to: RedactedUrl,
    },
    /// Two selected files would land on the same local file on a
    /// case-insensitive or Unicode-normalising file system (macOS, Windows,
    /// many network shares): the second would overwrite the first after it
    /// was verified.
    #[error(
        "the listing has both {first:?} and {second:?}, which differ only in letter case or \
         Unicode normalisation and would overwrite each other on many file systems; select \
         one of them with --include/--exclude"
    )]
    PathCollision {
        /// The path listed first.
        first: String,
        /// The path listed later.
        second: String,
    },
    /// The listing has more files than allowed by `HubConfig::max_files`.
    #[error("the repository lists more than {limit} files")]
    TooManyFiles {
        /// The configured limit.
        limit: usize,
    },
}

/// What kind of failure an [`Error`] is; the CLI maps these to exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubErrorKind {
    /// Bad input from the user: repo id, type, revision, endpoint, token value.
    InvalidInput,
    /// The token file could not be read.
    TokenFile,
    /// A listed path is unsafe.
    UnsafePath,
    /// Repository not found (or private without access).
    NotFound,
    /// Gated repository without granted access.
    Gated,
    /// The token was rejected.
    InvalidToken,
    /// Access refused for another reason.
    Forbidden,
    /// Revision not found.
    RevisionNotFound,
    /// File not found.
    EntryNotFound,
    /// Rate limited; `wait` is how long the server asked us to wait.
    RateLimited {
        /// Wait before retrying, when known.
        wait: Option<Duration>,
    },
    /// Server-side failure (5xx) or another unexpected status.
    Server,
    /// The endpoint could not be reached.
    Unreachable,
    /// The answer could not be understood (includes off-hub redirects,
    /// redirect loops and incomplete listings).
    Malformed,
    /// The endpoint is not a Hub.
    NotAHub,
    /// The repository changed under a pinned commit (or the mirror is
    /// inconsistent).
    Changed,
}

impl Error {
    /// The kind of failure, for exit codes.
    pub fn kind(&self) -> HubErrorKind {
        match self {
            Self::InvalidRepoId { .. }
            | Self::InvalidRepoType { .. }
            | Self::InvalidRevision { .. }
            | Self::InvalidEndpoint { .. }
            | Self::InvalidTokenValue { .. }
            | Self::TooManyFiles { .. } => HubErrorKind::InvalidInput,
            Self::TokenFile { .. } => HubErrorKind::TokenFile,
            Self::UnsafePath { .. } | Self::PathCollision { .. } => HubErrorKind::UnsafePath,
            Self::RepoNotFound { .. } => HubErrorKind::NotFound,
            Self::Gated { .. } => HubErrorKind::Gated,
            Self::InvalidToken { .. } => HubErrorKind::InvalidToken,
            Self::Forbidden { .. } => HubErrorKind::Forbidden,
            Self::RevisionNotFound { .. } => HubErrorKind::RevisionNotFound,
            Self::EntryNotFound { .. } | Self::PathNotInListing { .. } => {
                HubErrorKind::EntryNotFound
            }
            Self::RateLimited { wait, .. } => HubErrorKind::RateLimited { wait: *wait },
            Self::Server { .. } | Self::UnexpectedStatus { .. } => HubErrorKind::Server,
            Self::Unreachable {
                source:
                    hfd_http::Error::MalformedResponse { .. }
                    | hfd_http::Error::UnexpectedEncoding { .. }
                    | hfd_http::Error::BadContentLength { .. }
                    | hfd_http::Error::BodyTooLong { .. },
                ..
            }
            | Self::Malformed { .. }
            | Self::IncompleteListing { .. }
            | Self::TooManyRedirects { .. }
            | Self::OffHubRedirect { .. }
            | Self::InsecureRedirect { .. } => HubErrorKind::Malformed,
            Self::Unreachable { .. } => HubErrorKind::Unreachable,
            Self::NotAHub { .. } => HubErrorKind::NotAHub,
            Self::CommitMismatch { .. } | Self::Changed { .. } => HubErrorKind::Changed,
        }
    }

    /// Whether the same request may succeed later: transport failures,
    /// 408/429/5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { source, .. } => source.is_retryable(),
            Self::RateLimited { .. } | Self::Server { .. } => true,
            Self::UnexpectedStatus { status, .. } => *status == StatusCode::REQUEST_TIMEOUT,
            _ => false,
        }
    }

    /// Whether the connection was refused or the host is unreachable (no
    /// server listens there), as opposed to a timeout or a reset.
    pub fn is_refused(&self) -> bool {
        use std::io::ErrorKind as K;
        match self {
            Self::Unreachable {
                source: hfd_http::Error::Connect { source, .. },
                ..
            } => matches!(
                source.kind(),
                K::ConnectionRefused | K::HostUnreachable | K::NetworkUnreachable
            ),
            _ => false,
        }
    }

    /// Whether the repository, revision or file does not exist (or is hidden).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.kind(),
            HubErrorKind::NotFound | HubErrorKind::RevisionNotFound | HubErrorKind::EntryNotFound
        )
    }

    /// How long the server asked us to wait, for rate limits and 503s.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { wait, .. } => *wait,
            _ => None,
        }
    }

    /// The HTTP status, for errors caused by one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Server { status, .. } | Self::UnexpectedStatus { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(StatusCode::TOO_MANY_REQUESTS),
            _ => None,
        }
    }

    /// The server's request id, when the error came from an answer.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::RepoNotFound { request_id, .. }
            | Self::Gated { request_id, .. }
            | Self::InvalidToken { request_id, .. }
            | Self::Forbidden { request_id, .. }
            | Self::RevisionNotFound { request_id, .. }
            | Self::EntryNotFound { request_id, .. }
            | Self::RateLimited { request_id, .. }
            | Self::Server { request_id, .. }
            | Self::UnexpectedStatus { request_id, .. } => request_id.0.as_deref(),
            _ => None,
        }
    }
}
