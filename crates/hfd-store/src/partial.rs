//! A file being downloaded: preallocated, written at disjoint offsets by
//! several writers, hashed as its prefix fills, flushed on demand and
//! finalized atomically.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hfd_types::{ByteRange, ByteSize, ContentDigest};

use crate::backend::{self, Backend, FileWriter};
use crate::journal::{Journal, JournalHeader, journal_path};
use crate::prealloc::{Preallocation, preallocate};
use crate::probe::Probe;
use crate::resume::{JournalState, Resume, inspect_journal, remove_stale};
use crate::target_dir::{OpenMode, TargetDir};
use crate::{ContentHasher, Error, RangeSet, Result, platform};

/// Store settings.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Write backend. Default: [`Backend::Pwrite`], chosen by measurement
    /// (see `DECISION-backend.md`).
    pub backend: Backend,
    /// Size of one mapped window of the mmap backend. Default: 16 MiB.
    pub window_size: ByteSize,
    /// Reserve the file's blocks at creation (`fallocate`). Default: true.
    /// Without it the mmap backend is not used (a write to a hole on a full
    /// disk would raise SIGBUS), positioned writes are.
    pub preallocate: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Pwrite,
            window_size: ByteSize::mib(16),
            preallocate: true,
        }
    }
}

/// Ranges that became durable in one [`PartialFile::flush`]: the event a
/// journal records (the bytes are on disk before anyone hears of them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Newly durable ranges, sorted and coalesced.
    pub ranges: Vec<ByteRange>,
}

/// What finalize produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finalized {
    /// The final path the file now has.
    pub path: PathBuf,
    /// The verified digest, when one was expected.
    pub digest: Option<ContentDigest>,
}

/// Counters of the inline hasher, for tests and progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashStats {
    /// The prefix `[0, hashed_to)` is hashed.
    pub hashed_to: u64,
    /// Bytes hashed straight from write buffers.
    pub inline_bytes: u64,
    /// Bytes read back from disk to hash (written out of order).
    pub reread_bytes: u64,
    /// Times the hash restarted because bytes inside the hashed prefix were
    /// written again.
    pub restarts: u32,
}

/// A partial file under a caller-chosen unique temporary name.
///
/// Cheap to clone (shared handle). See the crate docs for the life cycle.
#[derive(Clone, Debug)]
pub struct PartialFile {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// Where the partial is, for messages.
    path: PathBuf,
    /// The folder it was opened in and its name there: every later step
    /// (journal, rename, removal) goes through the same checked handle.
    dir: TargetDir,
    rel: PathBuf,
    pub(crate) file: File,
    pub(crate) size: u64,
    backend: Backend,
    pub(crate) window_size: u64,
    expected: Option<ContentDigest>,
    tracker: Mutex<Tracker>,
    hash: Mutex<HashState>,
    /// `hashed_to`, readable without the lock (`u64::MAX` = not hashing).
    hashed_to_hint: AtomicU64,
    /// The resume journal, when there is one. Its lock also serializes
    /// flushes, so records are appended in the order their syncs finished.
    journal: Mutex<Option<Journal>>,
    /// A partial without a journal was synced once its last byte was
    /// written, on the thread that wrote it ([`Inner::sync_if_whole`]);
    /// cleared by any later write.
    synced_whole: AtomicBool,
    probe: Probe,
}

#[derive(Default)]
struct Tracker {
    written: RangeSet,
    unflushed: RangeSet,
    in_progress: Vec<ByteRange>,
}

