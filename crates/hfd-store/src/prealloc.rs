//! Reserving a file's blocks up front.

use std::fs::File;
use std::io;
use std::path::Path;

use hfd_types::ByteSize;

use crate::{Error, Result, platform, space};

/// Up to this many bytes, no free-space query before the allocation.
const SMALL_FILE: u64 = 1 << 20;

/// How a file's space was reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preallocation {
    /// Blocks are allocated (`fallocate`): later writes cannot hit ENOSPC.
    Allocated,
    /// The filesystem cannot allocate up front; the file was only extended
    /// with `set_len` (sparse). Writes may still fail on a full disk, so the
    /// store uses positioned writes (an error) rather than a mapping (SIGBUS).
    Sparse,
}

/// Reserves `size` bytes for `file` (at `path`, used in messages).
///
/// Checks free space first so a full disk fails before any block is taken,
/// with an error naming the file and the bytes needed. Then allocates
/// (`fallocate` on Linux, `F_PREALLOCATE` on macOS, extending the file on
/// Windows, see `platform`); where that is unsupported it falls back to a
/// sparse `set_len` and logs a `warn`.
pub fn preallocate(file: &File, path: &Path, size: u64) -> Result<Preallocation> {
    if size == 0 {
        return Ok(Preallocation::Allocated);
    }
    let already = file.metadata().map_or(0, |m| allocated_bytes(&m));
    let needed = size.saturating_sub(already);
    // A small file is not worth a `statfs` of its own (a dataset has
    // thousands): the plan's preflight counted it, and `fallocate` failing
    // with ENOSPC is still reported as a full disk below.
    if needed > SMALL_FILE {
        let available = space::free_space(path)?;
        if needed > available {
            return Err(Error::DiskFull {
                path: path.to_path_buf(),
                needed: ByteSize::new(needed),
                available: ByteSize::new(available),
            });
        }
    }
    match platform::allocate(file, size) {
        Ok(()) => Ok(Preallocation::Allocated),
        Err(err) if platform::is_unsupported(&err) => {
            tracing::warn!(
                file = %path.display(),
                size,
                "filesystem cannot preallocate; using a sparse file and positioned writes"
            );
            file.set_len(size).map_err(|source| Error::Preallocate {
                path: path.to_path_buf(),
                size: ByteSize::new(size),
                source,
            })?;
            Ok(Preallocation::Sparse)
        }
        Err(err) if err.kind() == io::ErrorKind::StorageFull => Err(Error::DiskFull {
            path: path.to_path_buf(),
            needed: ByteSize::new(needed),
            available: ByteSize::new(space::free_space(path).unwrap_or(0)),
        }),
        Err(source) => Err(Error::Preallocate {
            path: path.to_path_buf(),
            size: ByteSize::new(size),
            source,
        }),
    }
}

/// Bytes the filesystem holds for the file whose metadata is `meta`
/// (blocks on Unix, which a sparse file lacks; the length on Windows, where
/// the store's files are never sparse).
pub fn allocated_bytes(meta: &std::fs::Metadata) -> u64 {
    platform::allocated_bytes(meta)
}

#[cfg(test)]
mod tests {
    use super::{Preallocation, allocated_bytes, preallocate};

    #[test]
    fn allocates_real_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let file = std::fs::File::create(&path).unwrap();
        let how = preallocate(&file, &path, 8 << 20).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), 8 << 20);
        if how == Preallocation::Allocated {
            // Not a sparse set_len: the blocks exist.
            assert!(allocated_bytes(&meta) >= 8 << 20);
        }
    }

    /// A resumed partial is preallocated again: its bytes stay, its length
    /// stays, and nothing more is reserved (on macOS, `F_PREALLOCATE` would
    /// reserve `size` past the physical end; `platform/macos.rs` skips it).
    #[test]
    fn preallocating_an_allocated_file_again_keeps_its_bytes() {
        use std::io::{Read, Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        preallocate(&file, &path, 1 << 20).unwrap();
        file.seek(SeekFrom::Start(1000)).unwrap();
        file.write_all(b"resumed").unwrap();
        let before = allocated_bytes(&file.metadata().unwrap());
        preallocate(&file, &path, 1 << 20).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), 1 << 20);
        assert_eq!(allocated_bytes(&meta), before);
        let mut back = [0; 7];
        file.seek(SeekFrom::Start(1000)).unwrap();
        file.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"resumed");
    }

    #[test]
    fn full_disk_fails_up_front_naming_file_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.bin");
        let file = std::fs::File::create(&path).unwrap();
        let free = crate::free_space(&path).unwrap();
        let size = free + (1 << 40);
        let err = preallocate(&file, &path, size).unwrap_err();
        assert!(err.is_disk_full(), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("huge.bin"), "{msg}");
        assert!(msg.contains("needed"), "{msg}");
        // Nothing was reserved.
        assert_eq!(file.metadata().unwrap().len(), 0);
    }
}
