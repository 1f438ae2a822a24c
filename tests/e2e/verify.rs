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

/// `verify --cache-dir C REPO [--revision R]` and a snapshot folder given
/// directly check the snapshot's entries against the hub's listing; a
/// corrupt blob and a dangling entry are found, `--repair` fetches only
/// them, a missing repository or snapshot is "no such folder".
#[tokio::test(flavor = "multi_thread")]
async fn verify_covers_the_cache_layout() {
    let hub = FakeHub::builder()
        .repo(
            RepoFixture::model("org/model")
                .regular_file("config.json", "{}")
                .regular_file("sub/notes.txt", "some notes")
                .lfs_file("model.safetensors", 2 * MIB, 51)
                .lfs_file("other.bin", MIB, 52),
        )
        .start()
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("cache");
    let cache_text = cache.to_str().unwrap();
    let ep = hub.endpoint();
    run(&["org/model", "--endpoint", ep, "--cache-dir", cache_text])
        .await
        .expect_code(0);
    let by_repo = [
        "verify",
        "--cache-dir",
        cache_text,
        "org/model",
        "--endpoint",
        ep,
    ];
    let ok = run(&by_repo).await;
    ok.expect_code(0);
    assert!(
        ok.stdout
            .contains("4 files checked against the hub's listing"),
        "{}",
        ok.stdout
    );

    let commit = hub.commit("org/model", "main").unwrap();
    let snapshot = cache.join("models--org--model/snapshots").join(&commit);
    let snapshot_text = snapshot.to_str().unwrap();
    // Corrupt the blob behind one entry (same size); dangle another.
    let model = std::fs::canonicalize(snapshot.join("model.safetensors")).unwrap();
    let mut bytes = std::fs::read(&model).unwrap();
    bytes[777] ^= 0xff;
    std::fs::write(&model, bytes).unwrap();
    std::fs::remove_file(std::fs::canonicalize(snapshot.join("sub/notes.txt")).unwrap()).unwrap();

    for args in [
        by_repo.to_vec(),
        vec![
            "verify",
            "--cache-dir",
            cache_text,
            "org/model",
            "--revision",
            &commit,
            "--endpoint",
            ep,
        ],
        vec!["verify", snapshot_text, "--endpoint", ep],
        // Offline: the blob names (and trees/<commit>.json) are the hashes.
        vec!["verify", snapshot_text, "--offline"],
    ] {
        let found = run(&args).await;
        found.expect_code(7);
        assert!(
            found.stdout.contains("model.safetensors: MISMATCH"),
            "{args:?}\n{}",
            found.stdout
        );
        assert!(
            found.stdout.contains("sub/notes.txt: MISSING"),
            "{args:?}\n{}",
            found.stdout
        );
        assert!(
            !found.stdout.contains("other.bin:"),
            "{args:?}\n{}",
            found.stdout
        );
        assert!(
            found.stdout.contains("4 files checked"),
            "{args:?}\n{}",
            found.stdout
        );
    }

    hub.log().clear();
    let mut repair = by_repo.to_vec();
    repair.push("--repair");
    run(&repair).await.expect_code(0);
    assert_eq!(hub.log().resolve_count(), 2, "{:#?}", hub.log().entries());
    run(&by_repo).await.expect_code(0);

    let zeros = "0".repeat(40);
    for (args, said) in [
        (vec!["org/none"], "no such folder"),
        (vec!["org/model", "--revision", &zeros], "no such folder"),
        (vec!["org/model", "--revision", "v9"], "no refs/v9"),
    ] {
        let mut all = vec!["verify", "--offline", "--cache-dir", cache_text];
        all.extend(args);
        let refused = run(&all).await;
        refused.expect_code(2);
        assert!(refused.stderr.contains(said), "{all:?}\n{}", refused.stderr);
    }
}
