//! Pinning and listing against the fake hub.

use hfd_hub::{Commit, HubErrorKind, RemoteFile, RepoType, Revision, Selection};
use hfd_testkit::{CommitChange, FakeHub, FileInfo, RepoFixture, Route, Transport};

use crate::support::{hub_client, plan_all, repo, serve};

fn assert_same_files(listed: &[RemoteFile], expected: &[FileInfo]) {
    let mut listed: Vec<&RemoteFile> = listed.iter().collect();
    listed.sort_by(|a, b| a.path.cmp(&b.path));
    let mut expected: Vec<&FileInfo> = expected.iter().collect();
    expected.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(listed.len(), expected.len());
    for (got, want) in listed.iter().zip(expected) {
        assert_eq!(got.path, want.path);
        assert_eq!(got.size, want.size, "{}", want.path);
        assert_eq!(got.oid.to_hex(), want.oid, "{}", want.path);
        assert_eq!(
            got.lfs_sha256.map(|d| d.to_hex()),
            want.lfs_sha256,
            "{}",
            want.path
        );
        assert_eq!(got.etag(), want.etag(), "{}", want.path);
    }
}

#[tokio::test]
async fn paginates_over_2500_files() {
    let hub = serve(RepoFixture::synthetic_dataset("org/big", 2500, 11)).await;
    let client = hub_client(&hub, None);
    let r = repo("org/big", RepoType::Dataset);
    let plan = plan_all(&client, &r).await;
    assert_eq!(plan.commit.as_str(), hub.commit("org/big", "main").unwrap());
    assert_eq!(plan.files.len(), 2500);
    assert_eq!(plan.listed_files, 2500);
    assert_same_files(&plan.files, &hub.files("org/big"));
    assert_eq!(
        plan.total_bytes,
        hub.files("org/big").iter().map(|f| f.size).sum::<u64>()
    );
    let tree_requests: Vec<_> = hub
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.path.contains("/tree/"))
        .collect();
    // 2,500 files plus their folders, 1,000 entries per page.
    assert!(tree_requests.len() >= 3, "{}", tree_requests.len());
    assert!(tree_requests.iter().all(|e| e.status == 200));
    assert!(
        tree_requests[1..]
            .iter()
            .all(|e| e.query.as_deref().unwrap_or("").contains("cursor=")),
        "later pages follow the Link header"
    );
    assert!(
        tree_requests
            .iter()
            .all(|e| e.path.contains(plan.commit.as_str())),
        "the listing uses the pinned commit"
    );
    // One revision request plus the pages: the dry-run request count.
    assert_eq!(plan.requests, 1 + tree_requests.len() as u64);
    assert_eq!(hub.log().entries().len() as u64, plan.requests);
}

#[tokio::test]
async fn many_small_pages_and_directories_skipped() {
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_dataset("org/data", 60, 3))
        .tree_page_size(7)
        .start()
        .await
        .unwrap();
    let client = hub_client(&hub, None);
    let r = repo("org/data", RepoType::Dataset);
    let commit = client.pin_revision(&r, &Revision::default()).await.unwrap();
    let files = client.list_files(&r, &commit).await.unwrap();
    assert_same_files(&files, &hub.files("org/data"));
    let pages = hub.log().count(|e| e.path.contains("/tree/"));
    assert!(pages >= 60 / 7, "{pages}");
}

#[tokio::test]
async fn all_three_repo_types() {
    let hub = FakeHub::builder()
        .repo(RepoFixture::synthetic_model("org/model", 4096, 1))
        .repo(RepoFixture::synthetic_dataset("org/data", 12, 2))
        .repo(
            RepoFixture::space("org/app")
                .regular_file("app.py", "print('hi')\n")
                .lfs_bytes("assets/logo.png", vec![7u8; 3000]),
        )
        .start()
        .await
        .unwrap();
    let client = hub_client(&hub, None);
    for (id, t, plural) in [
        ("org/model", RepoType::Model, "models"),
        ("org/data", RepoType::Dataset, "datasets"),
        ("org/app", RepoType::Space, "spaces"),
    ] {
        hub.log().clear();
        let r = repo(id, t);
        let plan = plan_all(&client, &r).await;
        assert_same_files(&plan.files, &hub.files(id));
        let paths: Vec<String> = hub.log().entries().into_iter().map(|e| e.path).collect();
        assert!(
            paths
                .iter()
                .all(|p| p.starts_with(&format!("/api/{plural}/{id}/"))),
            "{paths:?}"
        );
        // Each file resolves to the listed etag and size.
        for file in &plan.files {
            let resolved = client.resolve(&r, &plan.commit, file).await.unwrap();
            assert_eq!(resolved.etag, file.etag(), "{id}: {}", file.path);
            assert_eq!(resolved.size, file.size);
            assert_eq!(resolved.commit, plan.commit);
            assert_eq!(resolved.is_cdn, file.is_lfs(), "{id}: {}", file.path);
        }
        let prefix = match t {
            RepoType::Model => format!("/{id}/resolve/"),
            RepoType::Dataset => format!("/datasets/{id}/resolve/"),
            RepoType::Space => format!("/spaces/{id}/resolve/"),
        };
        assert_eq!(
            hub.log().count(|e| e.route == Route::Resolve),
            plan.files.len()
        );
        assert!(
            hub.log()
                .entries()
                .iter()
                .filter(|e| e.route == Route::Resolve)
                .all(|e| e.path.starts_with(&prefix))
        );
    }
}

