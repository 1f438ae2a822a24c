//! Proxies, against real proxy servers from Debian packages started here:
//! `tinyproxy` (HTTP CONNECT, package `tinyproxy`) and `microsocks` (SOCKS5,
//! package `microsocks`).
//!
//! Proof that traffic went through the proxy: each proxy binds its outgoing
//! connections to its own loopback address (127.0.0.3 / 127.0.0.4), and the
//! origin records the peer address of every connection it accepts. The
//! proxies' logs show the target they were asked for (a host name for
//! `socks5h://`, an address for `socks5://`).
//!
//! When a binary is missing the test prints why and passes, unless `CI` is
//! set, where it fails.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use hfd_http::{Error, NoProxy, Protocol, ProxyConfig, ProxyUrl, RequestBody};
use hfd_testkit::support::{Microsocks, ProxyProcess, Tinyproxy, free_port};
use http::{Request, StatusCode};

use crate::server::{TestCerts, TestServer, Tls, content};
use crate::{client, config, get};

const SOCKS_BIND: IpAddr = IpAddr::V4(SOCKS_BIND_V4);
const HTTP_PROXY_BIND: IpAddr = IpAddr::V4(HTTP_PROXY_BIND_V4);
const DIRECT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

const SOCKS_BIND_V4: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const HTTP_PROXY_BIND_V4: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// microsocks on a free port, outgoing from 127.0.0.3.
fn microsocks(credentials: Option<(&str, &str)>) -> Option<ProxyProcess> {
    Microsocks {
        credentials,
        bind: Some(SOCKS_BIND_V4),
    }
    .start()
}

/// tinyproxy on a free port, outgoing from 127.0.0.4, with basic auth.
fn tinyproxy(user: &str, pass: &str) -> Option<ProxyProcess> {
    Tinyproxy {
        user,
        pass,
        bind: Some(HTTP_PROXY_BIND_V4),
        max_clients: 50,
    }
    .start()
}

fn proxied_client(proxy: &str, extra_ca: Option<&Path>) -> hfd_http::HttpClient {
    let mut cfg = config(4);
    cfg.proxy = Some(ProxyConfig::all(ProxyUrl::parse(proxy).unwrap()));
    if let Some(ca) = extra_ca {
        cfg.extra_ca_files = vec![ca.to_path_buf()];
    }
    // Shared requests, so ALPN offers h2 through the tunnel (ranges would
    // offer HTTP/1.1 only, `HttpConfig::http1_for_ranges`).
    client(cfg).with_connection_choice(hfd_http::ConnectionChoice::Share)
}

#[tokio::test]
async fn http_connect_through_tinyproxy_for_http_and_https() {
    let Some(proxy) = tinyproxy("alice", "s3cret") else {
        return;
    };
    let plain = TestServer::start(Tls::None).await;
    let certs = TestCerts::new();
    let secure = TestServer::start(Tls::With {
        certs: certs.clone(),
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    })
    .await;
    // `%65` is a percent-encoded `e` (tinyproxy's config allows no
    // special characters in passwords; decoding is unit-tested too).
    let url = format!("http://alice:s3cr%65t@127.0.0.1:{}", proxy.port);
    let client = proxied_client(&url, Some(&certs.ca_file));

    let (status, body, info) = get(&client, &plain.url("/data/1000")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_ref(), content(0, 1000).as_slice());
    assert!(info.via_proxy);
    let (_, _, again) = get(&client, &plain.url("/data/10")).await;
    assert!(again.reused, "keep-alive through the tunnel");

    let https_url = secure.https_url("localhost", "/data/5000");
    let (status, body, info) = get(&client, &https_url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 5000);
    assert_eq!(
        info.protocol,
        Protocol::Http2,
        "ALPN works through the tunnel"
    );

    assert_eq!(plain.state.peer_ips(), vec![HTTP_PROXY_BIND]);
    assert_eq!(secure.state.peer_ips(), vec![HTTP_PROXY_BIND]);
    let log = proxy.stop();
    assert!(
        log.contains(&format!("CONNECT 127.0.0.1:{}", plain.addr.port())),
        "{log}"
    );
    assert!(
        log.contains(&format!("CONNECT localhost:{}", secure.addr.port())),
        "{log}"
    );
}

#[tokio::test]
async fn tinyproxy_rejects_wrong_credentials_without_leaking_them() {
    let Some(proxy) = tinyproxy("alice", "right") else {
        return;
    };
    let server = TestServer::start(Tls::None).await;
    let client = proxied_client(
        &format!("http://alice:hunter2@127.0.0.1:{}", proxy.port),
        None,
    );
    let request = Request::get(server.url("/data/10"))
        .body(RequestBody::default())
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    assert!(
        // tinyproxy answers 401 to CONNECT; RFC 9110 says 407.
        matches!(
            err,
            Error::Proxy {
                status: Some(StatusCode::PROXY_AUTHENTICATION_REQUIRED | StatusCode::UNAUTHORIZED),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("rejected the credentials"), "{text}");
    assert_eq!(server.state.accepted(), 0);
}

#[tokio::test]
async fn socks5_resolves_locally_and_socks5h_remotely() {
    let Some(proxy) = microsocks(Some(("bob", "pw"))) else {
        return;
    };
    let server = TestServer::start(Tls::None).await;
    let port = server.addr.port();
    let url = format!("http://localhost:{port}/data/2000");

    let local = proxied_client(&format!("socks5://bob:pw@127.0.0.1:{}", proxy.port), None);
    let (status, body, info) = get(&local, &url).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 2000));
    assert!(info.via_proxy);

    let remote = proxied_client(&format!("socks5h://bob:pw@127.0.0.1:{}", proxy.port), None);
    let (status, body, _) = get(&remote, &url).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 2000));

    assert_eq!(server.state.peer_ips(), vec![SOCKS_BIND, SOCKS_BIND]);
    let log = proxy.stop();
    // socks5: we resolved `localhost` and sent an address.
    assert!(
        log.contains(&format!("connected to 127.0.0.1:{port}")),
        "{log}"
    );
    // socks5h: the proxy got the host name.
    assert!(
        log.contains(&format!("connected to localhost:{port}")),
        "{log}"
    );
}

