//! A target folder that is itself hostile (symlinks pointing outside) or
//! unusable (not a folder): nothing is written outside it, and the error
//! names the path.

use std::os::unix::fs::symlink;

use hfd::ErrorKind;

use crate::{Opts, assert_nothing_outside, hub, sandbox};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_folder_inside_the_target_is_refused() {
    let hub = hub().await;
    let (parent, target) = sandbox();
    let outside = tempfile::tempdir().expect("outside");
    std::fs::create_dir_all(&target).expect("target");
    symlink(outside.path(), target.join("sub")).expect("symlink");
    let run = crate::run(&hub, &target, &Opts::default()).await;
    let err = run.error();
    assert_eq!(err.kind(), ErrorKind::Disk, "{err:?}");
    assert!(err.to_string().contains("sub/notes.txt"), "{err}");
    assert_eq!(
        std::fs::read_dir(outside.path()).expect("outside").count(),
        0,
        "written through the symlink"
    );
    assert_nothing_outside(parent.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_file_inside_the_target_is_refused_and_its_target_kept() {
    let hub = hub().await;
    let (parent, target) = sandbox();
    let outside = tempfile::tempdir().expect("outside");
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"precious").expect("victim");
    std::fs::create_dir_all(&target).expect("target");
    symlink(&victim, target.join("config.json")).expect("symlink");
    let run = crate::run(&hub, &target, &Opts::default()).await;
    let err = run.error();
    assert_eq!(err.kind(), ErrorKind::Disk, "{err:?}");
    assert!(err.to_string().contains("config.json"), "{err}");
    assert_eq!(std::fs::read(&victim).expect("victim"), b"precious");
    assert_nothing_outside(parent.path());
}

/// The state folder (`.cache/huggingface/…`) holds partials, journals and
/// metadata: a symlink there must not carry them outside either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_state_folder_is_refused() {
    for link in [
        ".cache",
        ".cache/huggingface",
        ".cache/huggingface/download",
    ] {
        let hub = hub().await;
        let (parent, target) = sandbox();
        let outside = tempfile::tempdir().expect("outside");
        let link_path = target.join(link);
        std::fs::create_dir_all(link_path.parent().expect("parent")).expect("folders");
        symlink(outside.path(), &link_path).expect("symlink");
        let run = crate::run(&hub, &target, &Opts::default()).await;
        let files = crate::files_under(outside.path());
        assert!(
            files.is_empty(),
            "{link}: written through the symlink: {files:?}"
        );
        let err = run.error();
        assert_eq!(err.kind(), ErrorKind::Disk, "{link}: {err:?}");
        assert_nothing_outside(parent.path());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_is_a_file_is_a_disk_error() {
    let hub = hub().await;
    let (parent, _) = sandbox();
    let file = parent.path().join("target");
    std::fs::write(&file, b"not a folder").expect("file");
    let run = crate::run(&hub, &file.join("inner"), &Opts::default()).await;
    let err = run.error();
    assert_eq!(err.kind(), ErrorKind::Disk, "{err:?}");
    assert!(err.to_string().contains("target"), "names the path: {err}");
    assert_eq!(std::fs::read(&file).expect("file"), b"not a folder");
}
