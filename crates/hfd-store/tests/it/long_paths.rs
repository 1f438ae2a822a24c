//! Paths longer than Windows' `MAX_PATH` (260 characters) through
//! `TargetDir`, on every platform (on Windows, `.ci/windows` runs this
//! under wine): folders are made, a file written, renamed, found and
//! removed at a depth no non-verbatim Win32 path reaches.

use std::io::{Read, Write};
use std::path::PathBuf;

use hfd_store::{EntryKind, OpenMode, TargetDir};

/// Eight folders of 40 characters: 328 characters below the root alone.
fn deep_rel() -> PathBuf {
    (0..8)
        .map(|i| format!("folder-{i}-with-a-name-of-forty-chars-xxx"))
        .collect()
}

#[test]
fn files_deeper_than_max_path_are_written_renamed_and_removed() {
    let root = tempfile::tempdir().unwrap();
    let target = TargetDir::open(root.path()).unwrap();
    let dir = deep_rel();
    assert!(root.path().join(&dir).as_os_str().len() > 300);
    target.create_dir_all(&dir).unwrap();
    let (partial, done) = (
        dir.join("model.safetensors.part"),
        dir.join("model.safetensors"),
    );
    let mut file = target.open_file(&partial, OpenMode::CreateNew).unwrap();
    file.write_all(b"long way down").unwrap();
    drop(file);
    target.rename(&partial, &done).unwrap();
    assert_eq!(target.entry(&partial).unwrap(), None);
    assert_eq!(
        target.entry(&done).unwrap(),
        Some(EntryKind::File { len: 13 })
    );
    let mut back = String::new();
    target
        .open_file(&done, OpenMode::Read)
        .unwrap()
        .read_to_string(&mut back)
        .unwrap();
    assert_eq!(back, "long way down");
    assert!(target.remove_file(&done).unwrap());
}