#[tokio::test]
async fn socks5_carries_tls_and_h2() {
    let Some(proxy) = microsocks(None) else {
        return;
    };
    let certs = TestCerts::new();
    let server = TestServer::start(Tls::With {
        certs: certs.clone(),
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    })
    .await;
    // Two parallel ranges over h2 (HTTP/1.1 for ranges turned off), each
    // on a connection of its own through the proxy.
    let mut cfg = config(4);
    cfg.proxy = Some(ProxyConfig::all(
        ProxyUrl::parse(&format!("socks5h://127.0.0.1:{}", proxy.port)).unwrap(),
    ));
    cfg.extra_ca_files = vec![certs.ca_file.clone()];
    cfg.http1_for_ranges = false;
    let client = client(cfg);
    let url = server.https_url("localhost", "/data/3000?gate=2");
    let results = futures::future::join_all((0..2).map(|_| get(&client, &url))).await;
    for (status, body, info) in &results {
        assert_eq!((*status, body.len()), (StatusCode::OK, 3000));
        assert_eq!(info.protocol, Protocol::Http2);
    }
    assert_ne!(results[0].2.id, results[1].2.id);
    assert_eq!(server.state.peer_ips(), vec![SOCKS_BIND, SOCKS_BIND]);
}

#[tokio::test]
async fn socks5_wrong_password_is_a_clear_error() {
    let Some(proxy) = microsocks(Some(("bob", "pw"))) else {
        return;
    };
    let server = TestServer::start(Tls::None).await;
    let client = proxied_client(
        &format!("socks5://bob:hunter2@127.0.0.1:{}", proxy.port),
        None,
    );
    let request = Request::get(server.url("/data/10"))
        .body(RequestBody::default())
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Proxy { .. }), "{text}");
    assert!(
        text.contains("rejected the user name or password"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(server.state.accepted(), 0);
}

#[tokio::test]
async fn no_proxy_hosts_connect_directly() {
    let Some(proxy) = microsocks(None) else {
        return;
    };
    let server = TestServer::start(Tls::None).await;
    let mut cfg = config(2);
    cfg.proxy = Some(
        ProxyConfig::all(ProxyUrl::parse(&format!("socks5://127.0.0.1:{}", proxy.port)).unwrap())
            .with_no_proxy(NoProxy::parse("example.org, 127.0.0.0/8")),
    );
    let client = client(cfg);
    let (status, _, info) = get(&client, &server.url("/data/10")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!info.via_proxy);
    assert_eq!(server.state.peer_ips(), vec![DIRECT]);
    // `localhost` is not in the list: it goes through the proxy.
    let url = format!("http://localhost:{}/data/10", server.addr.port());
    let (_, _, info) = get(&client, &url).await;
    assert!(info.via_proxy);
    assert_eq!(server.state.peer_ips(), vec![DIRECT, SOCKS_BIND]);
    let log = proxy.stop();
    assert_eq!(log.matches("connected to").count(), 1, "{log}");
}

#[tokio::test]
async fn unreachable_proxy_is_a_connect_error_naming_the_proxy() {
    let port = free_port();
    let client = proxied_client(&format!("http://carol:hunter2@127.0.0.1:{port}"), None);
    let request = Request::get("http://example.invalid/x")
        .body(RequestBody::default())
        .unwrap();
    let err = client.send(request).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Connect { via: Some(_), .. }), "{text}");
    assert!(
        text.contains(&format!("via proxy http://***@127.0.0.1:{port}")),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

/// A minimal `CONNECT` proxy that speaks TLS to its clients, for `https://`
/// proxy URLs (tinyproxy has no TLS side). Records each tunnel's target.
async fn tls_connect_proxy(
    certs: std::sync::Arc<TestCerts>,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certs.leaf_der.clone()], certs.leaf_key())
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let targets = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&targets);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let seen = std::sync::Arc::clone(&seen);
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let Some(target) = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split(' ').next())
                    .map(str::to_owned)
                else {
                    return;
                };
                seen.lock().unwrap().push(target.clone());
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target.as_str()).await else {
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (port, targets)
}

#[tokio::test]
async fn https_proxy_tunnels_tls_inside_tls() {
    let certs = TestCerts::new();
    let (proxy_port, targets) = tls_connect_proxy(certs.clone()).await;
    let server = TestServer::start(Tls::With {
        certs: certs.clone(),
        alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    })
    .await;
    let client = proxied_client(
        &format!("https://localhost:{proxy_port}"),
        Some(&certs.ca_file),
    );
    let (status, body, info) = get(&client, &server.https_url("127.0.0.1", "/data/4000")).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 4000));
    assert!(info.via_proxy);
    assert_eq!(info.protocol, Protocol::Http2);
    assert_eq!(
        *targets.lock().unwrap(),
        vec![format!("127.0.0.1:{}", server.addr.port())]
    );
}
