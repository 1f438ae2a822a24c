//! Exit codes, one per failure class (documented in the README and
//! `--help`).

use hfd::ErrorKind;

/// Unexpected internal failure.
pub(crate) const INTERNAL: u8 = 1;
/// Bad command line or input (clap also exits 2).
pub(crate) const USAGE: u8 = 2;
/// Repository, revision or file not found.
pub(crate) const NOT_FOUND: u8 = 3;
/// Missing or rejected token, gated or forbidden repository.
pub(crate) const AUTH: u8 = 4;
/// Network failure after retries.
pub(crate) const NETWORK: u8 = 5;
/// Rate limited by the server.
pub(crate) const RATE_LIMITED: u8 = 6;
/// Content did not match the hub's hash, or the server contradicted itself.
pub(crate) const INTEGRITY: u8 = 7;
/// Disk full, unwritable or unsafe target.
pub(crate) const DISK: u8 = 8;
/// The server's answers could not be understood (not a hub, malformed).
pub(crate) const PROTOCOL: u8 = 9;
/// Interrupted (Ctrl-C).
pub(crate) const INTERRUPTED: u8 = 130;

/// A failure ready to show: one line, an optional hint, an exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
    pub(crate) code: u8,
}

impl Failure {
    /// Settings errors: bad input, unless the cause is a typed hub error.
    #[expect(clippy::needless_pass_by_value, reason = "used as a map_err function")]
    pub(crate) fn from_anyhow(e: anyhow::Error) -> Self {
        if let Some(hub) = e.downcast_ref::<hfd::hfd_hub::Error>() {
            let kind = ErrorKind::from(hub.kind());
            return Self {
                message: chain(&*e),
                hint: None,
                code: code(kind),
            };
        }
        Self {
            message: chain(&*e),
            hint: None,
            code: USAGE,
        }
    }

    #[expect(clippy::needless_pass_by_value, reason = "used as a map_err function")]
    pub(crate) fn from_hfd(e: hfd::Error) -> Self {
        let kind = e.kind();
        let hint = match kind {
            ErrorKind::Auth => Some(
                "pass a token with --token (or set HF_TOKEN); for a gated repo, request access on its page first"
                    .to_owned(),
            ),
            ErrorKind::Cancelled => Some(
                "partial downloads are kept; run the same command again to resume"
                    .to_owned(),
            ),
            ErrorKind::RateLimited { wait: Some(wait) } => {
                Some(format!("the server asks to wait {} s before retrying", wait.as_secs()))
            }
            _ => None,
        };
        Self {
            message: chain(&e),
            hint,
            code: code(kind),
        }
    }
}

fn code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Usage => USAGE,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Auth => AUTH,
        ErrorKind::Network => NETWORK,
        ErrorKind::RateLimited { .. } => RATE_LIMITED,
        ErrorKind::Integrity => INTEGRITY,
        ErrorKind::Disk => DISK,
        ErrorKind::Protocol => PROTOCOL,
        ErrorKind::Cancelled => INTERRUPTED,
        _ => INTERNAL,
    }
}

/// The error and its causes on one line, each cause once.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    // One line, and no server-chosen bidi override or control character
    // can disguise a path in it (shown as `\u{…}`).
    hfd_types::shown_path(&out.replace('\n', " ")).into_owned()
}
