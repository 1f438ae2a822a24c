//! Connection pooling: N sockets for N parallel requests, keep-alive,
//! HTTP/2 multiplexing, and what happens to abandoned requests.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use hfd_http::{ConnectionChoice, ConnectionInfo, Protocol, RequestBody};
use http::{StatusCode, Version};

use crate::server::{TestServer, Tls, content};
use crate::{client, config, get};

async fn parallel_gets(client: &hfd_http::HttpClient, urls: Vec<String>) -> Vec<ConnectionInfo> {
    let results = join_all(urls.iter().map(|u| get(client, u))).await;
    results
        .into_iter()
        .map(|(status, body, info)| {
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
            info
        })
        .collect()
}

fn distinct(infos: &[ConnectionInfo]) -> usize {
    infos.iter().map(|i| i.id).collect::<HashSet<_>>().len()
}

#[tokio::test]
async fn h1_parallel_requests_use_distinct_connections() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(4));
    let urls = (0..4).map(|_| server.url("/data/1000?gate=4")).collect();
    let infos = parallel_gets(&client, urls).await;
    assert_eq!(distinct(&infos), 4);
    assert!(infos.iter().all(|i| i.protocol == Protocol::Http1));
    assert_eq!(server.state.accepted(), 4);
    let stats = client.stats();
    let origin = stats.origin(&format!("http://{}", server.addr)).unwrap();
    assert_eq!(origin.connections_opened, 4);
    assert_eq!(origin.requests_sent, 4);
    assert_eq!(origin.bytes_received, 4000);
    assert_eq!(stats.bytes_received, 4000);
}

#[tokio::test]
async fn h1_waits_for_a_free_connection_at_the_cap() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(2));
    let urls = (0..6).map(|_| server.url("/data/100?gate=2")).collect();
    let infos = parallel_gets(&client, urls).await;
    assert_eq!(distinct(&infos), 2);
    assert_eq!(server.state.accepted(), 2);
    assert_eq!(server.state.max_in_flight(), 2);
    assert_eq!(client.stats().requests_sent, 6);
    assert_eq!(client.stats().connections_opened, 2);
}

#[tokio::test]
async fn h1_keep_alive_reuses_one_connection() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(4));
    let mut ids = HashSet::new();
    for i in 0..5 {
        let (status, body, info) = get(&client, &server.url("/data/5000")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_ref(), content(0, 5000).as_slice());
        assert_eq!(info.reused, i > 0);
        ids.insert(info.id);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(server.state.accepted(), 1);
    assert_eq!(client.stats().bytes_received, 25_000);
}