struct HashState {
    hasher: Option<ContentHasher>,
    stats: HashStats,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartialFile")
            .field("path", &self.path)
            .field("size", &self.size)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// Empties an opened partial and reserves its `size` bytes (the journal, if
/// any, was reset first).
fn start_over(
    file: &File,
    path: &Path,
    size: u64,
    config: &StoreConfig,
    journaled: bool,
) -> Result<Preallocation> {
    let create_err = |source| Error::Create {
        path: path.to_path_buf(),
        source,
    };
    // Most partials are new and empty: no truncation to make.
    if file.metadata().map_or(true, |m| m.len() != 0) {
        file.set_len(0).map_err(create_err)?;
    }
    if !journaled && size <= SMALL_UNRESERVED {
        // A small file without a journal is written whole in one go:
        // reserving its blocks first only costs a `fallocate` per file of a
        // dataset (a full disk still fails the write).
        return Ok(Preallocation::Sparse);
    }
    if config.preallocate {
        return preallocate(file, path, size);
    }
    file.set_len(size).map_err(create_err)?;
    Ok(Preallocation::Sparse)
}

/// Up to this size a partial without a journal is not preallocated.
const SMALL_UNRESERVED: u64 = 1 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain bookkeeping data that is
    // still consistent enough to report from; do not cascade the panic.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PartialFile {
    /// Creates (or truncates) the partial file at `path`, locks it against
    /// other processes and preallocates `size` bytes.
    ///
    /// `expected`, when given, turns on inline hashing with its algorithm;
    /// [`finalize`](Self::finalize) then refuses a mismatching file.
    /// `path` must be a unique temporary name chosen by the caller, never the
    /// final name nor `<final>.incomplete`.
    pub fn create(
        path: &Path,
        size: u64,
        expected: Option<ContentDigest>,
        config: &StoreConfig,
    ) -> Result<Self> {
        let (dir, rel) = split_path(path)?;
        Self::open_inner(&dir, &rel, size, expected, config, None, Probe::default()).map(|(p, _)| p)
    }

    /// Opens the partial file at `path` for resuming, or creates it.
    ///
    /// With `journal` (the file's identity and the run's layout), the
    /// journal at [`journal_path`]`(path)` is read: when its header is intact,
    /// its identity has the same content ([`FileIdentity::same_content`](crate::FileIdentity::same_content)) and
    /// the partial exists with length `size`, the partial is kept, its torn
    /// journal tail (if any) is cut, the journaled ranges count as written
    /// and the inline hash is rebuilt over their contiguous prefix (read back
    /// from disk). Otherwise a `warn` says why (when a journal existed), a new
    /// journal is started and synced, and only then is the partial truncated
    /// and preallocated, so no old record can describe new bytes.
    ///
    /// Without `journal` this is [`create`](Self::create), and a stale
    /// journal next to `path` is removed before the partial is truncated.
    ///
    /// From then on every [`flush`](Self::flush) appends the newly durable
    /// ranges to the journal after they are synced. Blocking.
    pub fn open_or_create(
        path: &Path,
        size: u64,
        expected: Option<ContentDigest>,
        config: &StoreConfig,
        journal: Option<JournalHeader>,
    ) -> Result<(Self, Resume)> {
        let (dir, rel) = split_path(path)?;
        Self::open_inner(
            &dir,
            &rel,
            size,
            expected,
            config,
            journal,
            Probe::default(),
        )
    }

    /// [`open_or_create`](Self::open_or_create) for the partial `rel` inside
    /// the target folder `dir`: the partial, its journal and (with
    /// [`finalize_in`](Self::finalize_in)) its final name are reached through
    /// `dir` without following any symbolic link; a link planted at any of
    /// those names (or at a folder on the way) is refused with
    /// [`Error::Symlink`] and nothing outside `dir` is touched.
    pub fn open_or_create_in(
        dir: &TargetDir,
        rel: &Path,
        size: u64,
        expected: Option<ContentDigest>,
        config: &StoreConfig,
        journal: Option<JournalHeader>,
    ) -> Result<(Self, Resume)> {
        Self::open_inner(dir, rel, size, expected, config, journal, Probe::default())
    }

