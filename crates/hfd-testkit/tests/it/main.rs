//! Integration tests of the fake hub, driven by a raw hyper client.

mod client;
mod fakehub_bin;
mod faults;
mod protocol;
mod throttle;

use hfd_testkit::{FakeHub, KIB, RepoFixture, Transport};

pub const GOOD: &str = "hf_good";
pub const LIMITED: &str = "hf_limited";

pub fn fixtures() -> Vec<RepoFixture> {
    vec![
        RepoFixture::model("org/model")
            .regular_file("config.json", "{\"a\": 1}\n")
            .regular_file("sub/dir/notes.txt", "notes\n")
            .lfs_file("model.safetensors", 300 * KIB + 7, 9)
            .lfs_file("b.bin", 64 * KIB, 10),
        RepoFixture::synthetic_dataset("org/data", 25, 4),
        RepoFixture::space("org/app").regular_file("app.py", "print('hi')\n"),
        RepoFixture::model("org/private")
            .private()
            .regular_file("config.json", "{\"private\": 1}\n")
            .lfs_file("w.bin", 10 * KIB, 1),
        RepoFixture::model("org/gated")
            .gated()
            .regular_file("config.json", "{\"gated\": 1}\n")
            .lfs_file("w.bin", 10 * KIB, 2),
        RepoFixture::model("legacy").regular_file("README.md", "old style id\n"),
    ]
}

pub async fn hub_with(transport: Transport) -> FakeHub {
    let mut b = FakeHub::builder()
        .transport(transport)
        .token(GOOD)
        .token_without_access(LIMITED);
    for f in fixtures() {
        b = b.repo(f);
    }
    b.start().await.expect("hub starts")
}

pub async fn hub() -> FakeHub {
    hub_with(Transport::Http1).await
}
