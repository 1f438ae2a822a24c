//! `hfd-rs verify DIR [--repair]`.

use hfd_testkit::{FakeHub, MIB, RepoFixture};

use crate::support::{assert_same_files, run};

#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_corruption_and_repair_fetches_only_the_bad_files() {
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model("org/model")
                .regular_file("config.json", "{}")
                .regular_file("sub/notes.txt", "some notes")
                .lfs_file("model.safetensors", 2 * MIB, 11)
                .lfs_file("other.bin", MIB, 12),
        )
        .start()
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let dir_text = dir.to_str().unwrap();
    let ep = hub.endpoint();
    run(&["org/model", "--endpoint", ep, "--local-dir", dir_text])
        .await
        .expect_code(0);
    run(&["verify", dir_text, "--endpoint", ep])
        .await
        .expect_code(0);

    // Flip one byte of an LFS file (same size), delete a regular file.
    let model = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[12_345] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    std::fs::remove_file(dir.join("sub/notes.txt")).unwrap();

    let found = run(&["verify", dir_text, "--endpoint", ep]).await;
    found.expect_code(7);
    assert!(
        found.stdout.contains("model.safetensors: MISMATCH"),
        "{}",
        found.stdout
    );
    assert!(
        found.stdout.contains("sub/notes.txt: MISSING"),
        "{}",
        found.stdout
    );
    assert!(!found.stdout.contains("other.bin:"), "{}", found.stdout);
    // Offline (metadata only) finds the same two.
    let offline = run(&["verify", dir_text, "--offline"]).await;
    offline.expect_code(7);
    assert!(offline.stdout.contains("2 bad"), "{}", offline.stdout);

    hub.log().clear();
    run(&["verify", dir_text, "--endpoint", ep, "--repair"])
        .await
        .expect_code(0);
    assert_same_files(&hub, "org/model", &dir);
    // Only the two bad files were resolved again.
    assert_eq!(hub.log().resolve_count(), 2, "{:#?}", hub.log().entries());
}

/// A run killed between a file's final rename and its metadata write leaves
/// a complete file without metadata: the next run hashes it and adopts it
/// instead of downloading it again; a file without metadata whose bytes
/// differ is downloaded again.
#[tokio::test(flavor = "multi_thread")]
async fn a_finished_file_without_metadata_is_adopted_not_refetched() {
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model("org/model")
                .regular_file("config.json", "{}")
                .lfs_file("model.safetensors", 2 * MIB, 41)
                .lfs_file("other.bin", MIB, 42),
        )
        .start()
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let dir_text = dir.to_str().unwrap();
    let ep = hub.endpoint();
    run(&["org/model", "--endpoint", ep, "--local-dir", dir_text])
        .await
        .expect_code(0);
    let metadata = |name: &str| {
        dir.join(".cache/huggingface/download")
            .join(format!("{name}.metadata"))
    };
    std::fs::remove_file(metadata("model.safetensors")).unwrap();
    std::fs::remove_file(metadata("other.bin")).unwrap();
    let other = dir.join("other.bin");
    let mut bytes = std::fs::read(&other).unwrap();
    bytes[7] ^= 1;
    std::fs::write(&other, bytes).unwrap();

    hub.log().clear();
    run(&["org/model", "--endpoint", ep, "--local-dir", dir_text])
        .await
        .expect_code(0);
    assert_same_files(&hub, "org/model", &dir);
    assert!(metadata("model.safetensors").exists(), "metadata restored");
    // Only the corrupted file was fetched again.
    assert_eq!(hub.log().resolve_count(), 1, "{:#?}", hub.log().entries());
}
