//! `TargetDir` and the partial file opened through it, against planted
//! symbolic links: a link to a file outside, to a folder outside, a dangling
//! link, and a link in place of a folder on the way. Each test checks that
//! nothing outside the target was written, created or followed.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use hfd_store::{
    ContentHasher, EntryKind, Error, FileIdentity, JournalHeader, OpenMode, PartialFile,
    SegmentLayout, StoreConfig, TargetDir,
};

/// A target folder and, next to it, an "outside" folder holding a file
/// nobody may touch.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    victim: PathBuf,
}

const VICTIM: &[u8] = b"precious bytes that must never change";

impl Setup {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("target");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&root).unwrap();
        std::fs::create_dir(&outside).unwrap();
        let victim = outside.join("victim.txt");
        std::fs::write(&victim, VICTIM).unwrap();
        Self {
            _tmp: tmp,
            root,
            outside,
            victim,
        }
    }

    fn dir(&self) -> TargetDir {
        TargetDir::open(&self.root).unwrap()
    }

    fn plant(&self, rel: &str, to: &Path) {
        symlink(to, self.root.join(rel)).unwrap();
    }

    /// The outside folder holds exactly the victim, unchanged.
    fn assert_outside_untouched(&self) {
        assert_eq!(std::fs::read(&self.victim).unwrap(), VICTIM);
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["victim.txt"], "something was created outside");
    }
}

fn assert_symlink_at(err: &Error, at: &Path) {
    match err {
        Error::Symlink { path } => assert_eq!(path, at, "{err}"),
        other => panic!(
            "expected a symlink refusal at {}, got {other:?}",
            at.display()
        ),
    }
}

const ALL_MODES: [OpenMode; 5] = [
    OpenMode::Read,
    OpenMode::ReadWrite,
    OpenMode::CreateOrOpen,
    OpenMode::CreateNew,
    OpenMode::Truncate,
];