    pub(crate) fn open_inner(
        dir: &TargetDir,
        rel: &Path,
        size: u64,
        expected: Option<ContentDigest>,
        config: &StoreConfig,
        journal: Option<JournalHeader>,
        probe: Probe,
    ) -> Result<(Self, Resume)> {
        let path = &dir.display_path(rel);
        check_identity_size(path, journal.as_ref(), size)?;
        // Only a journal's verdict needs the length the partial had before
        // this run: a partial without one starts from zero anyway.
        let previous_len = match (&journal, journal.as_ref().map(|_| dir.entry(rel))) {
            (Some(_), Some(Ok(Some(crate::EntryKind::File { len })))) => Some(len),
            _ => None,
        };
        let file = open_locked(dir, rel)?;
        let jrel = journal_path(rel);
        let (mut state, resume_from) = match &journal {
            Some(header) => inspect_journal(path, dir, &jrel, header, previous_len, size)?,
            None => (JournalState::Off, None),
        };
        let (journal, resumed, how) = if let Some((jfile, decoded)) = resume_from {
            let how = if config.preallocate {
                // Already allocated blocks are kept; this only reserves what
                // is missing (and fails clearly on a full disk).
                preallocate(&file, path, size)?
            } else {
                Preallocation::Sparse
            };
            let journal =
                Journal::resume(&dir.display_path(&jrel), jfile, &decoded, probe.clone())?;
            let mut ranges = RangeSet::new();
            for r in &decoded.ranges {
                ranges.insert(*r);
            }
            tracing::info!(
                file = %path.display(),
                resumed_bytes = ranges.total(),
                dropped_tail_bytes = decoded.dropped_bytes,
                "resuming from journal"
            );
            state = JournalState::Resumed {
                dropped_bytes: decoded.dropped_bytes,
                tail_defect: decoded.tail_defect,
            };
            (Some(journal), ranges, how)
        } else {
            // The journal goes first: once it is reset (synced), no record
            // can describe the bytes about to be truncated.
            let journal = if let Some(header) = journal {
                Some(Journal::create(dir, &jrel, &header, probe.clone())?)
            } else {
                remove_stale(dir, &jrel)?;
                None
            };
            probe.data_reset();
            let how = start_over(&file, path, size, config, journal.is_some())?;
            (journal, RangeSet::new(), how)
        };
        let backend = match (config.backend, how) {
            (Backend::Mmap, Preallocation::Allocated) => Backend::Mmap,
            _ => Backend::Pwrite,
        };
        let hasher = expected.as_ref().map(|d| ContentHasher::like(d, size));
        let hint = if hasher.is_some() { 0 } else { u64::MAX };
        tracing::debug!(file = %path.display(), size, ?backend, ?how, "partial file opened");
        let partial = Self {
            inner: Arc::new(Inner {
                path: path.clone(),
                dir: dir.clone(),
                rel: rel.to_path_buf(),
                file,
                size,
                backend,
                window_size: config.window_size.bytes().max(1 << 16),
                expected,
                tracker: Mutex::new(Tracker {
                    written: resumed.clone(),
                    ..Tracker::default()
                }),
                hash: Mutex::new(HashState {
                    hasher,
                    stats: HashStats::default(),
                }),
                hashed_to_hint: AtomicU64::new(hint),
                journal: Mutex::new(journal),
                synced_whole: AtomicBool::new(false),
                probe,
            }),
        };
        if !resumed.is_empty() {
            // Rebuild the inline hash over the resumed prefix now, so new
            // in-order writes are hashed from their buffers again.
            partial.inner.advance_hash()?;
        }
        Ok((
            partial,
            Resume {
                ranges: resumed,
                journal: state,
            },
        ))
    }

    /// The journal's path, when the partial has a journal.
    pub fn journal_path(&self) -> Option<PathBuf> {
        lock(&self.inner.journal)
            .as_ref()
            .map(|j| j.path().to_path_buf())
    }

