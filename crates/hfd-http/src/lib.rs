//! HTTP transport for hfd-rs: pooled HTTP/1.1 and HTTP/2 connections over
//! plain TCP or rustls, streamed response bodies, and strict range responses.
//!
//! [`HttpClient::send`] sends one request and returns the response as is: it
//! never follows redirects, because which redirects are safe to follow (and
//! with which credentials) is a Hub decision made in `hfd-hub`.
//! [`HttpClient::get_range`] fetches one byte range and checks the answer
//! (`206`, `Content-Range` matching the request and the expected total)
//! before any byte is handed out.
//!
//! This crate does not know what a repository, a revision or a file on disk is.
//!
//! Cancel safety: dropping a future returned here drops the request; on
//! HTTP/1.1 the connection is closed, on HTTP/2 the stream is reset.

mod body;
mod client;
mod content_range;
mod error;

pub use body::Body;
pub use client::{HttpClient, HttpConfig, RangeResponse, RequestBody};
pub use content_range::{ContentRange, parse_content_range};
pub use error::{Error, Result};
