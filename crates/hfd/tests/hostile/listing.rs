//! Listings with hostile paths: refused before any byte moves, with an error
//! naming the path.

use hfd::ErrorKind;
use hfd::hfd_hub::Selection;
use hfd_testkit::{RepoFixture, Route};

use crate::{
    Opts, REPO, assert_all_files, assert_nothing_outside, error_text, hub, hub_with, run, sandbox,
};

const OID: &str = "c1b0730e0133447badcfd47fd144e254807b06e1";

/// A tree entry for `path` (a JSON string literal body, escapes allowed).
fn entry(json_path: &str) -> String {
    format!(r#"{{"type":"file","oid":"{OID}","size":1,"path":"{json_path}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_are_refused_before_any_write() {
    let hub = hub().await;
    let long_segment = "a".repeat(300);
    let long_path = ["abcdefgh"; 500].join("/");
    // (JSON text of the path, the path as the error must show it)
    let cases: Vec<(String, String)> = vec![
        ("../escape.txt".into(), "../escape.txt".into()),
        ("sub/../../escape.txt".into(), "sub/../../escape.txt".into()),
        ("..".into(), "..".into()),
        ("/etc/passwd".into(), "/etc/passwd".into()),
        ("C:/Windows/evil.dll".into(), "C:/Windows/evil.dll".into()),
        (r"..\\..\\escape.txt".into(), r"..\..\escape.txt".into()),
        (r"a\u0000b".into(), "a\0b".into()),
        ("./config.json".into(), "./config.json".into()),
        ("a/./b".into(), "a/./b".into()),
        ("a//b".into(), "a//b".into()),
        ("a/".into(), "a/".into()),
        (String::new(), String::new()),
        (r"evil\nfile".into(), "evil\nfile".into()),
        (r"\u001b[2Jclear".into(), "\u{1b}[2Jclear".into()),
        (long_segment.clone(), long_segment.clone()),
        (long_path.clone(), long_path.clone()),
    ];
    for (json_path, shown) in cases {
        hub.faults().set_extra_tree_entries([entry(&json_path)]);
        hub.log().clear();
        let (parent, target) = sandbox();
        let run = crate::run(&hub, &target, &Opts::default()).await;
        let err = run.error();
        assert_eq!(err.kind(), ErrorKind::Disk, "{json_path:?}: {err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("{shown:?}")),
            "{json_path:?}: the error must name the path: {text}"
        );
        assert!(
            text.contains("refusing"),
            "{json_path:?}: a clear refusal: {text}"
        );
        assert!(!target.exists(), "{json_path:?}: the target was created");
        assert_nothing_outside(parent.path());
        assert_eq!(
            hub.log().count(|e| e.route == Route::Resolve),
            0,
            "{json_path:?}: nothing is fetched once the listing is refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_differing_only_in_case_or_normalisation_are_refused() {
    for (a, b) in [
        ("Model.bin", "model.bin"),
        ("docs/README.md", "docs/readme.md"),
        // U+00E9 precomposed versus e + U+0301 combining.
        ("caf\u{e9}.txt", "cafe\u{301}.txt"),
    ] {
        let hub = hub_with(
            RepoFixture::model(REPO)
                .regular_file(a, "first\n")
                .regular_file(b, "second\n")
                .regular_file("other.txt", "other\n"),
            hfd_testkit::Transport::Http1,
        )
        .await;
        let (parent, target) = sandbox();
        let run = crate::run(&hub, &target, &Opts::default()).await;
        let err = run.error();
        assert_eq!(err.kind(), ErrorKind::Disk, "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("{a:?}")) && text.contains(&format!("{b:?}")),
            "both paths named: {text}"
        );
        assert!(!target.exists());
        assert_nothing_outside(parent.path());
        // Selecting one of the two is fine.
        let opts = Opts {
            selection: Selection::all().exclude([b]),
            ..Opts::default()
        };
        let run = crate::run(&hub, &target, &opts).await;
        let report = run.result.expect("one of the pair downloads");
        assert_eq!(report.files_done, 2);
        assert_eq!(std::fs::read(target.join(a)).expect("kept"), b"first\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_with_a_path_twice_is_refused() {
    let hub = hub().await;
    hub.faults().set_extra_tree_entries([entry("config.json")]);
    let (parent, target) = sandbox();
    let run = crate::run(&hub, &target, &Opts::default()).await;
    let err = run.error();
    assert_eq!(err.kind(), ErrorKind::Protocol, "{err:?}");
    assert!(error_text(err).contains("listed twice"), "{err}");
    assert!(!target.exists());
    assert_nothing_outside(parent.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_safe_names_download() {
    let names = [
        "dir with spaces/a+b#c?.txt",
        "100%.txt",
        "...",
        "..a/b..",
        "名前/ファイル.txt",
        ".gitattributes",
    ];
    let mut repo = RepoFixture::model(REPO);
    for (i, name) in names.iter().enumerate() {
        repo = repo.regular_file(name, format!("{i}\n"));
    }
    let hub = hub_with(repo, hfd_testkit::Transport::Http1).await;
    let (parent, target) = sandbox();
    run(&hub, &target, &Opts::default())
        .await
        .result
        .expect("safe names download");
    assert_all_files(&hub, &target);
    assert_nothing_outside(parent.path());
}
