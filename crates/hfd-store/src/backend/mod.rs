//! How body bytes reach a partial file: one writer type per backend over
//! the shared bookkeeping of [`PartialFile`](crate::PartialFile).

use std::fmt;
use std::sync::Arc;

use crate::Result;
use crate::partial::Inner;

pub(crate) mod mmap;
mod pwrite;

/// How body bytes reach the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Copy into a memory-mapped window of the file (memmap2). Each writer
    /// maps one window of [`StoreConfig::window_size`](crate::StoreConfig::window_size) at a time and unmaps
    /// it when it moves on.
    Mmap,
    /// Positioned writes (`pwrite`).
    Pwrite,
}

/// One writer's handle on a [`PartialFile`](crate::PartialFile). Several writers write disjoint
/// ranges of one file from different threads; each writes its bytes
/// sequentially for best effect (the mmap backend keeps one window mapped).
///
/// Writes are blocking: call them from a blocking thread, not an async task.
pub trait FileWriter: Send + Sync + fmt::Debug {
    /// Copies `data` to `offset`. Fails without touching the file if the
    /// range leaves the file or overlaps another writer's write in progress.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()>;

    /// Copies `parts`, which follow each other from `offset`, as
    /// [`write_at`](Self::write_at) would their concatenation. The pwrite
    /// backend checks the whole run first and writes it with one vectored
    /// write (a write batch's frames: one system call and one take of the
    /// file's write lock instead of one per frame); the mmap backend copies
    /// part by part, so a part it refuses leaves the ones before it written.
    fn write_parts_at(&mut self, offset: u64, parts: &[&[u8]]) -> Result<()> {
        let mut at = offset;
        for part in parts {
            self.write_at(at, part)?;
            at += part.len() as u64;
        }
        Ok(())
    }

    /// Drops any mapping the writer holds (the mmap window). Writing again
    /// afterwards maps a new one. Dropping the writer does the same.
    fn release(&mut self);
}

/// A new writer of `backend` on the file of `inner`.
pub(crate) fn writer(backend: Backend, inner: Arc<Inner>) -> Box<dyn FileWriter> {
    match backend {
        Backend::Mmap => Box::new(mmap::MmapWriter::new(inner)),
        Backend::Pwrite => Box::new(pwrite::PwriteWriter::new(inner)),
    }
}
