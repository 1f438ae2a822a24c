//! The user-facing error: one enum the CLI maps to exit codes.

use std::path::PathBuf;
use std::time::Duration;

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Why a download did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The hub refused or could not answer (listing, resolve, auth).
    #[error(transparent)]
    Hub(#[from] hfd_hub::Error),
    /// The transport could not be set up (TLS roots, proxy).
    #[error(transparent)]
    Http(#[from] hfd_http::Error),
    /// The engine could not start (configuration, free space).
    #[error(transparent)]
    Engine(#[from] hfd_engine::Error),
    /// A local path would leave the target folder (through `..` or an
    /// existing symlink).
    #[error("refusing to write {path:?}: it would resolve outside {}", root.display())]
    UnsafeTarget {
        /// The repo path.
        path: String,
        /// The target folder.
        root: PathBuf,
    },
    /// A file or folder inside the target could not be reached safely: a
    /// symbolic link where hfd-rs expects its own folder, or an I/O failure
    /// on the way (one line, naming the path).
    #[error(transparent)]
    Target(#[from] hfd_store::Error),
    /// A repo path this filesystem cannot store (a name Windows refuses);
    /// found at planning, before any byte moves.
    #[error(transparent)]
    Unstorable(#[from] crate::names::NameProblem),
    /// Reading or writing the target folder failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`"cannot create"` …).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Some files failed; the others are complete. `first` is the first failure.
    #[error("{}{}: {reason}", if *total > 1 { format!("{failed} of {total} files failed; first: ") } else { String::new() }, hfd_types::shown_path(path))]
    Files {
        /// Files that failed.
        failed: usize,
        /// Files attempted.
        total: usize,
        /// Repo path of the first failure.
        path: String,
        /// The first failure, described without the engine's wrapper
        /// messages ("source error for file#3" and the like).
        reason: String,
        /// The first failure.
        first: Box<hfd_engine::Error>,
    },
    /// A feature that is not built yet.
    #[error("{what} is not implemented yet")]
    Unsupported {
        /// What was asked for.
        what: String,
    },
    /// A shard of a sharded sync was asked for another commit than the one
    /// the first shard pinned and recorded in the target.
    #[error("this target's sharded sync is pinned to commit {recorded} (recorded in {}), but this shard asked for {asked}; every shard must download the same commit: run it with the same --revision, or finish the sync with a plain run (without --shard) before starting one at another commit", pin.display())]
    ShardCommit {
        /// The record.
        pin: PathBuf,
        /// The recorded commit (and the revision it was pinned from).
        recorded: String,
        /// What this shard asked for.
        asked: String,
    },
    /// Interrupted (Ctrl-C); partial files are kept.
    #[error("interrupted")]
    Cancelled,
}

/// The failure classes of the documented exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input from the user (repo id, revision, endpoint, options).
    Usage,
    /// Repository, revision or file not found.
    NotFound,
    /// Missing or rejected token, gated or forbidden repository.
    Auth,
    /// The network failed (unreachable, timeouts, resets after retries).
    Network,
    /// The server kept rate limiting us.
    RateLimited {
        /// How long the server asked to wait, when it said.
        wait: Option<Duration>,
    },
    /// Bytes did not match the hub's hash or the server contradicted itself.
    Integrity,
    /// Local disk problem: full, unwritable, unsafe target.
    Disk,
    /// The server's answers could not be understood (not a hub, malformed).
    Protocol,
    /// Interrupted by the user.
    Cancelled,
}

impl Error {
    /// The failure class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Hub(e) => hub_kind(e.kind()),
            Self::Http(_) | Self::Unsupported { .. } | Self::ShardCommit { .. } => ErrorKind::Usage,
            Self::Engine(e) => engine_kind(e),
            Self::Files { first, .. } => engine_kind(first),
            Self::UnsafeTarget { .. } | Self::Unstorable(_) | Self::Io { .. } | Self::Target(_) => {
                ErrorKind::Disk
            }
            Self::Cancelled => ErrorKind::Cancelled,
        }
    }
}

/// One line for an engine error: the messages of its cause chain without
/// the engine's own wrappers ("source error for file#3", …), which name
/// internal keys rather than anything the user can act on.
pub(crate) fn describe(error: &hfd_engine::Error) -> String {
    const WRAPPERS: [&str; 6] = [
        "source error for",
        "source failed",
        "transient source failure",
        "source failure",
        "disk error for",
        "integrity check failed for",
    ];
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        // The engine's own count names an internal key (`file#3: giving up
        // after …`); the caller names the file already.
        let text = match e.downcast_ref::<hfd_engine::Error>() {
            Some(hfd_engine::Error::RetriesExhausted { attempts, .. }) => {
                format!(
                    "gave up after {attempts} {}",
                    if *attempts == 1 { "retry" } else { "retries" }
                )
            }
            _ => e.to_string(),
        };
        let is_wrapper = WRAPPERS.iter().any(|w| text.starts_with(w));
        if !is_wrapper && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

/// [`describe`], plus for a file whose bytes failed their check the word
/// "integrity" and the hosts that served them (`bad_hosts`), so a user on a
/// mirror knows whom to blame.
pub(crate) fn describe_failure(error: &hfd_engine::Error, bad_hosts: &[String]) -> String {
    let text = describe(error);
    if !error.is_integrity() {
        return text;
    }
    let text = if text.contains("integrity") {
        text
    } else {
        format!("integrity check failed: {text}")
    };
    if bad_hosts.is_empty() {
        text
    } else {
        format!("{text} (bad bytes served by {})", bad_hosts.join(", "))
    }
}

impl From<hfd_hub::HubErrorKind> for ErrorKind {
    fn from(kind: hfd_hub::HubErrorKind) -> Self {
        hub_kind(kind)
    }
}

fn hub_kind(kind: hfd_hub::HubErrorKind) -> ErrorKind {
    use hfd_hub::HubErrorKind as H;
    match kind {
        H::InvalidInput | H::TokenFile => ErrorKind::Usage,
        H::NotFound | H::RevisionNotFound | H::EntryNotFound => ErrorKind::NotFound,
        H::Gated | H::InvalidToken | H::Forbidden => ErrorKind::Auth,
        H::RateLimited { wait } => ErrorKind::RateLimited { wait },
        // A server that keeps failing (5xx after retries) is, to the user, a
        // network-class problem: retry later or use another endpoint.
        H::Unreachable | H::Server => ErrorKind::Network,
        H::UnsafePath => ErrorKind::Disk,
        H::Changed => ErrorKind::Integrity,
        _ => ErrorKind::Protocol,
    }
}

fn engine_kind(e: &hfd_engine::Error) -> ErrorKind {
    use hfd_engine::Error as E;
    if e.is_cancelled() {
        return ErrorKind::Cancelled;
    }
    if e.is_integrity() {
        return ErrorKind::Integrity;
    }
    match e {
        E::Store { .. } | E::Preflight { .. } => ErrorKind::Disk,
        E::InvalidConfig { .. } => ErrorKind::Usage,
        E::Source { source, .. } => source_kind(source),
        E::RetriesExhausted { last, .. } => match last.as_ref() {
            hfd_engine::TransferError::Source(source) => source_kind(source),
            _ => ErrorKind::Network,
        },
        _ => ErrorKind::Network,
    }
}

fn source_kind(e: &hfd_engine::SourceError) -> ErrorKind {
    use hfd_engine::SourceError as S;
    // The source adapter keeps the hub error (from a resolve) as the cause.
    if let Some(hub) = std::error::Error::source(e).and_then(|c| c.downcast_ref::<hfd_hub::Error>())
    {
        return hub_kind(hub.kind());
    }
    match e {
        S::Retryable {
            slow_pool: true,
            retry_after,
            ..
        } => ErrorKind::RateLimited { wait: *retry_after },
        S::Integrity { .. } => ErrorKind::Integrity,
        S::Fatal { .. } => ErrorKind::Protocol,
        _ => ErrorKind::Network,
    }
}
