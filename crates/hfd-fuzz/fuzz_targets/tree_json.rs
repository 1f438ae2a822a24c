//! `hfd_hub::fuzz_bridge::parse_tree_page` on arbitrary bytes: never panics, and every
//! file it returns has a safe path and consistent hashes.
#![no_main]

use hfd_types::{ContentDigest, RedactedUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let url = RedactedUrl::new("http://127.0.0.1/api/models/o/m/tree/c?cursor=x");
    let Ok(files) = hfd_hub::fuzz_bridge::parse_tree_page(data, &url) else {
        return;
    };
    for file in &files {
        assert_eq!(
            hfd_hub::fuzz_bridge::check_repo_path(&file.path),
            Ok(()),
            "{:?}",
            file.path
        );
        assert!(matches!(file.oid, ContentDigest::GitSha1(_)));
        if let Some(sha) = file.lfs_sha256 {
            assert!(matches!(sha, ContentDigest::Sha256(_)));
        }
        if let Some(xet) = &file.xet_hash {
            assert!(xet.len() == 64 && xet.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
    let _ = hfd_hub::fuzz_bridge::find_path_collision(files.iter().map(|f| f.path.as_str()));
});