#[tokio::test]
async fn revisions_are_encoded_and_pinned() {
    let hub = serve(RepoFixture::synthetic_model("org/m", 1000, 5)).await;
    let client = hub_client(&hub, None);
    let r = repo("org/m", RepoType::Model);
    for rev in ["refs/pr/1", "v1.0", "main"] {
        let commit = client
            .pin_revision(&r, &Revision::new(rev).unwrap())
            .await
            .unwrap();
        assert_eq!(commit.as_str(), hub.commit("org/m", rev).unwrap(), "{rev}");
    }
    assert_eq!(
        hub.log()
            .count(|e| e.path == "/api/models/org/m/revision/refs%2Fpr%2F1"),
        1
    );
    // A 40-hex revision is used as is, with no request.
    let before = client.requests_sent();
    let sha = hub.commit("org/m", "main").unwrap();
    let commit = client
        .pin_revision(&r, &Revision::new(&sha).unwrap())
        .await
        .unwrap();
    assert_eq!(commit.as_str(), sha);
    assert_eq!(client.requests_sent(), before);

    // After a push, the pinned commit still lists the old files.
    let old = Commit::parse(&sha).unwrap();
    hub.push_commit(
        "org/m",
        CommitChange::new("add").regular_file("new.txt", "new\n"),
    )
    .unwrap();
    let old_files = client.list_files(&r, &old).await.unwrap();
    assert!(!old_files.iter().any(|f| f.path == "new.txt"));
    let new = client.pin_revision(&r, &Revision::default()).await.unwrap();
    assert_ne!(new, old);
    let new_files = client.list_files(&r, &new).await.unwrap();
    assert!(new_files.iter().any(|f| f.path == "new.txt"));
    // Resolving an old file at the old commit checks X-Repo-Commit.
    let f = &old_files[0];
    let resolved = client.resolve(&r, &old, f).await.unwrap();
    assert_eq!(resolved.commit, old);
}

#[tokio::test]
async fn selection_applies_globs_and_paths() {
    let hub = serve(RepoFixture::synthetic_dataset("org/data", 40, 9)).await;
    let client = hub_client(&hub, None);
    let r = repo("org/data", RepoType::Dataset);
    let sel = Selection::all()
        .include(["data/train/*", "*.md"])
        .exclude(["*00003.jsonl"]);
    let plan = client.plan(&r, &Revision::default(), &sel).await.unwrap();
    let want: Vec<String> = hub
        .files("org/data")
        .into_iter()
        .map(|f| f.path)
        .filter(|p| {
            let md = std::path::Path::new(p)
                .extension()
                .is_some_and(|e| e == "md");
            (p.starts_with("data/train/") || md) && !p.ends_with("00003.jsonl")
        })
        .collect();
    let mut got: Vec<String> = plan.files.iter().map(|f| f.path.clone()).collect();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted);
    assert!(!got.is_empty());
    assert_eq!(plan.listed_files, 40);
    let err = client
        .plan(
            &r,
            &Revision::default(),
            &Selection::all().paths(["nope.bin"]),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), HubErrorKind::EntryNotFound);
}

#[tokio::test]
async fn works_over_h2c_and_tls() {
    for transport in [Transport::H2c, Transport::Tls] {
        let hub = FakeHub::builder()
            .repo(RepoFixture::synthetic_model("org/m", 2048, 8))
            .transport(transport)
            .start()
            .await
            .unwrap();
        let client = hub_client(&hub, None);
        let r = repo("org/m", RepoType::Model);
        let plan = plan_all(&client, &r).await;
        assert_same_files(&plan.files, &hub.files("org/m"));
        for f in &plan.files {
            let resolved = client.resolve(&r, &plan.commit, f).await.unwrap();
            assert_eq!(resolved.etag, f.etag());
        }
    }
}
