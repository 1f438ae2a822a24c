//! Hostile answers from a raw TCP server that writes whatever it likes:
//! each is refused with its own error before (or instead of) a wrong byte
//! is handed out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hfd_http::Error;
use hfd_types::ByteRange;
use http::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{client, config, read_all};

/// What the raw server sends after reading a request head.
#[derive(Clone, Copy, Debug)]
enum Answer {
    /// 206 for bytes 0-9 of 100, `Content-Encoding: gzip`.
    Gzip,
    /// 206 for bytes 0-9 of 100 with `Content-Length: 1099511627776`.
    HugeContentLength,
    /// 206 for bytes 0-9 of 100, chunked, never ending.
    Endless,
    /// 200, chunked, never ending.
    EndlessWhole,
    /// 206 with a 1 MiB header.
    HugeHeader,
    /// Garbage instead of a status line.
    Garbage,
}

/// Serves `answer` on every connection; counts body bytes written.
async fn raw_server(answer: Answer) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/file", listener.local_addr().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&written);
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let ten = b"0123456789";
                let range = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/100\r\n";
                let result = match answer {
                    Answer::Gzip => {
                        let text =
                            format!("{range}Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\n");
                        socket.write_all(&[text.as_bytes(), ten].concat()).await
                    }
                    Answer::HugeContentLength => {
                        let text = format!("{range}Content-Length: 1099511627776\r\n\r\n");
                        socket.write_all(&[text.as_bytes(), ten].concat()).await
                    }
                    Answer::HugeHeader => {
                        let text = format!(
                            "{range}X-Padding: {}\r\nContent-Length: 10\r\n\r\n",
                            "a".repeat(1 << 20)
                        );
                        socket.write_all(&[text.as_bytes(), ten].concat()).await
                    }
                    Answer::Garbage => socket.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await,
                    Answer::Endless | Answer::EndlessWhole => {
                        let status = if matches!(answer, Answer::Endless) {
                            range.to_owned()
                        } else {
                            "HTTP/1.1 200 OK\r\n".to_owned()
                        };
                        let head = format!("{status}Transfer-Encoding: chunked\r\n\r\n");
                        if socket.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
                        // Bounded: 1 GiB at most, normally until the client hangs up.
                        for _ in 0..65536 {
                            if socket.write_all(chunk.as_bytes()).await.is_err() {
                                return;
                            }
                            counter.fetch_add(0x4000, Ordering::Relaxed);
                        }
                        Ok(())
                    }
                };
                let _ = result;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, written)
}

fn first_ten() -> ByteRange {
    ByteRange::new(0, 10).unwrap()
}

#[tokio::test]
async fn a_compressed_body_is_refused() {
    let (url, _) = raw_server(Answer::Gzip).await;
    let err = client(config(2))
        .get_range(&url, first_ten(), Some(100), &HeaderMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnexpectedEncoding { encoding, .. } if encoding == "gzip"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("\"gzip\"-encoded"), "{err}");
}

#[tokio::test]
async fn a_content_length_larger_than_the_range_is_refused() {
    let (url, _) = raw_server(Answer::HugeContentLength).await;
    let err = client(config(2))
        .get_range(&url, first_ten(), Some(100), &HeaderMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadContentLength {
                expected: 10,
                got: 1_099_511_627_776,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn an_endless_range_body_stops_at_the_range() {
    let (url, written) = raw_server(Answer::Endless).await;
    let response = client(config(2))
        .get_range(&url, first_ten(), Some(100), &HeaderMap::new())
        .await
        .unwrap();
    let mut body = response.body;
    let mut got = Vec::new();
    let mut error = None;
    for _ in 0..1000 {
        match body.next_chunk().await {
            None => break,
            Some(Ok(chunk)) => got.extend_from_slice(&chunk),
            Some(Err(e)) => {
                error = Some(e);
                break;
            }
        }
    }
    assert_eq!(got, b"xxxxxxxxxx", "exactly the range's bytes");
    let error = error.expect("the overrun is reported");
    assert!(
        matches!(error, Error::BodyTooLong { expected: 10, .. }),
        "{error:?}"
    );
    assert!(
        body.next_chunk().await.is_none(),
        "finished after the error"
    );
    assert!(written.load(Ordering::Relaxed) < 1 << 30);
}

#[tokio::test]
async fn get_whole_caps_an_endless_body_at_the_size() {
    let (url, _) = raw_server(Answer::EndlessWhole).await;
    let (_, body) = client(config(2))
        .get_whole(&url, 50_000, &HeaderMap::new())
        .await
        .unwrap();
    let mut body = body;
    let mut got = 0usize;
    let mut error = None;
    for _ in 0..1000 {
        match body.next_chunk().await {
            None => break,
            Some(Ok(chunk)) => got += chunk.len(),
            Some(Err(e)) => {
                error = Some(e);
                break;
            }
        }
    }
    assert_eq!(got, 50_000);
    assert!(
        matches!(error, Some(Error::BodyTooLong { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn get_whole_refuses_a_range_answer() {
    let (url, _) = raw_server(Answer::Gzip).await;
    let err = client(config(2))
        .get_whole(&url, 100, &HeaderMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(206), "{err:?}");
}

#[tokio::test]
async fn a_huge_header_or_garbage_is_a_malformed_response() {
    for answer in [Answer::HugeHeader, Answer::Garbage] {
        let (url, _) = raw_server(answer).await;
        let err = client(config(2))
            .get_range(&url, first_ten(), Some(100), &HeaderMap::new())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::MalformedResponse { .. }),
            "{answer:?}: {err:?}"
        );
        assert!(!err.is_retryable(), "{answer:?}");
    }
}

#[tokio::test]
async fn a_body_within_its_length_reads_normally() {
    // Sanity: expect_len on a body that keeps its word changes nothing.
    let (url, _) = raw_server(Answer::Gzip).await;
    let request = http::Request::get(&url)
        .body(hfd_http::RequestBody::default())
        .unwrap();
    let response = client(config(2)).send(request).await.unwrap();
    let body = response.into_body().expect_len(10);
    assert_eq!(read_all(body).await, b"0123456789");
}
