//! Integration tests of the transport against an in-test hyper server and
//! real proxy servers (tinyproxy, microsocks) started by the tests.

mod hostile;
mod pool;
mod proxy;
mod range;
mod server;
mod timeouts;
mod tls;

use std::num::NonZeroUsize;

use bytes::Bytes;
use hfd_http::{Body, ConnectionInfo, HttpClient, HttpConfig, RequestBody};
use http::Request;

pub(crate) fn config(max_connections: usize) -> HttpConfig {
    let mut config = HttpConfig::default();
    config.max_connections_per_host = NonZeroUsize::new(max_connections).unwrap();
    config
}

pub(crate) fn client(config: HttpConfig) -> HttpClient {
    HttpClient::new(config).unwrap()
}

pub(crate) async fn read_all(mut body: Body) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next_chunk().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

/// GETs `url`, reads the whole body; status, body, connection.
pub(crate) async fn get(
    client: &HttpClient,
    url: &str,
) -> (http::StatusCode, Bytes, ConnectionInfo) {
    let request = Request::get(url).body(RequestBody::default()).unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status();
    let info = response
        .extensions()
        .get::<ConnectionInfo>()
        .cloned()
        .unwrap();
    assert_eq!(&info, response.body().connection());
    let body = Bytes::from(read_all(response.into_body()).await);
    (status, body, info)
}
