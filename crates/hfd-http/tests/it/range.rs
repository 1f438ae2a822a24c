//! `get_range` validates the answer before handing out a byte.

use hfd_http::Error;
use hfd_types::ByteRange;
use http::{HeaderMap, StatusCode};

use crate::server::{TestServer, Tls, content};
use crate::{client, config, read_all};

#[tokio::test]
async fn valid_range_and_clipped_tail() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(2));
    let range = ByteRange::new(100, 1100).unwrap();
    let r = client
        .get_range(
            &server.url("/data/5000"),
            range,
            Some(5000),
            &HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!((r.range, r.total), (range, Some(5000)));
    assert_eq!(read_all(r.body).await, content(100, 1100));
    // A request running past the end gets the part inside the file.
    let past = ByteRange::new(4900, 6000).unwrap();
    let r = client
        .get_range(&server.url("/data/5000"), past, None, &HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(r.range, ByteRange::new(4900, 5000).unwrap());
    assert_eq!(read_all(r.body).await, content(4900, 5000));
}

#[tokio::test]
async fn ok_instead_of_partial_content_is_range_ignored() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(2));
    let range = ByteRange::new(10, 20).unwrap();
    let err = client
        .get_range(
            &server.url("/ignore-range/100"),
            range,
            None,
            &HeaderMap::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::RangeIgnored {
                status: StatusCode::OK,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn wrong_content_range_is_rejected() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(2));
    let range = ByteRange::new(10, 20).unwrap();
    let err = client
        .get_range(
            &server.url("/bad-range/100"),
            range,
            None,
            &HeaderMap::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::BadContentRange { got: Some(got), .. } if got == "bytes 11-19/100"),
        "{err:?}"
    );
}

#[tokio::test]
async fn total_mismatch_is_rejected() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(2));
    let range = ByteRange::new(0, 10).unwrap();
    let err = client
        .get_range(
            &server.url("/wrong-total/100"),
            range,
            Some(100),
            &HeaderMap::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::SizeMismatch {
                expected: 100,
                got: 101,
                ..
            }
        ),
        "{err:?}"
    );
    // Without an expectation the same answer is fine.
    let r = client
        .get_range(
            &server.url("/wrong-total/100"),
            range,
            None,
            &HeaderMap::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.total, Some(101));
}

#[tokio::test]
async fn unavailable_carries_retry_after() {
    let server = TestServer::start(Tls::None).await;
    let client = client(config(2));
    let range = ByteRange::new(0, 10).unwrap();
    let err = client
        .get_range(&server.url("/unavailable"), range, None, &HeaderMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Status {
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after_secs: Some(7),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}
