//! HTTP transport for hfd-rs: a pool of HTTP/1.1 and HTTP/2 connections per
//! origin over plain TCP or rustls, optionally through an HTTP `CONNECT` or
//! SOCKS5 proxy; streamed response bodies; strict range responses.
//!
//! Main types: [`HttpClient`] (built from an [`HttpConfig`]), [`Body`],
//! [`RangeResponse`], [`ProxyConfig`] / [`ProxyUrl`] / [`NoProxy`],
//! [`HttpStats`], [`ConnectionInfo`], [`Error`].
//!
//! [`HttpClient::send`] sends one request and returns the response as is: it
//! never follows redirects, because which redirects are safe to follow (and
//! with which credentials) is a Hub decision made in `hfd-hub`.
//! [`HttpClient::get_range`] fetches one byte range and checks the answer
//! (`206`, `Content-Range` matching the request and the expected total, no
//! `Content-Encoding`, a `Content-Length` equal to the range) before any byte
//! is handed out; [`HttpClient::get_whole`] does the same for a whole file
//! of known size. Their bodies yield at most the expected bytes
//! ([`Body::expect_len`]), so an endless or lying body cannot grow memory or
//! disk. A response that is not HTTP, or whose head exceeds hyper's limits
//! (~400 KiB on HTTP/1.1, 16 KiB of headers on HTTP/2), is an error, never an
//! allocation.
//!
//! Connections: at most [`HttpConfig::max_connections_per_host`] TCP
//! connections per origin. HTTP/1.1 (keep-alive) carries one request at a
//! time per connection; HTTP/2 (ALPN `h2` over TLS, or h2c by prior
//! knowledge) multiplexes. How a request picks among HTTP/2 connections is
//! its handle's [`ConnectionChoice`]: by default new connections are opened
//! up to the cap before streams share one (mirrors throttle per connection);
//! a handle from [`HttpClient::with_connection_choice`] with
//! [`ConnectionChoice::Share`] rides streams on open connections up to the
//! server's `SETTINGS_MAX_CONCURRENT_STREAMS` first (small files, metadata).
//!
//! This crate does not know what a repository, a revision or a file on disk
//! is, does not retry (callers decide, see [`Error::is_retryable`]), and
//! never reads environment variables: [`ProxyConfig::from_env`] takes a
//! lookup function.
//!
//! Cancel safety: dropping a future returned here drops the request; on
//! HTTP/1.1 the connection is closed, on HTTP/2 the stream is reset.

mod body;
mod client;
mod connect;
mod content_range;
mod error;
mod pool;
mod proxy;
mod request_body;
mod socks;
mod stats;
mod tls;

pub use body::Body;
pub use client::{HttpClient, HttpConfig, RangeResponse};
pub use connect::Protocol;
pub use content_range::{ContentRange, parse_content_range};
pub use error::{Error, Result};
pub use pool::{ConnectionChoice, ConnectionId, ConnectionInfo};
pub use proxy::{NoProxy, ProxyConfig, ProxyKind, ProxyUrl};
pub use request_body::RequestBody;
pub use stats::{HttpStats, OriginStats};