    /// The partial file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The file size.
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// The backend in use (positioned writes when mmap was asked for but the
    /// file could not be preallocated).
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// A new writer. Each concurrent writer needs its own.
    pub fn writer(&self) -> Box<dyn FileWriter> {
        backend::writer(self.inner.backend, Arc::clone(&self.inner))
    }

    /// Ranges whose writes have completed (not necessarily durable).
    pub fn written(&self) -> RangeSet {
        lock(&self.inner.tracker).written.clone()
    }

    /// Whether every byte has been written.
    pub fn is_complete(&self) -> bool {
        self.missing_bytes() == 0
    }

    fn missing_bytes(&self) -> u64 {
        self.inner.size - lock(&self.inner.tracker).written.total()
    }

    /// Starts writing the file's dirty pages back to disk without waiting
    /// for them (Linux `sync_file_range`; nothing elsewhere), so the next
    /// [`flush`](Self::flush) finds few dirty pages: commits stay cheap
    /// when the kernel's dirty-page limits would otherwise turn each one into
    /// a burst of synchronous writeback. A hint; durability is `flush`'s.
    /// Blocking (it may wait for the device queue): keep it off the writers.
    pub fn start_writeback(&self) {
        platform::start_writeback(&self.inner.file, 0, self.inner.size);
    }

    /// Makes the bytes written so far durable without journaling them (the
    /// next [`flush`](Self::flush) records them): Linux `fdatasync`, nothing
    /// elsewhere. A disk with a volatile write cache makes a sync cost
    /// about as much as the bytes written since the previous one, even when
    /// their writeback is done (1 ms per MiB here: 0.1 s for the last sync
    /// of a 96 MiB file without one, decision 0075); syncing behind the
    /// writers keeps a file's last sync, which its download waits for,
    /// short. Blocking: keep it off the writers.
    pub fn sync_behind(&self) -> Result<()> {
        let inner = &self.inner;
        inner.probe.sync_start();
        platform::sync_behind(&inner.file).map_err(|source| Error::Flush {
            path: inner.path.clone(),
            source,
        })?;
        inner.probe.sync_done();
        Ok(())
    }

    /// Makes every completed write durable (`fdatasync`, which on Linux also
    /// covers pages dirtied through mappings) and returns the ranges that
    /// became durable since the previous flush. With a journal, those ranges
    /// are then appended to it and the journal is synced (one group commit);
    /// a record is never written before its bytes are durable. Blocking.
    pub fn flush(&self) -> Result<Flushed> {
        let inner = &self.inner;
        let mut journal = lock(&inner.journal);
        let snapshot = {
            let mut tracker = lock(&inner.tracker);
            inner.probe.sync_start();
            tracker.unflushed.take()
        };
        let restore = |snapshot: &RangeSet| {
            let mut tracker = lock(&inner.tracker);
            for r in snapshot.ranges() {
                tracker.unflushed.insert(*r);
            }
        };
        if let Err(source) = inner.file.sync_data() {
            restore(&snapshot);
            return Err(Error::Flush {
                path: inner.path.clone(),
                source,
            });
        }
        inner.probe.sync_done();
        if let Some(journal) = journal.as_mut()
            && let Err(e) = journal.append(snapshot.ranges())
        {
            // Durable but not recorded: record them with the next flush.
            restore(&snapshot);
            return Err(e);
        }
        Ok(Flushed {
            ranges: snapshot.ranges().to_vec(),
        })
    }

    /// Extends the hashed prefix over bytes written out of order, reading
    /// back from disk only bytes that were not hashed when written. Returns
    /// the new end of the hashed prefix. Blocking; cheap when there is
    /// nothing to do.
    pub fn advance_hash(&self) -> Result<u64> {
        self.inner.advance_hash()
    }

