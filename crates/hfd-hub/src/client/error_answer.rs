//! A non-success Hub answer turned into an [`Error`]: the error body read
//! (bounded) and scrubbed of the token, then `X-Error-Code` and the status
//! mapped onto the error (docs/hub-protocol.md §7).

use http::{HeaderMap, StatusCode};

use super::hub_client::HubClient;
use super::redirect::Answer;
use super::scrub::scrub_signed;
use crate::endpoint::Endpoint;
use crate::error::{Error, RequestId, ServerMessage};
use crate::headers;
use crate::repo::RepoRef;
use hfd_types::RedactedUrl;

/// How much of an error body is read for its message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

impl HubClient {
    /// Turns a non-success answer into an [`Error`].
    pub(super) async fn error_answer(
        &self,
        answer: Answer,
        repo: &RepoRef,
        revision: &str,
        purpose: Purpose<'_>,
    ) -> Error {
        let (mut parts, body) = answer.response.into_parts();
        let mut body = body
            .collect_limited(ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default();
        // A hostile server may echo the token (scrubbed from the headers
        // as the answer arrived) or a presigned URL back in its error text,
        // which ends up in our error message: scrub both first.
        body = self.scrub_body(body);
        body = scrub_signed(&body).into();
        for value in parts.headers.values_mut() {
            let scrubbed = scrub_signed(value.as_bytes());
            if scrubbed != value.as_bytes()
                && let Ok(clean) = http::HeaderValue::from_bytes(&scrubbed)
            {
                *value = clean;
            }
        }
        let url = RedactedUrl::new(answer.url.as_str());
        let ctx = Context {
            repo,
            revision,
            endpoint: self.endpoint(),
            purpose,
            url: &url,
            authenticated: answer.authenticated,
        };
        from_response(parts.status, &parts.headers, &body, &ctx)
    }
}

/// What a failed request was for; decides how statuses without an
/// `X-Error-Code` read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose<'a> {
    /// Revision info (pinning).
    Revision,
    /// A tree listing page.
    Tree,
    /// Resolving the named file.
    Resolve(&'a str),
}

/// Everything an error message needs besides the answer itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Context<'a> {
    pub(crate) repo: &'a RepoRef,
    pub(crate) revision: &'a str,
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) purpose: Purpose<'a>,
    pub(crate) url: &'a RedactedUrl,
    /// Whether the failed request carried a token.
    pub(crate) authenticated: bool,
}

