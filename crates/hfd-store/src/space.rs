//! Free-space queries and the whole-plan preflight.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hfd_types::ByteSize;

use crate::{Error, Result, platform};

/// Bytes available to an unprivileged user on the filesystem holding `path`.
///
/// `path` need not exist: the nearest existing ancestor is asked (a partial
/// file is usually checked before it is created).
pub fn free_space(path: &Path) -> Result<u64> {
    let existing = nearest_existing(path);
    platform::free_space(&existing).map_err(|source| Error::FreeSpace {
        path: existing.clone(),
        source,
    })
}

/// Checks that every filesystem touched by `plan` has room for all the bytes
/// planned on it, before anything is written.
///
/// `plan` lists `(path, bytes)` pairs; paths on the same device are summed.
/// Fails with [`Error::DiskFull`] naming the first path of the short
/// filesystem that needs bytes, and the bytes the plan needs there.
pub fn preflight<'a>(plan: impl IntoIterator<Item = (&'a Path, u64)>) -> Result<()> {
    // device -> (first path seen, bytes needed)
    let mut per_device: HashMap<u64, (PathBuf, u64)> = HashMap::new();
    let mut order = Vec::new();
    // A dataset puts thousands of files in a few folders: the device is
    // asked once per folder, not twice per file (a file lies on its
    // folder's filesystem).
    let mut device_of_folder: HashMap<PathBuf, u64> = HashMap::new();
    for (path, bytes) in plan {
        let folder = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let device = if let Some(&device) = device_of_folder.get(&folder) {
            device
        } else {
            let existing = nearest_existing(path);
            let device = platform::device_id(&existing).map_err(|source| Error::FreeSpace {
                path: existing.clone(),
                source,
            })?;
            device_of_folder.insert(folder, device);
            device
        };
        let entry = per_device.entry(device).or_insert_with(|| {
            order.push(device);
            (path.to_path_buf(), 0)
        });
        // Name the first file that needs space (a resumed partial that
        // already holds its blocks needs none).
        if entry.1 == 0 && bytes > 0 {
            entry.0 = path.to_path_buf();
        }
        entry.1 = entry.1.saturating_add(bytes);
    }
    for device in order {
        let (path, needed) = &per_device[&device];
        let available = free_space(path)?;
        if *needed > available {
            return Err(Error::DiskFull {
                path: path.clone(),
                needed: ByteSize::new(*needed),
                available: ByteSize::new(available),
            });
        }
    }
    Ok(())
}

/// `path` itself if it exists, else its nearest existing ancestor (or `.`).
fn nearest_existing(path: &Path) -> PathBuf {
    let mut candidate = path;
    loop {
        if candidate.exists() {
            return candidate.to_path_buf();
        }
        match candidate.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => candidate = parent,
            _ => return PathBuf::from("."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{free_space, nearest_existing, preflight};
    use std::path::Path;

    #[test]
    fn free_space_of_missing_path_uses_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("a/b/c.bin");
        assert_eq!(nearest_existing(&missing), dir.path());
        let free = free_space(&missing).unwrap();
        assert!(free > 0);
        assert!(nearest_existing(Path::new("no-such-dir-xyz/file")).ends_with("."));
    }

    #[test]
    fn preflight_sums_files_on_one_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(dir.path()).unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        // Each file alone fits, both together do not.
        let half = free / 2 + free / 4;
        preflight([(a.as_path(), half)]).unwrap();
        let err = preflight([(a.as_path(), half), (b.as_path(), half)]).unwrap_err();
        assert!(err.is_disk_full(), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&a.display().to_string()), "{msg}");
        assert!(msg.contains("needed"), "{msg}");
        // A file needing nothing (its partial already holds its blocks) is
        // not the one named. Twice the free space: other tests (and other
        // programs) delete files meanwhile, and free space that grew by a
        // block made `free + 1` fit (seen under wine in CI).
        let err = preflight([(a.as_path(), 0), (b.as_path(), free * 2)]).unwrap_err();
        assert!(err.to_string().contains(&b.display().to_string()), "{err}");
    }
}