    /// Whether bytes written right after the hashed prefix wait for
    /// [`advance_hash`](Self::advance_hash) (written out of order). Cheap,
    /// never blocks on the disk: a file written in order (every small file)
    /// is hashed as it is written and needs no pass.
    pub fn hash_is_behind(&self) -> bool {
        let hashed_to = self.inner.hashed_to_hint.load(Ordering::Acquire);
        hashed_to != u64::MAX
            && lock(&self.inner.tracker)
                .written
                .run_end_from(hashed_to)
                .is_some()
    }

    /// Whether [`finalize_in`](Self::finalize_in) to `final_rel` would do
    /// no I/O: the partial was synced whole by its last write, is hashed to
    /// its end, and is published from where it is (`final_rel` is its own
    /// name). Then it may run on an async thread.
    pub fn finalizes_in_memory(&self, final_rel: &Path) -> bool {
        self.inner.synced_whole.load(Ordering::Acquire)
            && final_rel == self.inner.rel
            && !self.hash_is_behind()
    }

    /// The inline hasher's counters.
    pub fn hash_stats(&self) -> HashStats {
        lock(&self.inner.hash).stats
    }

    /// Verifies and publishes the file: checks it is complete, finishes the
    /// hash and compares it with the expected digest, `fsync`s, renames the
    /// partial to `final_path` and `fsync`s the directory. Blocking. A
    /// `final_path` that is the partial's own path is not renamed: the
    /// caller publishes the verified partial from where it is.
    ///
    /// On a mismatch the partial stays where it is and
    /// [`Error::DigestMismatch`] names it; nothing appears at `final_path`.
    pub fn finalize(self, final_path: &Path) -> Result<Finalized> {
        let digest = self.verify_and_sync()?;
        let inner = &self.inner;
        if final_path != inner.path {
            platform::rename_durable(&inner.path, final_path).map_err(|source| Error::Rename {
                from: inner.path.clone(),
                to: final_path.to_path_buf(),
                source,
            })?;
        }
        self.drop_journal();
        tracing::debug!(file = %final_path.display(), "finalized");
        Ok(Finalized {
            path: final_path.to_path_buf(),
            digest,
        })
    }

    /// [`finalize`](Self::finalize) to `final_rel` inside the target folder
    /// the partial was opened in ([`open_or_create_in`](Self::open_or_create_in)).
    /// The rename replaces whatever is at `final_rel` (a planted link is
    /// replaced, not followed) and is durable when this returns.
    pub fn finalize_in(self, final_rel: &Path) -> Result<Finalized> {
        let digest = self.verify_and_sync()?;
        let inner = &self.inner;
        // The bytes were synced above: the folder's sync can wait for the
        // batch (a crash before it leaves the file under its partial name).
        // A partial published from where it is (its final name is its own)
        // stays.
        if final_rel != inner.rel {
            inner.dir.rename_batched(&inner.rel, final_rel)?;
        }
        self.drop_journal();
        let path = inner.dir.display_path(final_rel);
        tracing::debug!(file = %path.display(), "finalized");
        Ok(Finalized { path, digest })
    }

    /// Throws the partial away: its journal, then its name, are removed
    /// while this handle still holds the partial's lock, so no other process
    /// can resume bytes that failed their check. For a file whose bytes
    /// failed verification (or a download asked to start over); the next
    /// open starts from zero. Blocking.
    pub fn discard(&self) -> Result<()> {
        let inner = &self.inner;
        // The journal goes first: a crash in between leaves a partial
        // without journal, which is never resumed.
        drop(lock(&inner.journal).take());
        remove_stale(&inner.dir, &journal_path(&inner.rel))?;
        inner.dir.remove_file(&inner.rel)?;
        tracing::info!(file = %inner.path.display(), "partial and journal discarded");
        Ok(())
    }