/// Maps a non-success answer to an [`Error`]: `X-Error-Code` first, then the
/// status (docs/hub-protocol.md §7). `body` is at most a few KiB of the error body.
pub(crate) fn from_response(
    status: StatusCode,
    response_headers: &HeaderMap,
    body: &[u8],
    ctx: &Context<'_>,
) -> Error {
    let code = headers::text(response_headers, "x-error-code");
    let message = headers::text(response_headers, "x-error-message")
        .or_else(|| headers::body_error_message(body));
    let request_id = RequestId(headers::request_id(response_headers));
    let repo = ctx.repo.to_string();
    let endpoint = ctx.endpoint.to_string();
    let url = ctx.url.clone();
    let repo_not_found = |request_id| Error::RepoNotFound {
        repo: repo.clone(),
        endpoint: endpoint.clone(),
        authenticated: ctx.authenticated,
        request_id,
    };
    let entry_not_found = |path: &str, request_id| Error::EntryNotFound {
        repo: repo.clone(),
        path: path.to_owned(),
        revision: ctx.revision.to_owned(),
        request_id,
    };
    match code.as_deref() {
        Some("GatedRepo") => {
            return Error::Gated {
                repo: repo.clone(),
                access_page: ctx.endpoint.access_page(ctx.repo),
                authenticated: ctx.authenticated,
                server_message: message,
                request_id,
            };
        }
        Some("RepoNotFound") => return repo_not_found(request_id),
        Some("RevisionNotFound") => {
            return Error::RevisionNotFound {
                repo,
                revision: ctx.revision.to_owned(),
                request_id,
            };
        }
        Some("EntryNotFound") => {
            return match ctx.purpose {
                Purpose::Resolve(path) => entry_not_found(path, request_id),
                // The root of the tree is missing only when the revision is
                // (Olah's answer for an unknown commit).
                Purpose::Revision | Purpose::Tree => Error::RevisionNotFound {
                    repo,
                    revision: ctx.revision.to_owned(),
                    request_id,
                },
            };
        }
        _ => {}
    }
    let invalid_credentials = message.as_deref().is_some_and(|m| {
        let m = m.to_ascii_lowercase();
        m.contains("invalid credentials")
            || m.contains("invalid token")
            || m.contains("expired token")
    });
    match status.as_u16() {
        401 if invalid_credentials
            || (ctx.authenticated && code.is_none() && message.is_none()) =>
        {
            // A token was sent and refused without any other explanation.
            Error::InvalidToken {
                endpoint,
                request_id,
            }
        }
        401 => repo_not_found(request_id),
        404 => match ctx.purpose {
            Purpose::Resolve(path) => entry_not_found(path, request_id),
            Purpose::Revision | Purpose::Tree => repo_not_found(request_id),
        },
        403 => Error::Forbidden {
            url,
            message: ServerMessage(message),
            request_id,
        },
        429 => Error::RateLimited {
            url,
            wait: headers::rate_limit_wait(response_headers),
            bucket: headers::rate_limit(response_headers).and_then(|r| r.bucket),
            request_id,
        },
        500..=599 => Error::Server {
            url,
            status,
            code,
            message: ServerMessage(message),
            request_id,
        },
        _ => Error::UnexpectedStatus {
            url,
            status,
            code,
            message: ServerMessage(message),
            request_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HubErrorKind;
    use crate::repo::{RepoId, RepoType};
    use http::HeaderValue;
    use std::time::Duration;

    struct Case {
        repo: RepoRef,
        endpoint: Endpoint,
        url: RedactedUrl,
    }

    impl Case {
        fn new(t: RepoType, endpoint: &str) -> Self {
            Self {
                repo: RepoRef::new(RepoId::new("org/model").unwrap(), t),
                endpoint: Endpoint::parse(endpoint).unwrap(),
                url: RedactedUrl::new(format!("{endpoint}/x?X-Amz-Signature=sig")),
            }
        }

        fn map(
            &self,
            status: u16,
            pairs: &[(&'static str, &str)],
            purpose: Purpose<'_>,
            authenticated: bool,
        ) -> Error {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            let ctx = Context {
                repo: &self.repo,
                revision: "main",
                endpoint: &self.endpoint,
                purpose,
                url: &self.url,
                authenticated,
            };
            from_response(StatusCode::from_u16(status).unwrap(), &h, b"", &ctx)
        }
    }

    #[test]
    fn gated_anonymous_and_authenticated() {
        let c = Case::new(RepoType::Model, "https://hf-mirror.com");
        let e = c.map(
            401,
            &[("x-error-code", "GatedRepo"), ("x-request-id", "rid-1")],
            Purpose::Resolve("a.bin"),
            false,
        );
        assert_eq!(e.kind(), HubErrorKind::Gated);
        let s = e.to_string();
        assert!(s.contains("https://huggingface.co/org/model"), "{s}");
        assert!(s.contains("request access") && s.contains("--token"), "{s}");
        assert!(s.contains("rid-1"), "{s}");
        let e = c.map(403, &[("x-error-code", "GatedRepo")], Purpose::Tree, true);
        assert_eq!(e.kind(), HubErrorKind::Gated);
        assert!(e.to_string().contains("not been granted access"), "{e}");
        // Dataset access page keeps the prefix.
        let c = Case::new(RepoType::Dataset, "https://huggingface.co");
        let e = c.map(401, &[("x-error-code", "GatedRepo")], Purpose::Tree, false);
        assert!(
            e.to_string()
                .contains("https://huggingface.co/datasets/org/model")
        );
    }

    #[test]
    fn repo_not_found_and_invalid_token() {
        let c = Case::new(RepoType::Model, "https://huggingface.co");
        let e = c.map(
            401,
            &[("x-error-code", "RepoNotFound")],
            Purpose::Revision,
            false,
        );
        assert_eq!(e.kind(), HubErrorKind::NotFound);
        assert!(e.to_string().contains("needs a token"), "{e}");
        let e = c.map(
            404,
            &[("x-error-code", "RepoNotFound")],
            Purpose::Revision,
            true,
        );
        assert_eq!(e.kind(), HubErrorKind::NotFound);
        assert!(e.is_not_found());
        // 401 without a code on a repo URL: repo not found (private or missing).
        let e = c.map(401, &[], Purpose::Revision, false);
        assert_eq!(e.kind(), HubErrorKind::NotFound);
        let e = c.map(
            401,
            &[(
                "x-error-message",
                "Invalid credentials in Authorization header",
            )],
            Purpose::Revision,
            true,
        );
        assert_eq!(e.kind(), HubErrorKind::InvalidToken);
        assert!(e.to_string().contains("invalid or expired"), "{e}");
        let e = c.map(401, &[], Purpose::Tree, true);
        assert_eq!(e.kind(), HubErrorKind::InvalidToken);
    }

    #[test]
    fn revision_and_entry_not_found() {
        let c = Case::new(RepoType::Model, "https://huggingface.co");
        let e = c.map(
            404,
            &[
                ("x-error-code", "RevisionNotFound"),
                ("x-error-message", "Invalid rev id: nope"),
            ],
            Purpose::Revision,
            false,
        );
        assert_eq!(e.kind(), HubErrorKind::RevisionNotFound);
        assert!(e.to_string().contains("\"main\""), "{e}");
        let e = c.map(
            404,
            &[("x-error-code", "EntryNotFound")],
            Purpose::Resolve("dir/a b.bin"),
            false,
        );
        assert_eq!(e.kind(), HubErrorKind::EntryNotFound);
        assert!(e.to_string().contains("\"dir/a b.bin\""), "{e}");
        let e = c.map(404, &[], Purpose::Resolve("x"), false);
        assert_eq!(e.kind(), HubErrorKind::EntryNotFound);
        let e = c.map(404, &[], Purpose::Tree, false);
        assert_eq!(e.kind(), HubErrorKind::NotFound);
    }

    #[test]
    fn rate_limit_and_server_errors() {
        let c = Case::new(RepoType::Model, "https://huggingface.co");
        let e = c.map(
            429,
            &[("ratelimit", "\"resolvers\";r=0;t=5")],
            Purpose::Resolve("a"),
            false,
        );
        assert_eq!(
            e.kind(),
            HubErrorKind::RateLimited {
                wait: Some(Duration::from_secs(6))
            }
        );
        assert!(e.is_retryable());
        let s = e.to_string();
        assert!(s.contains("retry in 6 s") && s.contains("resolvers"), "{s}");
        assert!(!s.contains("sig"), "{s}");
        let e = c.map(429, &[("retry-after", "3")], Purpose::Tree, false);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        let e = c.map(503, &[("x-error-message", "busy")], Purpose::Tree, false);
        assert_eq!(e.kind(), HubErrorKind::Server);
        assert!(e.is_retryable());
        assert!(e.to_string().contains("busy"));
        let e = c.map(
            403,
            &[("x-error-message", "Access to this resource is disabled.")],
            Purpose::Tree,
            false,
        );
        assert_eq!(e.kind(), HubErrorKind::Forbidden);
        assert!(e.to_string().contains("disabled"));
        assert!(!e.is_retryable());
        let e = c.map(400, &[], Purpose::Tree, false);
        assert_eq!(e.kind(), HubErrorKind::Server);
        assert!(!e.is_retryable());
    }
}