#[test]
fn link_to_a_file_outside_is_refused_in_every_open_mode() {
    let s = Setup::new();
    s.plant("model.bin.part", &s.victim);
    let dir = s.dir();
    for mode in ALL_MODES {
        let err = dir
            .open_file(Path::new("model.bin.part"), mode)
            .unwrap_err();
        assert_symlink_at(&err, &s.root.join("model.bin.part"));
    }
    s.assert_outside_untouched();
    // Without the handle, the same open follows the link and destroys the
    // victim: what every test here guards against.
    assert!(
        std::fs::symlink_metadata(s.root.join("model.bin.part"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn dangling_link_is_not_created_through() {
    let s = Setup::new();
    let target = s.outside.join("planted.bin");
    s.plant("x.part", &target);
    let dir = s.dir();
    for mode in [
        OpenMode::CreateOrOpen,
        OpenMode::CreateNew,
        OpenMode::Truncate,
    ] {
        let err = dir.open_file(Path::new("x.part"), mode).unwrap_err();
        assert_symlink_at(&err, &s.root.join("x.part"));
    }
    assert!(!target.exists(), "a file was created through the link");
    s.assert_outside_untouched();
}

#[test]
fn link_to_a_folder_outside_is_refused_on_the_way() {
    let s = Setup::new();
    s.plant("blobs", &s.outside);
    let dir = s.dir();
    let err = dir
        .open_file(Path::new("blobs/abc.incomplete"), OpenMode::CreateOrOpen)
        .unwrap_err();
    assert_symlink_at(&err, &s.root.join("blobs"));
    let err = dir.create_dir_all(Path::new("blobs/sub")).unwrap_err();
    assert_symlink_at(&err, &s.root.join("blobs"));
    let err = dir.open_dir(Path::new("blobs")).unwrap_err();
    assert_symlink_at(&err, &s.root.join("blobs"));
    let err = dir.remove_file(Path::new("blobs/victim.txt")).unwrap_err();
    assert_symlink_at(&err, &s.root.join("blobs"));
    let err = dir
        .symlink(Path::new("x"), Path::new("blobs/link"))
        .unwrap_err();
    assert_symlink_at(&err, &s.root.join("blobs"));
    let err = dir
        .rename(Path::new("blobs/victim.txt"), Path::new("stolen"))
        .unwrap_err();
    assert_symlink_at(&err, &s.root.join("blobs"));
    s.assert_outside_untouched();
}

#[test]
fn symlinked_intermediate_folder_deeper_down_is_refused() {
    let s = Setup::new();
    std::fs::create_dir_all(s.root.join("snapshots/abc")).unwrap();
    s.plant("snapshots/abc/sub", &s.outside);
    let dir = s.dir();
    for rel in ["snapshots/abc/sub/f.bin", "snapshots/abc/sub/deeper/f.bin"] {
        let err = dir
            .open_file(Path::new(rel), OpenMode::CreateOrOpen)
            .unwrap_err();
        assert_symlink_at(&err, &s.root.join("snapshots/abc/sub"));
    }
    let err = dir
        .create_dir_all(Path::new("snapshots/abc/sub/deeper"))
        .unwrap_err();
    assert_symlink_at(&err, &s.root.join("snapshots/abc/sub"));
    // A handle on the folder below refuses the same link as its first step.
    let abc = dir.open_dir(Path::new("snapshots/abc")).unwrap();
    let err = abc
        .open_file(Path::new("sub/f.bin"), OpenMode::Truncate)
        .unwrap_err();
    assert_symlink_at(&err, &s.root.join("snapshots/abc/sub"));
    s.assert_outside_untouched();
}

#[test]
fn paths_that_leave_the_root_are_refused() {
    let s = Setup::new();
    let dir = s.dir();
    for rel in [
        "../outside/victim.txt",
        "a/../../outside/victim.txt",
        "",
        ".",
    ] {
        let err = dir
            .open_file(Path::new(rel), OpenMode::Truncate)
            .unwrap_err();
        assert!(matches!(err, Error::NotBeneath { .. }), "{rel}: {err:?}");
    }
    let err = dir.open_file(&s.victim, OpenMode::Truncate).unwrap_err();
    assert!(matches!(err, Error::NotBeneath { .. }), "{err:?}");
    let err = dir
        .rename(Path::new("a"), Path::new("../outside/x"))
        .unwrap_err();
    assert!(matches!(err, Error::NotBeneath { .. }), "{err:?}");
    s.assert_outside_untouched();
}

#[test]
fn rename_replaces_a_planted_link_and_remove_deletes_only_the_link() {
    let s = Setup::new();
    s.plant("model.bin", &s.victim);
    s.plant("stale.journal", &s.victim);
    let dir = s.dir();
    dir.create_dir_all(Path::new("tmp")).unwrap();
    let mut f = dir
        .open_file(Path::new("tmp/model.part"), OpenMode::CreateNew)
        .unwrap();
    std::io::Write::write_all(&mut f, b"new content").unwrap();
    drop(f);
    dir.rename(Path::new("tmp/model.part"), Path::new("model.bin"))
        .unwrap();
    assert_eq!(
        dir.entry(Path::new("model.bin")).unwrap(),
        Some(EntryKind::File { len: 11 })
    );
    assert_eq!(
        std::fs::read(s.root.join("model.bin")).unwrap(),
        b"new content"
    );
    assert!(dir.remove_file(Path::new("stale.journal")).unwrap());
    assert!(!dir.remove_file(Path::new("stale.journal")).unwrap());
    s.assert_outside_untouched();
}

#[test]
fn entry_and_symlink_work_relative_to_the_handle() {
    let s = Setup::new();
    let dir = s.dir();
    let snap = dir.create_dir_all(Path::new("snapshots/c0ffee")).unwrap();
    snap.symlink(Path::new("../../blobs/abc"), Path::new("model.bin"))
        .unwrap();
    assert_eq!(
        dir.entry(Path::new("snapshots/c0ffee/model.bin")).unwrap(),
        Some(EntryKind::Symlink)
    );
    assert_eq!(
        dir.entry(Path::new("snapshots")).unwrap(),
        Some(EntryKind::Dir)
    );
    assert_eq!(dir.entry(Path::new("nothing")).unwrap(), None);
    assert_eq!(
        std::fs::read_link(s.root.join("snapshots/c0ffee/model.bin")).unwrap(),
        Path::new("../../blobs/abc")
    );
    // The handle's own link is not followed either.
    let err = dir
        .open_file(Path::new("snapshots/c0ffee/model.bin"), OpenMode::Read)
        .unwrap_err();
    assert_symlink_at(&err, &s.root.join("snapshots/c0ffee/model.bin"));
    dir.sync_dir(Path::new("snapshots")).unwrap();
}

fn sha256(bytes: &[u8]) -> hfd_types::ContentDigest {
    let mut h = ContentHasher::sha256();
    h.update(bytes);
    h.finish()
}

fn header(size: u64, etag: &str) -> JournalHeader {
    JournalHeader::new(
        FileIdentity::new("org/m", "c0ffee", "model.bin", size, etag),
        SegmentLayout::new(1024, 4),
    )
}

/// The partial and its journal are names only hfd-rs writes: a link
/// planted there is removed (never followed) and the open goes on, so a
/// planted name heals instead of failing every run.
#[test]
fn partial_in_target_replaces_links_at_its_own_and_its_journal_name() {
    let s = Setup::new();
    let data = vec![7u8; 4096];
    let digest = sha256(&data);
    let dir = s.dir();
    let open = |rel: &str| {
        PartialFile::open_or_create_in(
            &dir,
            Path::new(rel),
            data.len() as u64,
            Some(digest),
            &StoreConfig::default(),
            Some(header(data.len() as u64, &digest.to_hex())),
        )
    };
    let regular = |rel: &str| {
        std::fs::symlink_metadata(s.root.join(rel))
            .unwrap()
            .file_type()
            .is_file()
    };
    s.plant("a.part", &s.victim);
    let (partial, _) = open("a.part").unwrap();
    partial.writer().write_at(0, &data).unwrap();
    drop(partial);
    assert!(regular("a.part"), "the link was replaced by the partial");
    s.plant("b.part.journal", &s.victim);
    drop(open("b.part").unwrap());
    assert!(
        regular("b.part.journal"),
        "the link was replaced by a journal"
    );
    s.plant("c.part.journal", &s.outside.join("planted.journal"));
    drop(open("c.part").unwrap());
    assert!(regular("c.part.journal"));
    s.assert_outside_untouched();
}

#[test]
fn partial_path_api_replaces_a_link_at_the_partial_name() {
    // The path-based API goes through the same handle: a planted link at
    // the partial's name used to be truncated and preallocated through.
    let s = Setup::new();
    s.plant("a.part", &s.victim);
    drop(
        PartialFile::create(
            &s.root.join("a.part"),
            1 << 20,
            None,
            &StoreConfig::default(),
        )
        .unwrap(),
    );
    assert!(
        std::fs::symlink_metadata(s.root.join("a.part"))
            .unwrap()
            .file_type()
            .is_file()
    );
    s.plant("b.part.journal", &s.victim);
    // Without a journal a stale journal is removed: the link itself goes.
    let partial =
        PartialFile::create(&s.root.join("b.part"), 10, None, &StoreConfig::default()).unwrap();
    drop(partial);
    assert!(!s.root.join("b.part.journal").exists());
    s.assert_outside_untouched();
}

#[test]
fn finalize_in_writes_the_final_name_over_a_planted_link() {
    let s = Setup::new();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256(&data);
    let dir = s.dir();
    let dl = dir.create_dir_all(Path::new("download")).unwrap();
    s.plant("model.bin", &s.victim);
    let (partial, _) = PartialFile::open_or_create_in(
        &dir,
        Path::new("download/model.bin.part"),
        data.len() as u64,
        Some(digest),
        &StoreConfig::default(),
        Some(header(data.len() as u64, &digest.to_hex())),
    )
    .unwrap();
    partial.writer().write_at(0, &data).unwrap();
    partial.flush().unwrap();
    let done = partial.finalize_in(Path::new("model.bin")).unwrap();
    assert_eq!(done.path, s.root.join("model.bin"));
    assert_eq!(done.digest, Some(digest));
    assert_eq!(std::fs::read(s.root.join("model.bin")).unwrap(), data);
    assert_eq!(dl.entry(Path::new("model.bin.part.journal")).unwrap(), None);
    assert_eq!(dl.entry(Path::new("model.bin.part")).unwrap(), None);
    s.assert_outside_untouched();
}

/// Folder handles are kept between operations (`FolderCache` in
/// `src/target_dir.rs`): a folder moved away and replaced by a link to
/// outside after its first use gets nothing written through the link.
#[test]
fn a_folder_swapped_for_a_link_after_first_use_is_not_followed() {
    let s = Setup::new();
    let dir = s.dir();
    dir.create_dir_all(Path::new("d")).unwrap();
    drop(
        dir.open_file(Path::new("d/a"), OpenMode::CreateNew)
            .unwrap(),
    );
    std::fs::rename(s.root.join("d"), s.root.join("d.old")).unwrap();
    s.plant("d", &s.outside);
    // Into the folder first opened (now `d.old`) or refused, never outside.
    let _ = dir.open_file(Path::new("d/b"), OpenMode::CreateNew);
    let _ = dir.rename(Path::new("d/b"), Path::new("d/victim.txt"));
    let _ = dir.remove_file(Path::new("d/victim.txt"));
    let _ = dir.symlink(Path::new("x"), Path::new("d/link"));
    s.assert_outside_untouched();
    // A fresh handle on the target refuses the link outright.
    let fresh = s.dir();
    let err = fresh
        .open_file(Path::new("d/c"), OpenMode::CreateNew)
        .unwrap_err();
    assert_symlink_at(&err, &s.root.join("d"));
    s.assert_outside_untouched();
}

/// A folder removed and made again while its handle is kept (a user's
/// `rm -r` during the run): every operation finds the folder now at that
/// path instead of answering from the removed one.
#[test]
fn a_folder_removed_and_made_again_is_looked_up_again() {
    let s = Setup::new();
    let dir = s.dir();
    dir.create_dir_all(Path::new("d/e")).unwrap();
    drop(
        dir.open_file(Path::new("d/e/a"), OpenMode::CreateNew)
            .unwrap(),
    );
    assert!(dir.entry(Path::new("d/e/a")).unwrap().is_some());
    std::fs::remove_dir_all(s.root.join("d")).unwrap();
    std::fs::create_dir_all(s.root.join("d/e")).unwrap();
    std::fs::write(s.root.join("d/e/other"), b"12345").unwrap();

    assert_eq!(
        dir.entry(Path::new("d/e/other")).unwrap(),
        Some(EntryKind::File { len: 5 })
    );
    std::fs::remove_dir_all(s.root.join("d")).unwrap();
    std::fs::create_dir_all(s.root.join("d/e")).unwrap();
    drop(
        dir.open_file(Path::new("d/e/b"), OpenMode::CreateNew)
            .unwrap(),
    );
    assert!(s.root.join("d/e/b").is_file());
    std::fs::rename(s.root.join("d"), s.root.join("gone")).unwrap();
    std::fs::remove_dir_all(s.root.join("gone")).unwrap();
    std::fs::create_dir_all(s.root.join("d/e")).unwrap();
    std::fs::write(s.root.join("d/e/c"), b"x").unwrap();
    dir.rename(Path::new("d/e/c"), Path::new("d/e/renamed"))
        .unwrap();
    assert!(s.root.join("d/e/renamed").is_file());
    assert!(dir.remove_file(Path::new("d/e/renamed")).unwrap());
    assert!(!s.root.join("d/e/renamed").exists());
}

/// A folder removed through the target and made again is a new folder to
/// it too.
#[test]
fn remove_dir_forgets_the_folder() {
    let s = Setup::new();
    let dir = s.dir();
    dir.create_dir_all(Path::new("d")).unwrap();
    drop(
        dir.open_file(Path::new("d/a"), OpenMode::CreateNew)
            .unwrap(),
    );
    assert!(dir.remove_file(Path::new("d/a")).unwrap());
    dir.remove_dir(Path::new("d")).unwrap();
    assert!(!s.root.join("d").exists());
    dir.create_dir_all(Path::new("d")).unwrap();
    drop(
        dir.open_file(Path::new("d/b"), OpenMode::CreateNew)
            .unwrap(),
    );
    assert!(s.root.join("d/b").is_file());
}
