//! `hfd-fakehub`'s knobs as flags: faults, gated repos, as the tests use them.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// The status code of `GET path` on `addr` (one HTTP/1.1 request, then close).
async fn status(addr: &str, path: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_and_gated_repos_are_flags() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hfd-fakehub"))
        .args([
            "--model-size",
            "4K",
            "--dataset-files",
            "2",
            "--gated",
            "--fault",
            "status=503@api*2",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn hfd-fakehub");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the endpoint line in time")
        .unwrap()
        .expect("an endpoint line");
    let endpoint = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("endpoint=http://"))
        .unwrap_or_else(|| panic!("{first:?}"))
        .to_owned();
    let revision = "/api/models/fake/model/revision/main";
    assert_eq!(status(&endpoint, revision).await, 503);
    assert_eq!(status(&endpoint, revision).await, 503);
    assert_eq!(
        status(&endpoint, revision).await,
        200,
        "the fault fires twice"
    );
    let gated = status(&endpoint, "/fake/gated/resolve/main/config.json").await;
    assert!(
        gated == 401 || gated == 403,
        "gated without a token: {gated}"
    );
    child.kill().await.unwrap();

    // A bad spec is a clear error.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hfd-fakehub"))
        .args(["--fault", "explode@cdn"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown fault kind \"explode\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
