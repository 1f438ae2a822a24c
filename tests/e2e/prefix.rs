//! An endpoint with a path prefix (`HF_ENDPOINT=https://host/hf`), as worker
//! proxies and reverse proxies mount the Hub (issue #13): every request stays
//! under the prefix, including the Hub's own absolute-path redirects
//! (`/api/resolve-cache/…`) and next-page links that such a proxy passes
//! through. Proven against the fake hub mounted under a prefix and against
//! a real nginx in front of the fake hub.

use std::path::Path;
use std::time::Duration;

use hfd_testkit::support::{free_port, require_binary};
use hfd_testkit::{FakeHub, FakeHubBuilder, MIB, RepoFixture};

use crate::support::{assert_same_files, run};

const MODEL: &str = "org/model";
const DATASET: &str = "org/data";

/// A model (regular + LFS files) and a nested dataset, listed 2 entries per
/// page so the next-page links are followed.
fn repos() -> FakeHubBuilder {
    FakeHub::builder()
        .repo(
            RepoFixture::model(MODEL)
                .regular_file("config.json", "{\"prefix\": true}\n")
                .regular_file("nested/dir/vocab.txt", hfd_testkit::seeded_bytes(7, 9_000))
                .lfs_file("model.safetensors", 2 * MIB + 3, 61),
        )
        .repo(
            RepoFixture::dataset(DATASET)
                .regular_file("README.md", "# data\n")
                .regular_file("a/b/c.csv", "x,y\n1,2\n")
                .lfs_file("a/train.parquet", 300_000, 62),
        )
        .tree_page_size(2)
}

/// Downloads both repos through `endpoint` and checks every byte against `hub`.
async fn both_repos_verified(hub: &FakeHub, endpoint: &str, out: &Path) {
    for (repo, extra) in [(MODEL, None), (DATASET, Some("--dataset"))] {
        let dir = out.join(repo.replace('/', "_"));
        let mut args = vec![
            repo,
            "--endpoint",
            endpoint,
            "--local-dir",
            dir.to_str().expect("utf-8"),
            "-x",
            "4",
        ];
        args.extend(extra);
        run(&args).await.expect_code(0);
        assert_same_files(hub, repo, &dir);
        let mut verify = vec![
            "verify",
            dir.to_str().expect("utf-8"),
            "--endpoint",
            endpoint,
        ];
        verify.extend(extra);
        run(&verify).await.expect_code(0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fake_hub_mounted_under_a_prefix() {
    let hub = repos().mount_prefix("/hf").start().await.expect("fake hub");
    assert!(hub.endpoint().ends_with("/hf"), "{}", hub.endpoint());
    let out = tempfile::tempdir().expect("tempdir");
    both_repos_verified(&hub, hub.endpoint(), out.path()).await;
    // Every hub request was under the prefix (a request outside it is
    // answered 404 and logged as `Other`), and the redirects to
    // resolve-cache were taken.
    let entries = hub.log().entries();
    assert!(
        entries.iter().all(|e| e.route != hfd_testkit::Route::Other),
        "{entries:#?}"
    );
    assert!(
        entries
            .iter()
            .any(|e| e.route == hfd_testkit::Route::ResolveCache),
        "{entries:#?}"
    );
    // With a trailing slash too.
    let slash = format!("{}/", hub.endpoint());
    let dir = out.path().join("again");
    run(&[
        MODEL,
        "--endpoint",
        &slash,
        "--local-dir",
        dir.to_str().unwrap(),
    ])
    .await
    .expect_code(0);
    assert_same_files(&hub, MODEL, &dir);
}

/// nginx, started by the test, in front of the fake hub.
struct Nginx {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `location /hf/ { proxy_pass UPSTREAM/; }` on a free loopback port, with
/// the upstream's absolute next-page links rewritten onto the mount (what
/// an operator configures; nginx rewrites `Location` by itself, not `Link`).
/// `None` (test skipped) when nginx is not installed outside CI.
async fn nginx_in_front_of(upstream: &str) -> Option<(Nginx, String)> {
    let nginx = require_binary("nginx", "nginx")?;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let port = free_port();
    let upstream_re = upstream.replace('.', "\\.");
    let conf = format!(
        r#"
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  map $upstream_http_link $mounted_link {{
    "~^<{upstream_re}/(?<rest>.*)$" "<http://127.0.0.1:{port}/hf/$rest";
    default $upstream_http_link;
  }}
  server {{
    listen 127.0.0.1:{port};
    location /hf/ {{
      proxy_pass {upstream}/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_hide_header Link;
      add_header Link $mounted_link;
    }}
  }}
}}
"#
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let child = std::process::Command::new(nginx)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start nginx");
    let server = Nginx { child, dir };
    // Bounded wait for the listener.
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some((server, format!("http://127.0.0.1:{port}/hf")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(server.dir.path().join("error.log")).unwrap_or_default();
    panic!("nginx did not listen on {port}: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_mounting_the_hub_under_a_prefix() {
    let hub = repos().start().await.expect("fake hub");
    let Some((_nginx, endpoint)) = nginx_in_front_of(hub.endpoint()).await else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    both_repos_verified(&hub, &endpoint, out.path()).await;
    // Every hub request came through nginx under the mount: none reached
    // the fake hub at a path nginx would not have forwarded from /hf/.
    assert!(
        hub.log()
            .entries()
            .iter()
            .any(|e| e.route == hfd_testkit::Route::ResolveCache),
        "the resolve-cache redirect was not followed through the mount"
    );
}
