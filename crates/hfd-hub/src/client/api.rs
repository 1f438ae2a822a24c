//! GETs of the Hub's JSON API (revision info, tree pages): retried,
//! following only Hub redirects, bodies read up to `max_json_bytes`.

use bytes::Bytes;
use http::{HeaderMap, Method};
use url::Url;

use super::error_answer::Purpose;
use super::hub_client::HubClient;
use super::redirect::ForeignRedirect;
use super::retry::retrying;
use crate::error::{Error, Result};
use crate::repo::RepoRef;
use hfd_types::RedactedUrl;

impl HubClient {
    /// GETs a JSON API URL (following only Hub redirects), returning the
    /// final URL, headers and body (at most `max_json_bytes`).
    pub(super) async fn api_get(
        &self,
        url: &Url,
        repo: &RepoRef,
        revision: &str,
        purpose: Purpose<'_>,
    ) -> Result<(Url, HeaderMap, Bytes)> {
        let limit = self.config().max_json_bytes;
        retrying(
            &self.config().retry,
            || self.has_answered(),
            || async move {
                let answer = self
                    .follow(&Method::GET, url.clone(), ForeignRedirect::Refuse)
                    .await?;
                if !answer.response.status().is_success() {
                    return Err(self.error_answer(answer, repo, revision, purpose).await);
                }
                let (parts, body) = answer.response.into_parts();
                let bytes = body
                    .collect_limited(limit)
                    .await
                    .map_err(|e| body_error(&answer.url, e, limit))?;
                Ok((answer.url, parts.headers, self.scrub_body(bytes)))
            },
        )
        .await
    }
}

fn body_error(url: &Url, error: hfd_http::Error, limit: usize) -> Error {
    let shown = RedactedUrl::new(url.as_str());
    match error {
        hfd_http::Error::BodyTooLarge { .. } => Error::Malformed {
            url: shown,
            reason: format!("the answer is larger than {limit} bytes"),
        },
        source => Error::Unreachable { url: shown, source },
    }
}
