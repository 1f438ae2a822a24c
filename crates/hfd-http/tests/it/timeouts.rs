//! Connect, header and stall timeouts.

use std::time::Duration;

use hfd_http::{Error, RequestBody};
use http::Request;

use crate::server::{TestServer, Tls};
use crate::{client, config, get};

#[tokio::test]
async fn stall_between_body_frames_times_out() {
    let server = TestServer::start(Tls::None).await;
    let mut cfg = config(1);
    cfg.stall_timeout = Duration::from_millis(300);
    let client = client(cfg);
    let request = Request::get(server.url("/stall"))
        .body(RequestBody::default())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let mut body = response.into_body();
    assert_eq!(body.next_chunk().await.unwrap().unwrap().len(), 16);
    let err = body.next_chunk().await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(body.next_chunk().await.is_none());
    // The stalled connection is gone; the next request gets a new one.
    assert!(server.state.wait_closed(1).await);
    let (_, _, info) = get(&client, &server.url("/data/10")).await;
    assert!(!info.reused);
    assert_eq!(server.state.accepted(), 2);
}

#[tokio::test]
async fn stall_on_h2_retires_the_connection() {
    let server = TestServer::start(Tls::None).await;
    let mut cfg = config(4);
    cfg.stall_timeout = Duration::from_millis(300);
    cfg.http2_prior_knowledge = true;
    let client = client(cfg);
    let request = Request::get(server.url("/stall"))
        .body(RequestBody::default())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let stalled = response.body().connection().clone();
    let mut body = response.into_body();
    body.next_chunk().await.unwrap().unwrap();
    assert!(matches!(
        body.next_chunk().await,
        Some(Err(Error::Timeout { .. }))
    ));
    let (_, _, info) = get(&client, &server.url("/data/10")).await;
    assert_ne!(info.id, stalled.id);
}

#[tokio::test]
async fn missing_response_headers_time_out() {
    let server = TestServer::start(Tls::None).await;
    let mut cfg = config(1);
    cfg.header_timeout = Some(Duration::from_millis(300));
    let client = client(cfg);
    let request = Request::get(server.url("/hang"))
        .body(RequestBody::default())
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    // The connection with a request in limbo is not reused.
    let (_, _, info) = get(&client, &server.url("/data/10")).await;
    assert!(!info.reused);
}

#[tokio::test]
async fn silent_tls_server_hits_the_connect_timeout() {
    // Accepts TCP (through the backlog) but never speaks TLS.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cfg = config(1);
    cfg.connect_timeout = Duration::from_millis(300);
    let client = client(cfg);
    let request = Request::get(format!("https://127.0.0.1:{port}/x"))
        .body(RequestBody::default())
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    drop(listener);
}

#[tokio::test]
async fn refused_connection_is_a_retryable_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let client = client(config(1));
    let request = Request::get(format!("http://127.0.0.1:{port}/x"))
        .body(RequestBody::default())
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(client.stats().connections_opened, 0);
}