#[tokio::test]
async fn h1_connection_close_from_the_server_is_handled() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(1));
    let (status, _, first) = get(&client, &server.url("/close")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, second) = get(&client, &server.url("/data/10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(first.id, second.id);
    assert_eq!(server.state.accepted(), 2);
}

#[tokio::test]
async fn h2c_by_prior_knowledge() {
    let server = TestServer::start(Tls::None).await;
    let mut cfg = config(4);
    cfg.http2_prior_knowledge = true;
    let client = client(cfg);
    let (status, body, info) = get(&client, &server.url("/data/3000")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 3000);
    assert_eq!(info.protocol, Protocol::Http2);
    assert_eq!(server.state.versions(), vec![Version::HTTP_2]);
    let origin = format!("http://{}", server.addr);
    assert_eq!(
        client
            .stats()
            .origin(&origin)
            .unwrap()
            .http2_connections_opened,
        1
    );
}

#[tokio::test]
async fn h2_parallel_requests_spread_over_connections() {
    let server = TestServer::start(Tls::None).await;
    let mut cfg = config(4);
    cfg.http2_prior_knowledge = true;
    let client = client(cfg);
    // Warm: one HTTP/2 connection already exists and is idle. Parallel
    // requests must still spread over new sockets instead of sharing it.
    let (_, _, warm) = get(&client, &server.url("/data/10")).await;
    assert_eq!(warm.protocol, Protocol::Http2);
    let urls = (0..4).map(|_| server.url("/data/100000?gate=4")).collect();
    let infos = parallel_gets(&client, urls).await;
    assert!(infos.iter().all(|i| i.protocol == Protocol::Http2));
    assert_eq!(distinct(&infos), 4);
    assert!(
        infos.iter().any(|i| i.id == warm.id),
        "the idle connection is used"
    );
    assert_eq!(server.state.accepted(), 4);
}

#[tokio::test]
async fn h2_small_requests_multiplex_at_the_cap() {
    let server = TestServer::start(Tls::None).await;
    let mut cfg = config(2);
    cfg.http2_prior_knowledge = true;
    let client = client(cfg);
    // All 20 must be inside the server at once: impossible without streams
    // sharing the 2 allowed connections.
    let urls = (0..20).map(|_| server.url("/data/64?gate=20")).collect();
    let infos = parallel_gets(&client, urls).await;
    assert!(distinct(&infos) <= 2);
    assert!(server.state.accepted() <= 2);
    assert_eq!(server.state.max_in_flight(), 20);
    assert!(
        server
            .state
            .versions()
            .iter()
            .all(|v| *v == Version::HTTP_2)
    );
    // Later requests keep going to the same connections.
    let (_, _, info) = get(&client, &server.url("/data/64")).await;
    assert!(infos.iter().any(|i| i.id == info.id));
    assert!(server.state.accepted() <= 2);
}

/// `n` requests held by the server until all are in flight, sent through
/// a handle that shares HTTP/2 connections.
async fn shared_burst(
    server: &TestServer,
    client: &hfd_http::HttpClient,
    n: usize,
) -> Vec<ConnectionInfo> {
    let sharing = client
        .clone()
        .with_connection_choice(ConnectionChoice::Share);
    let urls = (0..n)
        .map(|_| server.url(&format!("/data/64?gate={n}")))
        .collect();
    parallel_gets(&sharing, urls).await
}

#[tokio::test]
async fn h2_shared_requests_ride_streams_on_one_connection_below_the_cap() {
    let server = TestServer::start(Tls::None).await;
    let mut cfg = config(16);
    cfg.http2_prior_knowledge = true;
    let client = client(cfg);
    // 20 at once, far below the cap of 16 connections: one connection
    // carries them all (the default choice would open 16).
    let infos = shared_burst(&server, &client, 20).await;
    assert!(infos.iter().all(|i| i.protocol == Protocol::Http2));
    assert_eq!(distinct(&infos), 1);
    assert_eq!(server.state.accepted(), 1);
    assert_eq!(server.state.max_in_flight(), 20);
    assert_eq!(client.stats().connections_opened, 1);
}

#[tokio::test]
async fn h2_shared_requests_open_a_connection_when_the_servers_streams_run_out() {
    let server = TestServer::start_with(Tls::None, Some(4)).await;
    let mut cfg = config(16);
    cfg.http2_prior_knowledge = true;
    let client = client(cfg);
    // One exchange first: the server's SETTINGS (4 streams) are known.
    let (_, _, warm) = get(&client, &server.url("/data/10")).await;
    // 10 held at once at 4 streams each: 3 connections, 4 + 4 + 2 (all
    // 10 must be inside the server at once, so none waits in a queue).
    let infos = shared_burst(&server, &client, 10).await;
    assert_eq!(distinct(&infos), 3, "{infos:?}");
    assert!(infos.iter().any(|i| i.id == warm.id));
    assert_eq!(server.state.accepted(), 3);
    assert_eq!(server.state.max_in_flight(), 10);
    let mut per_connection = std::collections::HashMap::new();
    for info in &infos {
        *per_connection.entry(info.id).or_insert(0) += 1;
    }
    assert!(
        per_connection.values().all(|&n| n <= 4),
        "{per_connection:?}"
    );
}

#[tokio::test]
async fn stats_tell_the_fastest_response_and_the_streams_a_connection_carries() {
    let server = TestServer::start_with(Tls::None, Some(4)).await;
    let mut cfg = config(16);
    cfg.http2_prior_knowledge = true;
    let client = client(cfg);
    assert_eq!(client.stats().fastest_response(), None);
    // The server holds every answer 30 ms: no response can come sooner,
    // and the fastest one is what the link costs (a download starts its
    // small-file window from it).
    for _ in 0..3 {
        get(&client, &server.url("/data/10?delay_ms=30")).await;
    }
    let stats = client.stats();
    let fastest = stats.fastest_response().unwrap();
    assert!(fastest >= Duration::from_millis(30), "{fastest:?}");
    let origin = stats.origin(&format!("http://{}", server.addr)).unwrap();
    assert_eq!(origin.fastest_response, Some(fastest));
    assert_eq!(origin.streams_per_connection, 4);

    // HTTP/1.1: one request per connection.
    let h1 = TestServer::start(Tls::None).await;
    let h1_client = crate::client(config(4));
    get(&h1_client, &h1.url("/data/10")).await;
    let h1_stats = h1_client.stats();
    assert_eq!(h1_stats.origins[0].streams_per_connection, 1);
    assert!(h1_stats.fastest_response().is_some());
}

#[tokio::test]
async fn h1_shared_requests_still_take_a_connection_each() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(4));
    let infos = shared_burst(&server, &client, 4).await;
    assert_eq!(distinct(&infos), 4);
    assert!(infos.iter().all(|i| i.protocol == Protocol::Http1));
    assert_eq!(server.state.accepted(), 4);
}

