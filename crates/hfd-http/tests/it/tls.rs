//! TLS: ALPN negotiation, SNI, IP-address hosts, trust.

use std::collections::HashSet;
use std::sync::Arc;

use hfd_http::{ConnectionChoice, ConnectionId, Error, Protocol, RequestBody};
use http::{Request, StatusCode, Version};

use crate::server::{TestCerts, TestServer, Tls, content};
use crate::{client, config, get};

fn alpn(protocols: &[&[u8]]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.to_vec()).collect()
}

/// A TLS server offering `protocols`, a client configuration with
/// `max_connections` per host that trusts its CA, and the certificates
/// (whose CA file lives as long as they do).
async fn trusted_tls_server(
    protocols: &[&[u8]],
    max_connections: usize,
) -> (TestServer, hfd_http::HttpConfig, Arc<TestCerts>) {
    let certs = TestCerts::new();
    let server = TestServer::start(Tls::With {
        certs: certs.clone(),
        alpn: alpn(protocols),
    })
    .await;
    let mut cfg = config(max_connections);
    cfg.extra_ca_files = vec![certs.ca_file.clone()];
    (server, cfg, certs)
}

#[tokio::test]
async fn h2_negotiated_by_alpn_with_an_ip_host() {
    let (server, cfg, _certs) = trusted_tls_server(&[b"h2", b"http/1.1"], 4).await;
    let client = client(cfg).with_connection_choice(ConnectionChoice::Share);
    let (status, body, info) = get(&client, &server.https_url("127.0.0.1", "/data/2000")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_ref(), content(0, 2000).as_slice());
    assert_eq!(info.protocol, Protocol::Http2);
    assert_eq!(server.state.versions(), vec![Version::HTTP_2]);
}

#[tokio::test]
async fn ranges_ride_http1_over_tls_while_shared_requests_ride_h2() {
    let (server, mut cfg, _certs) = trusted_tls_server(&[b"h2", b"http/1.1"], 4).await;
    let ranges = client(cfg.clone());
    let shared = ranges
        .clone()
        .with_connection_choice(ConnectionChoice::Share);
    let url = server.https_url("localhost", "/data/2000");
    let (_, _, info) = get(&shared, &url).await;
    assert_eq!(info.protocol, Protocol::Http2);
    // The idle h2 connection is not taken: a range dials one offering
    // HTTP/1.1 only.
    let (_, body, info) = get(&ranges, &url).await;
    assert_eq!(body.as_ref(), content(0, 2000).as_slice());
    assert_eq!(
        info.protocol,
        Protocol::Http1,
        "a range offers HTTP/1.1 only"
    );
    // That connection says nothing of what the origin prefers: shared
    // requests stay on h2, the next range reuses the HTTP/1.1 one.
    let (_, _, info) = get(&shared, &url).await;
    assert_eq!(info.protocol, Protocol::Http2);
    let (_, _, again) = get(&ranges, &url).await;
    assert_eq!(again.protocol, Protocol::Http1);
    assert!(again.reused);
    assert_eq!(server.state.accepted(), 2);
    // Turned off: ranges take HTTP/2 like the rest.
    cfg.http1_for_ranges = false;
    let (_, _, info) = get(&client(cfg), &url).await;
    assert_eq!(info.protocol, Protocol::Http2);
}

#[tokio::test]
async fn h2_over_tls_spreads_parallel_requests() {
    let (server, mut cfg, _certs) = trusted_tls_server(&[b"h2", b"http/1.1"], 3).await;
    cfg.http1_for_ranges = false;
    let client = client(cfg);
    let url = server.https_url("localhost", "/data/50000?gate=3");
    let results = futures::future::join_all((0..3).map(|_| get(&client, &url))).await;
    let ids: HashSet<_> = results.iter().map(|(_, _, i)| i.id).collect();
    assert_eq!(ids.len(), 3);
    assert!(
        results
            .iter()
            .all(|(s, _, i)| *s == StatusCode::OK && i.protocol == Protocol::Http2)
    );
    assert_eq!(server.state.accepted(), 3);
}

/// `n` shared requests, held by the server until all are in flight, to a
/// TLS server offering `protocols`; the connections they used.
async fn shared_burst_over_tls(protocols: &[&[u8]], n: usize) -> (HashSet<ConnectionId>, usize) {
    let (server, cfg, _certs) = trusted_tls_server(protocols, 16).await;
    let client = client(cfg).with_connection_choice(ConnectionChoice::Share);
    let url = server.https_url("localhost", &format!("/data/100?gate={n}"));
    let results = futures::future::join_all((0..n).map(|_| get(&client, &url))).await;
    assert!(results.iter().all(|(s, _, _)| *s == StatusCode::OK));
    let ids = results.iter().map(|(_, _, i)| i.id).collect();
    (ids, server.state.accepted())
}

#[tokio::test]
async fn shared_requests_wait_for_alpn_then_multiplex_over_h2() {
    // Before the first handshake nobody knows whether the server speaks
    // h2: the burst waits for one connection instead of opening 12.
    let (ids, accepted) = shared_burst_over_tls(&[b"h2", b"http/1.1"], 12).await;
    assert_eq!(ids.len(), 1);
    assert_eq!(accepted, 1);
}

#[tokio::test]
async fn shared_requests_take_a_connection_each_when_alpn_says_http1() {
    let (ids, accepted) = shared_burst_over_tls(&[b"http/1.1"], 4).await;
    assert_eq!(ids.len(), 4);
    assert_eq!(accepted, 4);
}

#[tokio::test]
async fn http1_when_the_server_offers_only_http1_and_sni_names_work() {
    let (server, cfg, _certs) = trusted_tls_server(&[b"http/1.1"], 2).await;
    let client = client(cfg);
    let (status, _, info) = get(&client, &server.https_url("localhost", "/data/10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info.protocol, Protocol::Http1);
    let (_, _, again) = get(&client, &server.https_url("localhost", "/data/10")).await;
    assert!(again.reused);
    assert_eq!(
        server.state.versions(),
        vec![Version::HTTP_11, Version::HTTP_11]
    );
}

#[tokio::test]
async fn http2_can_be_turned_off() {
    let (server, mut cfg, _certs) = trusted_tls_server(&[b"h2", b"http/1.1"], 2).await;
    cfg.http2 = false;
    let client = client(cfg);
    let (_, _, info) = get(&client, &server.https_url("127.0.0.1", "/data/10")).await;
    assert_eq!(info.protocol, Protocol::Http1);
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let certs = TestCerts::new();
    let server = TestServer::start(Tls::With {
        certs,
        alpn: alpn(&[b"h2", b"http/1.1"]),
    })
    .await;
    let client = client(config(2));
    let request = Request::get(server.https_url("localhost", "/data/10"))
        .body(RequestBody::default())
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    let chain = format!("{:?}", std::error::Error::source(&err));
    assert!(chain.contains("UnknownIssuer"), "{chain}");
}

#[test]
fn unreadable_ca_file_is_a_tls_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1);
    cfg.extra_ca_files = vec![dir.path().join("missing.pem")];
    assert!(matches!(
        hfd_http::HttpClient::new(cfg),
        Err(Error::Tls { .. })
    ));
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let mut cfg = config(1);
    cfg.extra_ca_files = vec![empty];
    assert!(matches!(
        hfd_http::HttpClient::new(cfg),
        Err(Error::Tls { .. })
    ));
}
