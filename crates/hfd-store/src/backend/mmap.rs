//! The mmap backend: the only module of the workspace with `unsafe` code
//! besides the OS calls in `platform/`.
//!
//! A writer maps one window of the file at a time (`StoreConfig::window_size`),
//! copies body bytes into it and unmaps it when the next write falls outside,
//! so mapped pages never pile up in RSS: resident memory is bounded by one
//! window per writer, whatever the file size.
//!
//! [`read_mapped`] lends the hasher bytes written out of order straight from
//! the page cache (whatever the write backend), instead of copying them into
//! a buffer with `pread`: that copy was an eighth of a TLS download's CPU.
//!
//! Invariants the `unsafe` relies on (checked where they are established):
//!
//! 1. The file is ours: created by [`PartialFile::create`](crate::PartialFile::create),
//!    locked with an exclusive advisory lock for its whole life, and
//!    preallocated with `fallocate` (the mmap backend is never chosen for a
//!    sparse file), so pages cannot vanish (no SIGBUS from truncation or
//!    ENOSPC). Another process changing the file is out of contract, as for
//!    every mmap-based tool.
//! 2. No two writes to the same bytes run at once: `Inner::begin_write`
//!    refuses a write overlapping one in progress before any byte is copied.
//!    Windows of different writers may share a page, but never a byte being
//!    written.
//! 3. A window never extends past the file's preallocated length.
#![allow(unsafe_code)]

use std::sync::Arc;

use hfd_types::ByteRange;
use memmap2::{Mmap, MmapMut, MmapOptions};

use super::FileWriter;
use crate::partial::Inner;
use crate::{Error, Result};

/// One mapped window `[start, start + map.len())` of a partial file.
struct Window {
    start: u64,
    map: MmapMut,
}

impl Window {
    fn end(&self) -> u64 {
        self.start + self.map.len() as u64
    }
}

/// Maps `range` of the partial read-only and hands its bytes to `f`, then
/// unmaps it (so the pages leave RSS again).
pub(crate) fn read_mapped<T>(
    inner: &Inner,
    range: ByteRange,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T> {
    debug_assert!(range.end() <= inner.size, "invariant 3");
    // SAFETY: invariant 1 (the file is ours, locked, `size` long) and 3
    // (`range` lies inside the file: the caller reads back written bytes).
    // Only bytes already written are read; the plan never hands out written
    // bytes again (only the single-stream fallback rewrites from byte 0,
    // with the same content, and restarts the hash), so nothing changes
    // under `f`.
    let map = unsafe {
        MmapOptions::new()
            .offset(range.start())
            .len(range.size() as usize)
            .map(&inner.file)
    }
    .map_err(|source| Error::Map {
        path: inner.path().to_path_buf(),
        range,
        source,
    })?;
    let out = f(&map);
    drop::<Mmap>(map);
    Ok(out)
}

/// A writer of the mmap backend.
pub(crate) struct MmapWriter {
    inner: Arc<Inner>,
    window: Option<Window>,
}

impl std::fmt::Debug for MmapWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MmapWriter")
            .field("file", &self.inner.path())
            .field("window", &self.window.as_ref().map(|w| (w.start, w.end())))
            .finish()
    }
}

impl MmapWriter {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self {
            inner,
            window: None,
        }
    }

    /// Maps the window starting at `offset` (up to the window size, never past
    /// the end of the file), unmapping the previous one first.
    fn map_at(&mut self, offset: u64) -> Result<&mut Window> {
        self.window = None; // unmap before mapping the next window
        let len = self.inner.window_size.min(self.inner.size - offset);
        let range = ByteRange::with_len(offset, len).expect("offset lies inside the file");
        // SAFETY: invariant 1 (file ours, locked, preallocated to `size`) and
        // invariant 3 (`offset + len <= size`, computed just above). The
        // mapping is MAP_SHARED and only written through `copy`, whose ranges
        // satisfy invariant 2.
        let map = unsafe {
            MmapOptions::new()
                .offset(offset)
                .len(len as usize)
                .map_mut(&self.inner.file)
        }
        .map_err(|source| Error::Map {
            path: self.inner.path().to_path_buf(),
            range,
            source,
        })?;
        Ok(self.window.insert(Window { start: offset, map }))
    }

    fn copy(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let window = match &mut self.window {
                Some(w) if w.start <= pos && pos < w.end() => w,
                _ => self.map_at(pos)?,
            };
            let at = (pos - window.start) as usize;
            let n = (data.len() - done).min(window.map.len() - at);
            window.map[at..at + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }
}

impl FileWriter for MmapWriter {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        let Some(range) = self.inner.begin_write(offset, data.len() as u64)? else {
            return Ok(());
        };
        match self.copy(offset, data) {
            Ok(()) => {
                self.inner.end_write(range, &[data]);
                Ok(())
            }
            Err(e) => {
                self.inner.abort_write(range);
                Err(e)
            }
        }
    }

    fn release(&mut self) {
        self.window = None;
    }
}
