//! The testkit's error type.

use std::path::PathBuf;

/// Errors from building or starting a [`crate::FakeHub`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener could not be bound.
    #[error("failed to bind the {listener} listener")]
    Bind {
        /// `"hub"` or `"cdn"`.
        listener: &'static str,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// A fixture file could not be read or hashed.
    #[error("failed to read fixture content at {path}")]
    Fixture {
        /// The file or folder on disk.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A fixture is malformed (duplicate repo id, bad path, ...).
    #[error("invalid fixture: {reason}")]
    InvalidFixture {
        /// What is wrong.
        reason: String,
    },
    /// The TLS certificate or server configuration could not be built.
    #[error("TLS setup failed")]
    Tls {
        /// The rcgen, rustls or I/O error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The named repo does not exist in this hub.
    #[error("unknown repo {repo}")]
    UnknownRepo {
        /// The repo id asked for.
        repo: String,
    },
}

impl Error {
    /// Whether the error comes from the fixture rather than the environment.
    pub fn is_fixture_error(&self) -> bool {
        matches!(
            self,
            Self::Fixture { .. } | Self::InvalidFixture { .. } | Self::UnknownRepo { .. }
        )
    }
}