    /// Discards the partial at `path` and its journal, if any (see
    /// [`discard`](Self::discard)): `--force` and repairs start over instead
    /// of resuming. Refuses with [`Error::Locked`] a partial another process
    /// is writing; follows no link. Returns whether anything was there.
    /// Blocking.
    pub fn discard_at(path: &Path) -> Result<bool> {
        if !path
            .parent()
            .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir())
        {
            return Ok(false);
        }
        let (dir, rel) = split_path(path)?;
        let jrel = journal_path(&rel);
        let partial = matches!(dir.entry(&rel), Ok(Some(_)));
        let journal = matches!(dir.entry(&jrel), Ok(Some(_)));
        if !partial && !journal {
            return Ok(false);
        }
        // Holding the lock while removing: a concurrent writer is refused,
        // never robbed of its file.
        let file = open_locked(&dir, &rel)?;
        remove_stale(&dir, &jrel)?;
        dir.remove_file(&rel)?;
        drop(file);
        tracing::info!(file = %path.display(), "partial and journal discarded");
        Ok(true)
    }

    /// Checks completeness and the digest, then makes the file durable.
    fn verify_and_sync(&self) -> Result<Option<ContentDigest>> {
        let inner = &self.inner;
        let missing = self.missing_bytes();
        if missing > 0 {
            return Err(Error::Incomplete {
                path: inner.path.clone(),
                missing,
            });
        }
        inner.advance_hash()?;
        let digest = {
            let state = lock(&inner.hash);
            state.hasher.clone().map(ContentHasher::finish)
        };
        if let (Some(expected), Some(actual)) = (inner.expected, digest)
            && expected != actual
        {
            return Err(Error::DigestMismatch {
                path: inner.path.clone(),
                expected,
                actual,
            });
        }
        if !inner.synced_whole.load(Ordering::Acquire) {
            inner.file.sync_all().map_err(|source| Error::Flush {
                path: inner.path.clone(),
                source,
            })?;
        }
        Ok(digest)
    }

    /// The partial is gone; its journal has nothing left to describe. A
    /// crash before this leaves an orphan journal, which the next open
    /// discards (its partial is missing).
    fn drop_journal(&self) {
        let inner = &self.inner;
        if let Some(journal) = lock(&inner.journal).take() {
            drop(journal);
            let jrel = journal_path(&inner.rel);
            if let Err(error) = inner.dir.remove_file(&jrel) {
                tracing::warn!(journal = %inner.dir.display_path(&jrel).display(), %error, "cannot remove the journal of a finished file");
            }
        }
    }
}

impl Inner {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Registers a write about to happen; refuses out-of-bounds and
    /// overlapping-in-progress writes. The returned guard must be completed.
    pub(crate) fn begin_write(&self, offset: u64, len: u64) -> Result<Option<ByteRange>> {
        let Some(range) = ByteRange::with_len(offset, len) else {
            if len == 0 {
                return Ok(None);
            }
            return Err(Error::OutOfBounds {
                path: self.path.clone(),
                range: ByteRange::new(offset, u64::MAX)
                    .unwrap_or_else(|| ByteRange::new(u64::MAX - 1, u64::MAX).expect("non-empty")),
                size: self.size,
            });
        };
        if range.end() > self.size {
            return Err(Error::OutOfBounds {
                path: self.path.clone(),
                range,
                size: self.size,
            });
        }
        let mut tracker = lock(&self.tracker);
        if tracker
            .in_progress
            .iter()
            .any(|r| r.start() < range.end() && range.start() < r.end())
        {
            return Err(Error::OverlappingWrite {
                path: self.path.clone(),
                range,
            });
        }
        tracker.in_progress.push(range);
        Ok(Some(range))
    }

    /// Forgets a write that failed.
    pub(crate) fn abort_write(&self, range: ByteRange) {
        let mut tracker = lock(&self.tracker);
        tracker.in_progress.retain(|r| *r != range);
    }

