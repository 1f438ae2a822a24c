//! The per-request context every route answers through: content, JSON and hub errors.

use std::sync::Arc;

use http::{HeaderMap, Method, Response, StatusCode, header};
use serde_json::{Value, json};

use super::access::Caller;
use super::{ResBody, empty};
use crate::body::{ContentRequest, content_response, counted_full, header_value};
use crate::content::Blob;
use crate::fault::{FaultKind, RequestFacts, Stage};
use crate::hub::Shared;
use crate::log::{ConnShared, EntryCell, Route, lock};

/// Per-request context.
pub(super) struct Ctx {
    pub(super) shared: Arc<Shared>,
    pub(super) conn: Arc<ConnShared>,
    pub(super) cell: Arc<EntryCell>,
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) query: Option<String>,
    pub(super) headers: HeaderMap,
    pub(super) route: Route,
}

impl Ctx {
    pub(super) fn range(&self) -> Option<&str> {
        self.headers
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok())
    }

    pub(super) fn facts(&self, has_content: bool) -> RequestFacts<'_> {
        RequestFacts {
            origin: self.conn.origin,
            route: self.route,
            path: &self.path,
            query: self.query.as_deref().unwrap_or(""),
            has_range: self.headers.contains_key(header::RANGE),
            has_content,
        }
    }

    pub(super) fn note_fault(&self, kind: &FaultKind) {
        let mut e = lock(&self.cell.entry);
        if e.fault.is_none() {
            e.fault = Some(kind.name());
        }
    }

    pub(super) fn content(
        &self,
        blob: &Arc<Blob>,
        etag: &str,
        extra_headers: Vec<(&'static str, String)>,
    ) -> Response<ResBody> {
        let fault = self.shared.faults.take(&self.facts(true), Stage::Content);
        if let Some(f) = &fault {
            self.note_fault(f);
        }
        content_response(ContentRequest {
            method: &self.method,
            range: self.range(),
            blob,
            etag,
            extra_headers,
            fault,
            cell: self.cell.clone(),
            conn: self.conn.clone(),
        })
    }

    pub(super) fn json(&self, value: &Value) -> Response<ResBody> {
        let body = serde_json::to_vec(value).expect("JSON values serialize");
        self.json_bytes(StatusCode::OK, body)
    }

    pub(super) fn json_bytes(&self, status: StatusCode, body: Vec<u8>) -> Response<ResBody> {
        let len = body.len();
        let body = if self.method == Method::HEAD {
            empty()
        } else {
            counted_full(&self.cell, body)
        };
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
            .header(header::CONTENT_LENGTH, len)
            .body(body)
            .expect("valid response")
    }

    /// A hub error with `X-Error-Code` / `X-Error-Message` and a JSON body.
    pub(super) fn error(
        &self,
        status: StatusCode,
        code: Option<&str>,
        message: &str,
        commit: Option<&str>,
    ) -> Response<ResBody> {
        let mut resp = self.json_bytes(
            status,
            serde_json::to_vec(&json!({ "error": message })).expect("JSON values serialize"),
        );
        let h = resp.headers_mut();
        if let Some(code) = code {
            h.insert("x-error-code", header_value(code));
        }
        h.insert("x-error-message", header_value(message));
        if let Some(commit) = commit {
            h.insert("x-repo-commit", header_value(commit));
        }
        resp
    }

    pub(super) fn not_found(&self) -> Response<ResBody> {
        self.error(StatusCode::NOT_FOUND, None, "Not Found", None)
    }

    pub(super) fn repo_not_found(&self, caller: Caller) -> Response<ResBody> {
        let status = if caller == Caller::Anonymous {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::NOT_FOUND
        };
        self.error(status, Some("RepoNotFound"), "Repository not found", None)
    }
}