#[tokio::test]
async fn a_redirect_follows_on_the_connection_that_read_it() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(2));
    let request = |path: &str| {
        http::Request::get(server.url(path))
            .body(RequestBody::default())
            .unwrap()
    };
    // Two idle keep-alive connections.
    let warm = parallel_gets(&client, vec![server.url("/data/10?gate=2"); 2]).await;
    assert_eq!(distinct(&warm), 2);
    let first = client.send(request("/data/100")).await.unwrap();
    let second = client.send(request("/data/100")).await.unwrap();
    let answered_on = second.body().connection().id;
    assert_ne!(first.body().connection().id, answered_on);
    // The pool hands out the first idle connection: the one `first` frees.
    assert_eq!(crate::read_all(first.into_body()).await.len(), 100);
    let next = client
        .send_after(second.into_body(), request("/data/20"))
        .await
        .unwrap();
    assert_eq!(next.body().connection().id, answered_on);
    assert!(next.body().connection().reused);
    assert_eq!(crate::read_all(next.into_body()).await.len(), 20);
    assert_eq!(server.state.accepted(), 2);
    assert_eq!(client.stats().requests_sent, 5);
}

#[tokio::test]
async fn h2_dropped_body_keeps_the_connection() {
    let server = TestServer::start(Tls::None).await;
    let mut cfg = config(4);
    cfg.http2_prior_knowledge = true;
    let client = client(cfg);
    let request = http::Request::get(server.url("/data/4000000"))
        .body(RequestBody::default())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let first = response.body().connection().clone();
    let mut body = response.into_body();
    body.next_chunk().await.unwrap().unwrap();
    drop(body);
    let (status, _, second) = get(&client, &server.url("/data/10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first.id, second.id);
    assert_eq!(server.state.accepted(), 1);
}

#[tokio::test]
async fn dropped_request_future_closes_the_h1_connection() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(1));
    // Warm up one keep-alive connection.
    let (_, _, warm) = get(&client, &server.url("/data/10")).await;
    let request = http::Request::get(server.url("/hang"))
        .body(RequestBody::default())
        .unwrap();
    let abandoned = tokio::time::timeout(Duration::from_millis(200), client.send(request)).await;
    assert!(abandoned.is_err(), "the hanging request should not finish");
    assert!(
        server.state.wait_closed(1).await,
        "connection was not closed"
    );
    let (status, _, next) = get(&client, &server.url("/data/10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(next.id, warm.id);
    assert!(!next.reused);
    assert_eq!(server.state.accepted(), 2);
}

#[tokio::test]
async fn dropped_body_closes_the_h1_connection() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(1));
    let request = http::Request::get(server.url("/data/4000000"))
        .body(RequestBody::default())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let first = response.body().connection().clone();
    let mut body = response.into_body();
    body.next_chunk().await.unwrap().unwrap();
    drop(body);
    assert!(
        server.state.wait_closed(1).await,
        "connection was not closed"
    );
    let (status, body, second) = get(&client, &server.url("/data/100")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 100);
    assert_ne!(first.id, second.id);
    assert_eq!(server.state.accepted(), 2);
}

#[tokio::test]
async fn body_read_to_the_end_returns_the_connection() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(1));
    let request = http::Request::get(server.url("/data/300000"))
        .body(RequestBody::default())
        .unwrap();
    let response = client.send(request).await.unwrap();
    // Keep the body object alive after the end: the connection must already
    // be free for the next request (cap 1, so this would wait forever).
    let mut body = response.into_body();
    let mut n = 0;
    while let Some(chunk) = body.next_chunk().await {
        n += chunk.unwrap().len();
    }
    assert_eq!(n, 300_000);
    let (status, _, info) = get(&client, &server.url("/data/10")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(info.reused);
    drop(body);
    assert_eq!(server.state.accepted(), 1);
}

#[tokio::test]
async fn retired_connection_is_replaced() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(2));
    let (_, _, first) = get(&client, &server.url("/data/10")).await;
    assert!(client.retire_connection(first.id));
    assert!(!client.retire_connection(first.id));
    assert!(server.state.wait_closed(1).await);
    let (_, _, second) = get(&client, &server.url("/data/10")).await;
    assert_ne!(first.id, second.id);
    assert_eq!(server.state.accepted(), 2);
}

#[tokio::test]
async fn head_response_without_body_keeps_the_connection() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(1));
    for _ in 0..3 {
        let request = http::Request::head(server.url("/data/10"))
            .body(RequestBody::default())
            .unwrap();
        let response = client.send(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        drop(response);
    }
    let (_, body, info) = get(&client, &server.url("/data/10")).await;
    assert_eq!(body.len(), 10);
    assert!(info.reused);
    assert_eq!(server.state.accepted(), 1);
}
