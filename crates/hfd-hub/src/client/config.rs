//! [`HubConfig`]: the settings of a [`HubClient`](super::HubClient).

use std::time::Duration;

use super::retry::MetadataRetry;
use crate::auth::Token;
use crate::endpoint::Endpoint;

/// Settings of a [`HubClient`](super::HubClient). Start from [`HubConfig::default`] and set
/// fields; the CLI fills them from flags and the environment.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HubConfig {
    /// The Hub or mirror to talk to. Default: `https://huggingface.co`.
    pub endpoint: Endpoint,
    /// Access token. Default: none.
    pub token: Option<Token>,
    /// Whether the token may go to a non-official endpoint (a mirror).
    /// Official Hub hosts always get it. Default: true (what the reference
    /// client does); the CLI may clear it for tokens not given explicitly.
    pub send_token_to_endpoint: bool,
    /// `User-Agent`; `None` keeps the HTTP client's. Default: `None`.
    pub user_agent: Option<String>,
    /// Largest JSON answer read (one tree page, revision info). Default: 64 MiB.
    pub max_json_bytes: usize,
    /// Most entries (files and folders) accepted in one listing.
    /// Default: 5,000,000.
    pub max_files: usize,
    /// Most redirects followed per request. Default: 10.
    pub max_redirects: u32,
    /// Retries of metadata requests. Default: [`MetadataRetry::default`].
    pub retry: MetadataRetry,
    /// Longest wait for the first answer (response headers) to one hub
    /// request; a request past it fails as unreachable (and is retried as
    /// such). `None` keeps the HTTP client's header timeout. Default: `None`.
    pub answer_timeout: Option<Duration>,
    /// After this long without an answer, a warning "waiting for HOST: no
    /// answer for N s" is logged once per request, so a silent endpoint is
    /// not mistaken for a hung program. `None`: no warning. Default: 5 s.
    pub waiting_note_after: Option<Duration>,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            endpoint: Endpoint::default(),
            token: None,
            send_token_to_endpoint: true,
            user_agent: None,
            max_json_bytes: 64 << 20,
            max_files: 5_000_000,
            max_redirects: 10,
            retry: MetadataRetry::default(),
            answer_timeout: None,
            waiting_note_after: Some(Duration::from_secs(5)),
        }
    }
}