    /// Records a completed write of `parts` (one after the other, `range`
    /// in all) and hashes it inline when it extends the hashed prefix.
    pub(crate) fn end_write(&self, range: ByteRange, parts: &[&[u8]]) {
        self.synced_whole.store(false, Ordering::Release);
        let hint = self.hashed_to_hint.load(Ordering::Acquire);
        // A write that may extend the hashed prefix is recorded under the
        // hash lock: otherwise an `advance_hash` running meanwhile could read
        // it back and move the prefix past it, and it would then look like
        // a rewrite of hashed bytes (and start the hash over).
        let state = (hint != u64::MAX && range.start() <= hint).then(|| lock(&self.hash));
        {
            let mut tracker = lock(&self.tracker);
            tracker.in_progress.retain(|r| *r != range);
            tracker.written.insert(range);
            tracker.unflushed.insert(range);
            self.probe.data_write(range);
        }
        let Some(mut state) = state else {
            return;
        };
        let hashed_to = state.stats.hashed_to;
        if range.start() < hashed_to {
            // Bytes inside the hashed prefix changed: start over (rare: a
            // single-stream fallback rewriting from byte 0).
            state.hasher = self
                .expected
                .as_ref()
                .map(|d| ContentHasher::like(d, self.size));
            state.stats.hashed_to = 0;
            state.stats.restarts += 1;
            self.hashed_to_hint.store(0, Ordering::Release);
            if range.start() > 0 {
                return;
            }
        } else if range.start() != hashed_to {
            return;
        }
        if let Some(hasher) = state.hasher.as_mut() {
            for part in parts {
                hasher.update(part);
            }
            state.stats.hashed_to = range.end();
            state.stats.inline_bytes += range.size();
            self.hashed_to_hint.store(range.end(), Ordering::Release);
        }
    }

    /// After a write: a partial without a journal that is now whole is
    /// synced at once, on the blocking thread that wrote its last bytes, so
    /// finalizing it needs no blocking hand-off of its own
    /// ([`PartialFile::finalizes_in_memory`]). A failed sync is left to the
    /// finalize, which syncs again and reports it.
    pub(crate) fn sync_if_whole(&self) {
        let whole = {
            let tracker = lock(&self.tracker);
            tracker.in_progress.is_empty() && tracker.written.total() == self.size
        };
        if !whole || lock(&self.journal).is_some() {
            return;
        }
        if self.file.sync_all().is_ok() {
            self.synced_whole.store(true, Ordering::Release);
        }
    }

    fn advance_hash(&self) -> Result<u64> {
        // Small enough that the mapped pages add little to RSS.
        const READ_CHUNK: u64 = 2 << 20;
        let mut state = lock(&self.hash);
        if state.hasher.is_none() {
            return Ok(state.stats.hashed_to);
        }
        let mut buf = Vec::new();
        loop {
            let from = state.stats.hashed_to;
            let Some(run_end) = lock(&self.tracker).written.run_end_from(from) else {
                break;
            };
            let to = run_end.min(from + READ_CHUNK);
            let range = ByteRange::new(from, to).expect("run end lies past its start");
            let hasher = state.hasher.as_mut().expect("checked above");
            if backend::mmap::read_mapped(self, range, |bytes| hasher.update(bytes)).is_err() {
                // A filesystem that cannot map: read a copy.
                buf.resize(range.size() as usize, 0);
                platform::read_exact_at(&self.file, &mut buf, from).map_err(|source| {
                    Error::Read {
                        path: self.path.clone(),
                        range,
                        source,
                    }
                })?;
                hasher.update(&buf);
            }
            state.stats.hashed_to = to;
            state.stats.reread_bytes += range.size();
            self.hashed_to_hint.store(to, Ordering::Release);
        }
        Ok(state.stats.hashed_to)
    }
}

/// Refuses a journal header whose identity has another size than the file.
fn check_identity_size(path: &Path, journal: Option<&JournalHeader>, size: u64) -> Result<()> {
    match journal {
        Some(header) if header.identity.size != size => Err(Error::IdentityMismatch {
            path: path.to_path_buf(),
            identity_size: header.identity.size,
            size,
        }),
        _ => Ok(()),
    }
}

