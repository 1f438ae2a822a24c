//! The command line: hfd.sh-style arguments, dry runs, exit codes.

use std::collections::BTreeMap;

use hfd_testkit::{FakeHub, Fault, FaultKind, FaultTarget, MIB, RepoFixture, Transport};

use crate::support::{assert_same_files, run};

async fn hub() -> FakeHub {
    FakeHub::builder()
        .repo(
            RepoFixture::model("org/model")
                .regular_file("config.json", r#"{"model_type": "test"}"#)
                .lfs_file("model.safetensors", 3 * MIB, 1)
                .lfs_file("sub dir/weights #2.bin", MIB + 17, 2),
        )
        .repo(RepoFixture::synthetic_dataset("org/data", 60, 3))
        .repo(
            RepoFixture::model("org/gated")
                .gated()
                .regular_file("a.txt", "a"),
        )
        .token("hf_good")
        .start()
        .await
        .expect("start fake hub")
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_a_model_with_one_resolve_per_file() {
    let hub = hub().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("model");
    let dir_text = dir.to_str().unwrap();
    run(&[
        "org/model",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir_text,
        "-x",
        "4",
    ])
    .await
    .expect_code(0);
    assert_same_files(&hub, "org/model", &dir);
    let files = hub.files("org/model").len();
    assert_eq!(hub.log().resolve_count(), files, "one resolve per file");
    assert_eq!(hub.log().error_count(), 0);
    assert_eq!(hub.log().cdn_requests_with_authorization(), 0);

    // A second run is a no-op sync: revision + listing only.
    hub.log().clear();
    run(&[
        "org/model",
        "--endpoint",
        hub.endpoint(),
        "--local-dir",
        dir_text,
    ])
    .await
    .expect_code(0);
    assert_eq!(hub.log().resolve_count(), 0);
    assert_eq!(hub.log().entries().len(), 2, "{:#?}", hub.log().entries());
}

#[tokio::test(flavor = "multi_thread")]
async fn hfd_sh_style_arguments_work() {
    let hub = hub().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("d");
    let run = run(&[
        "org/data",
        "--dataset",
        "--include",
        "data/train/*",
        "*.md",
        "--exclude",
        "*00003*",
        "--hf_username",
        "someone",
        "--hf_token",
        "hf_good",
        "-x",
        "4",
        "-j",
        "2",
        "--tool",
        "aria2c",
        "--local-dir",
        dir.to_str().unwrap(),
        "--endpoint",
        hub.endpoint(),
    ])
    .await;
    run.expect_code(0);
    assert!(
        run.stderr.contains("--tool aria2c ignored"),
        "{}",
        run.stderr
    );
    let mut want: Vec<String> = hub
        .files("org/data")
        .into_iter()
        .map(|f| f.path)
        .filter(|p| {
            (p.starts_with("data/train/")
                || std::path::Path::new(p)
                    .extension()
                    .is_some_and(|e| e == "md"))
                && !p.contains("00003")
        })
        .collect();
    want.sort();
    let mut got: Vec<String> = walk(&dir);
    got.sort();
    assert_eq!(got, want);
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_name() == ".cache" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_lists_every_file_of_a_paginated_dataset_once() {
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset("org/big", 2_500, 9))
        .transport(Transport::H2c)
        .start()
        .await
        .unwrap();
    let run = run(&[
        "org/big",
        "--dataset",
        "--endpoint",
        hub.endpoint(),
        "--dry-run",
    ])
    .await;
    run.expect_code(0);
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for line in run.stdout.lines().skip(1) {
        // "{action:<9} {size:>12}  {path}"
        if let Some(rest) = line.strip_prefix("new       ")
            && let Some((_size, path)) = rest.trim_start().split_once("  ")
        {
            *seen.entry(path).or_default() += 1;
        }
    }
    let files = hub.files("org/big");
    assert_eq!(files.len(), 2_500);
    for f in &files {
        assert_eq!(
            seen.get(f.path.as_str()),
            Some(&1),
            "{} not listed once",
            f.path
        );
    }
    assert_eq!(seen.len(), files.len());
    // Revision + three tree pages, nothing else: no resolve in a dry run.
    assert_eq!(hub.log().entries().len(), 4, "{:#?}", hub.log().entries());
    assert_eq!(hub.log().resolve_count(), 0);

    let json = crate::support::run(&[
        "org/big",
        "--dataset",
        "--endpoint",
        hub.endpoint(),
        "--dry-run",
        "--json",
    ])
    .await;
    json.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(doc["count"], 2_500);
    assert_eq!(doc["requests"], 4);
    assert_eq!(doc["files"].as_array().unwrap().len(), 2_500);
    let total: u64 = files.iter().map(|f| f.size).sum();
    assert_eq!(doc["total_bytes"], total);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_failure_class_has_its_exit_code_and_one_line() {
    let hub = hub().await;
    let (portal, portal_task) = captive_portal().await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("x");
    let dir = dir.to_str().unwrap();
    let ep = hub.endpoint();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["org/missing", "--endpoint", ep], 3, "not found"),
        (
            vec!["org/model", "--revision", "nope", "--endpoint", ep],
            3,
            "revision",
        ),
        (
            vec!["org/model", "no-such-file.bin", "--endpoint", ep],
            3,
            "no-such-file.bin",
        ),
        (vec!["org/gated", "--endpoint", ep], 4, "gated"),
        (
            vec!["org/model", "--endpoint", ep, "--token", "hf_bad"],
            4,
            "token",
        ),
        (vec!["bad//id", "--endpoint", ep], 2, "bad//id"),
        (vec!["org/model", "--endpoint", "ftp://x"], 2, "ftp://x"),
        (vec!["org/model", "--endpoint", ep, "-k", "lots"], 2, "lots"),
        (
            vec!["org/model", "--endpoint", ep, "--proxy", "gopher://p:1"],
            2,
            "gopher",
        ),
        (vec!["org/model", "--endpoint", &portal], 9, "malformed"),
    ];
    for (mut args, code, needle) in cases {
        args.extend(["--local-dir", dir]);
        let run = run(&args).await;
        run.expect_code(code);
        let needle = needle.to_lowercase();
        assert!(
            run.stderr.to_lowercase().contains(&needle),
            "{args:?}: {needle:?} not in {}",
            run.stderr
        );
        let error_lines = run
            .stderr
            .lines()
            // Ours: "hfd-rs: error: …"; clap's: "error: …" and a usage tip.
            .filter(|l| l.starts_with("hfd-rs: error") || l.starts_with("error:"))
            .count();
        assert_eq!(
            error_lines, 1,
            "{args:?}: one error line expected:\n{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("hf_bad"),
            "token leaked: {}",
            run.stderr
        );
    }

    // Unreachable endpoint: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}");
    run(&["org/model", "--endpoint", &url, "--local-dir", dir])
        .await
        .expect_code(5);

    // Rate limited for longer than we are willing to wait.
    hub.faults().inject(
        Fault::new(FaultKind::RateLimited {
            retry_after_secs: 3600,
        })
        .on(FaultTarget::Api)
        .always(),
    );
    let run = run(&["org/model", "--endpoint", ep, "--local-dir", dir]).await;
    run.expect_code(6);
    assert!(
        run.stderr.contains("3600") || run.stderr.contains("3601"),
        "{}",
        run.stderr
    );
    hub.faults().clear();
    portal_task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn help_shows_examples_and_exit_codes() {
    let run = run(&["--help"]).await;
    run.expect_code(0);
    for needle in [
        "--include",
        "--hf_token",
        "Examples",
        "Exit codes",
        "130 interrupted",
    ] {
        assert!(run.stdout.contains(needle), "{needle} missing from --help");
    }
}

/// A web server that answers every request with a 200 HTML page, as a
/// captive portal or a misconfigured proxy does: not a hub.
async fn captive_portal() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let body = "<html>please log in</html>";
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_endpoints_fail_over_in_order() {
    let fixture = || {
        RepoFixture::model("org/model")
            .regular_file("config.json", "{}")
            .lfs_file("model.safetensors", 2 * MIB, 31)
    };
    let broken = FakeHub::builder().repo(fixture()).start().await.unwrap();
    let good = FakeHub::builder().repo(fixture()).start().await.unwrap();
    // The first mirror lists the repo but its CDN refuses every file.
    broken.faults().inject(
        Fault::new(FaultKind::Status(404))
            .on(FaultTarget::Cdn)
            .always(),
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);

    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let run = run(&[
        "org/model",
        "--endpoint",
        &dead,
        "--endpoint",
        broken.endpoint(),
        "--endpoint",
        good.endpoint(),
        "--local-dir",
        dir.to_str().unwrap(),
    ])
    .await;
    run.expect_code(0);
    assert_same_files(&good, "org/model", &dir);
    assert_eq!(
        run.stderr.matches("; trying ").count(),
        2,
        "two fail-overs expected:\n{}",
        run.stderr
    );
    // The file the broken mirror could serve (config.json) was kept: the
    // good mirror only had to resolve the LFS file.
    assert_eq!(good.log().resolve_count(), 1, "{:#?}", good.log().entries());

    // A failure another endpoint would not fix (not found) does not fail over.
    let run = crate::support::run(&[
        "org/missing",
        "--endpoint",
        broken.endpoint(),
        "--endpoint",
        good.endpoint(),
    ])
    .await;
    run.expect_code(3);
    assert!(!run.stderr.contains("trying"), "{}", run.stderr);
    assert!(
        good.log()
            .entries()
            .iter()
            .all(|e| !e.path.contains("missing"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_switches_choose_h2c_or_http1_over_tls() {
    let model_hub = |transport| {
        FakeHub::builder()
            .repo(RepoFixture::model("org/model").lfs_file("model.safetensors", 3 * MIB, 4))
            .transport(transport)
            .start()
    };
    // --http2-prior-knowledge: HTTP/2 to an http:// endpoint (h2c).
    let h2c = model_hub(Transport::H2c).await.expect("h2c hub");
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let args = |hub: &FakeHub, extra: &'static str| {
        vec![
            "org/model".to_owned(),
            "--endpoint".to_owned(),
            hub.endpoint().to_owned(),
            "--local-dir".to_owned(),
            dir.to_str().unwrap().to_owned(),
            extra.to_owned(),
        ]
    };
    let a = args(&h2c, "--http2-prior-knowledge");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run(&a).await.expect_code(0);
    assert_same_files(&h2c, "org/model", &dir);
    let versions = |hub: &FakeHub| {
        let mut v: Vec<String> = hub.log().entries().into_iter().map(|e| e.version).collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(versions(&h2c), ["HTTP/2.0"]);

    // --http1.1 over TLS: ALPN offers http/1.1 only.
    let tls = model_hub(Transport::Tls).await.expect("TLS hub");
    std::fs::remove_dir_all(&dir).unwrap();
    let ca = tls
        .ca_cert_path()
        .expect("TLS hub")
        .to_str()
        .unwrap()
        .to_owned();
    let a = args(&tls, "--http1.1");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let home = tempfile::tempdir().unwrap();
    crate::support::run_with(
        &a,
        &[("SSL_CERT_FILE", ca.as_str())],
        home.path(),
        std::time::Duration::from_mins(1),
    )
    .await
    .expect_code(0);
    assert_same_files(&tls, "org/model", &dir);
    assert_eq!(versions(&tls), ["HTTP/1.1"]);

    // The two cannot be combined.
    let a = args(&h2c, "--http1.1");
    let mut a: Vec<&str> = a.iter().map(String::as_str).collect();
    a.push("--http2-prior-knowledge");
    run(&a).await.expect_code(2);
}
