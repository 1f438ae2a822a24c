//! A minimal raw HTTP/1.1 server answering from a closure, for answers the
//! fake hub cannot give (malformed JSON, hostile paths, redirect loops).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One raw server; requests are recorded as `METHOD path?query`.
pub(crate) struct RawServer {
    pub(crate) base: String,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What to answer: status line + headers (without `Content-Length`) and body.
pub(crate) struct RawAnswer {
    pub(crate) status: &'static str,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl RawAnswer {
    pub(crate) fn new(status: &'static str, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

impl RawServer {
    /// Serves on 127.0.0.1:0; `answer(base, method, target)` builds each answer.
    pub(crate) async fn start(
        answer: impl Fn(&str, &str, &str) -> RawAnswer + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let (log, base_for_task) = (requests.clone(), base.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, answer, base) = (log.clone(), answer.clone(), base_for_task.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_string();
                    let mut first = text.lines().next().unwrap_or("").split(' ');
                    let method = first.next().unwrap_or("").to_owned();
                    let target = first.next().unwrap_or("").to_owned();
                    let auth = text.to_ascii_lowercase().contains("\r\nauthorization:");
                    log.lock().unwrap().push(format!(
                        "{method} {target}{}",
                        if auth { " [auth]" } else { "" }
                    ));
                    let a = answer(&base, &method, &target);
                    let mut out = format!("HTTP/1.1 {}\r\nconnection: close\r\n", a.status);
                    for (k, v) in &a.headers {
                        let _ = write!(out, "{k}: {v}\r\n");
                    }
                    let _ = write!(out, "content-length: {}\r\n\r\n", a.body.len());
                    if method != "HEAD" {
                        out.push_str(&a.body);
                    }
                    let _ = stream.write_all(out.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            base,
            requests,
            task,
        }
    }

    /// Requests seen so far.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