/// Opens (or creates) `rel` in `dir` without truncating it or following a
/// link, and takes the exclusive lock that makes the file ours.
fn open_locked(dir: &TargetDir, rel: &Path) -> Result<File> {
    let path = dir.display_path(rel);
    let file = dir
        .open_own_file(rel, OpenMode::CreateOrOpen)
        .map_err(|e| match e {
            Error::Dir { source, .. } => Error::Create {
                path: path.clone(),
                source,
            },
            other => other,
        })?;
    match platform::try_lock(&file) {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Create { path, source }),
    }
}

/// The folder of a partial given by path (opened as a target folder) and
/// its name there.
fn split_path(path: &Path) -> Result<(TargetDir, PathBuf)> {
    let create_err = |source| Error::Create {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| create_err(std::io::ErrorKind::InvalidInput.into()))?;
    let parent = path.parent().unwrap_or(Path::new(""));
    let dir = TargetDir::open(parent).map_err(|e| match e {
        Error::Dir { source, .. } => create_err(source),
        other => other,
    })?;
    Ok((dir, PathBuf::from(name)))
}

#[cfg(test)]
mod tests {
    use super::{PartialFile, StoreConfig};
    use crate::Error;

    #[test]
    fn overlapping_writes_in_progress_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let partial =
            PartialFile::create(&dir.path().join("p"), 100, None, &StoreConfig::default()).unwrap();
        let inner = &partial.inner;
        let first = inner.begin_write(10, 20).unwrap().unwrap();
        let err = inner.begin_write(29, 5).unwrap_err();
        assert!(matches!(err, Error::OverlappingWrite { .. }), "{err:?}");
        // Adjacent is fine.
        let second = inner.begin_write(30, 5).unwrap().unwrap();
        inner.end_write(first, &[&[0; 20]]);
        inner.abort_write(second);
        // Once the first write is done, its bytes may be written again.
        let again = inner.begin_write(10, 20).unwrap().unwrap();
        inner.end_write(again, &[&[0; 20]]);
        assert!(inner.begin_write(0, 0).unwrap().is_none());
    }

    /// A partial without a journal is synced by the write that makes it
    /// whole: finalizing it under its own name needs no I/O; a later write
    /// (a rewrite) takes that back until the file is whole again.
    #[test]
    fn a_whole_unjournaled_partial_finalizes_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let content = b"hello, small file";
        let expected =
            crate::ContentHasher::digest_like(&hfd_types::ContentDigest::Sha256([0; 32]), content);
        let target = crate::TargetDir::open(dir.path()).unwrap();
        let rel = std::path::Path::new("f.part");
        let (partial, _) = PartialFile::open_or_create_in(
            &target,
            rel,
            content.len() as u64,
            Some(expected),
            &StoreConfig::default(),
            None,
        )
        .unwrap();
        let mut writer = partial.writer();
        writer.write_at(0, &content[..5]).unwrap();
        assert!(!partial.finalizes_in_memory(rel), "not whole yet");
        writer.write_at(5, &content[5..]).unwrap();
        assert!(partial.finalizes_in_memory(rel), "synced by its last write");
        assert!(
            !partial.finalizes_in_memory(std::path::Path::new("other")),
            "a rename is I/O"
        );
        // A rewrite of the start restarts the inline hash: the rest must be
        // read back, which is I/O.
        writer.write_at(0, &content[..5]).unwrap();
        assert!(
            !partial.finalizes_in_memory(rel),
            "hash behind after a rewrite"
        );
        drop(writer);
        let done = partial.finalize_in(rel).unwrap();
        assert_eq!(done.digest, Some(expected));
        assert_eq!(std::fs::read(dir.path().join(rel)).unwrap(), content);
    }
}
