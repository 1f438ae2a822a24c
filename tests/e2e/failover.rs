//! Fail-over between repeated `--endpoint`s is quick: an endpoint that
//! refuses the connection on the very first request is not retried (about
//! 15 s of backoff before) but left for the next one at once.

use std::time::Instant;

use hfd_testkit::{FakeHub, MIB, RepoFixture};

use crate::support::{assert_same_files, run};

/// `http://127.0.0.1:<port>` where nothing listens.
fn refused_endpoint() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_first_endpoint_is_left_at_once_for_the_next() {
    let good = FakeHub::builder()
        .repo(
            RepoFixture::model("org/model")
                .regular_file("config.json", "{}")
                .lfs_file("model.safetensors", MIB, 41),
        )
        .start()
        .await
        .expect("start fake hub");
    let dead = refused_endpoint();
    let out = tempfile::tempdir().expect("tempdir");
    let dir = out.path().join("m");
    let started = Instant::now();
    let run = run(&[
        "org/model",
        "--endpoint",
        &dead,
        "--endpoint",
        good.endpoint(),
        "--local-dir",
        dir.to_str().expect("utf-8"),
    ])
    .await;
    // Printed for the record (the figure in docs/mirrors.md), not asserted.
    eprintln!("fail-over run took {:?}", started.elapsed());
    run.expect_code(0);
    assert_same_files(&good, "org/model", &dir);
    assert!(
        run.stderr.contains(&format!("trying {}", good.endpoint())),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("retrying"),
        "a refused endpoint was retried:\n{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_refused_endpoint_fails_at_once_with_a_network_error() {
    let dead = refused_endpoint();
    let out = tempfile::tempdir().expect("tempdir");
    let run = run(&[
        "org/model",
        "--endpoint",
        &dead,
        "--local-dir",
        out.path().join("m").to_str().expect("utf-8"),
    ])
    .await;
    // 5 = network (crates/hfd-cli/src/exit.rs).
    run.expect_code(5);
    assert!(!run.stderr.contains("retrying"), "{}", run.stderr);
    assert!(run.stderr.contains(&dead), "{}", run.stderr);
    assert_eq!(
        run.stderr.lines().filter(|l| l.contains("error")).count(),
        1,
        "{}",
        run.stderr
    );
}
