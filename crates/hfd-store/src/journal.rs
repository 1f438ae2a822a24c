//! The resume journal: which bytes of a partial file are durable.
//!
//! One journal per partial file, at [`journal_path`] (`<partial>.journal`).
//! It is append-only and versioned; the byte format is specified in
//! `docs/journal-format.md` (keep the two in step, and bump
//! [`JOURNAL_VERSION`] with an old-format fixture for any change).
//!
//! ```text
//! header:  magic "HFDJRNL\0" | version u16 | flags u16 | body_len u32 | body | blake3(all before) [32]
//! record:  kind u8 = 1 | 7 zero bytes | start u64 | end u64 | keyed_blake3(header hash, first 24 bytes)[..16]
//! ```
//!
//! A record is appended only after the bytes it names were made durable
//! (`fdatasync` of the partial), and the journal is synced after each group
//! of records (group commit: one write and one sync per flush, whatever the
//! number of ranges). Decoding stops at the first record that is short,
//! zeroed, fails its checksum or names bytes outside the file: that is a
//! torn tail from a crash, and it and everything after it are dropped.
//! Records are keyed with the hash of their own header, which includes a
//! per-journal random nonce, so a record can never validate against another
//! journal (or a previous incarnation of this one).
//!
//! [`decode`] is pure and total (never panics, whatever the input), for
//! fuzzing.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use hfd_types::ByteRange;

use crate::probe::Probe;
use crate::resume::journal_err;
use crate::target_dir::{OpenMode, TargetDir};
use crate::{Error, Result, platform};

/// First bytes of every journal.
pub const JOURNAL_MAGIC: [u8; 8] = *b"HFDJRNL\0";
/// The format version this crate writes (and the newest it reads).
pub const JOURNAL_VERSION: u16 = 1;
/// Bytes of one record.
pub const RECORD_LEN: usize = 40;
/// Largest header body accepted (the identity strings are short).
const MAX_BODY_LEN: usize = 64 * 1024;
/// Bytes of the fixed header prefix before the body.
const PREFIX_LEN: usize = 16;
/// Bytes of the header checksum.
const HASH_LEN: usize = 32;
/// Record kind: "this range is durable".
const KIND_RANGE: u8 = 1;
/// Bytes of a record's truncated checksum.
const CHECK_LEN: usize = 16;

/// What a journal belongs to: the file's identity on the hub.
///
/// Two identities describe the same content — and a journal may be resumed —
/// when [`same_content`](Self::same_content) holds: equal size and equal
/// content id (`etag`: the LFS sha256 or the git blob sha1, which is what
/// the hub's ETag is). `repo`, `commit` and `path` are recorded for people
/// and tools reading the journal; they are not compared, so the same file at
/// a newer commit (or under a renamed repo) still resumes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileIdentity {
    /// Repository id, e.g. `org/name` (informational).
    pub repo: String,
    /// Commit the download was planned at (informational).
    pub commit: String,
    /// Path of the file in the repository (informational).
    pub path: String,
    /// Exact size in bytes.
    pub size: u64,
    /// Content id: normalized ETag (64-hex sha256 for LFS files, 40-hex git
    /// blob sha1 for regular files).
    pub etag: String,
}

impl FileIdentity {
    /// An identity.
    pub fn new(
        repo: impl Into<String>,
        commit: impl Into<String>,
        path: impl Into<String>,
        size: u64,
        etag: impl Into<String>,
    ) -> Self {
        Self {
            repo: repo.into(),
            commit: commit.into(),
            path: path.into(),
            size,
            etag: etag.into(),
        }
    }

    /// Whether `other` names the same bytes (size and content id match).
    pub fn same_content(&self, other: &Self) -> bool {
        self.size == other.size && self.etag == other.etag
    }
}

/// How the download that created the journal cut the file. Informational:
/// a resume may use other settings (records are plain byte ranges).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentLayout {
    /// Smallest segment size (`-k`), in bytes.
    pub segment_size: u64,
    /// Connections per file (`-x`).
    pub connections: u32,
}

impl SegmentLayout {
    /// A layout.
    pub fn new(segment_size: u64, connections: u32) -> Self {
        Self {
            segment_size,
            connections,
        }
    }
}

/// The header of a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalHeader {
    /// Format version it was written with.
    pub version: u16,
    /// The file the journal describes.
    pub identity: FileIdentity,
    /// How the creating run cut the file.
    pub layout: SegmentLayout,
    /// Random per journal: binds records to this journal instance.
    pub nonce: [u8; 16],
}

impl JournalHeader {
    /// A header for a new journal, with a fresh nonce.
    pub fn new(identity: FileIdentity, layout: SegmentLayout) -> Self {
        Self {
            version: JOURNAL_VERSION,
            identity,
            layout,
            nonce: fresh_nonce(),
        }
    }
}

/// Why a journal cannot be used at all (its header is unreadable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderDefect {
    /// Fewer bytes than a header.
    #[error("journal is truncated inside its header")]
    Truncated,
    /// Not a journal (or zeroed).
    #[error("journal has no magic number")]
    BadMagic,
    /// Written by a newer (or unknown) format version.
    #[error("journal format version {0} is not supported")]
    UnsupportedVersion(u16),
    /// The header checksum does not match.
    #[error("journal header checksum mismatch")]
    Checksum,
    /// The header is well-formed on the outside but its body is not.
    #[error("journal header is malformed: {0}")]
    Malformed(&'static str),
}

/// Why decoding stopped before the end of the bytes (the dropped tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordDefect {
    /// The last record is cut short (torn append).
    Truncated,
    /// The record is all zeros (space allocated, data never written).
    Zeroed,
    /// The checksum does not match (torn or garbage).
    Checksum,
    /// A checksummed record of an unknown kind or with non-zero padding.
    UnknownKind,
    /// A checksummed record whose range is empty or outside the file.
    OutOfBounds,
}

/// A decoded journal.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodedJournal {
    /// The header.
    pub header: JournalHeader,
    /// Durable ranges, in record order (may overlap or touch).
    pub ranges: Vec<ByteRange>,
    /// Bytes of the header plus every valid record: where the next record
    /// goes once the tail is cut.
    pub valid_len: u64,
    /// Bytes after `valid_len` that were dropped.
    pub dropped_bytes: u64,
    /// Why the tail was dropped, when it was.
    pub tail_defect: Option<RecordDefect>,
}

/// Decodes a journal. Total: any input gives a result, never a panic.
///
/// The header must be intact (else the whole journal is unusable); records
/// are read until the first bad one, which with everything after it is the
/// dropped tail.
pub fn decode(bytes: &[u8]) -> std::result::Result<DecodedJournal, HeaderDefect> {
    let (header, key, header_len) = decode_header(bytes)?;
    let size = header.identity.size;
    let mut ranges = Vec::new();
    let mut pos = header_len;
    let mut tail_defect = None;
    while pos < bytes.len() {
        let Some(record) = bytes.get(pos..pos + RECORD_LEN) else {
            tail_defect = Some(RecordDefect::Truncated);
            break;
        };
        match decode_record(&key, record, size) {
            Ok(range) => ranges.push(range),
            Err(defect) => {
                tail_defect = Some(defect);
                break;
            }
        }
        pos += RECORD_LEN;
    }
    Ok(DecodedJournal {
        header,
        ranges,
        valid_len: pos as u64,
        dropped_bytes: (bytes.len() - pos) as u64,
        tail_defect,
    })
}

/// Encodes a whole journal: the header, then one record per range. (The
/// store appends records as it goes; this is for tests, fixtures, fuzz
/// seeds and benchmarks.)
pub fn encode(header: &JournalHeader, ranges: &[ByteRange]) -> Vec<u8> {
    let (mut out, key) = encode_header(header);
    for range in ranges {
        out.extend_from_slice(&encode_record(&key, *range));
    }
    out
}

/// Where the journal of a partial file lives: `<partial>.journal`.
pub fn journal_path(partial: &Path) -> PathBuf {
    let mut name = partial.file_name().unwrap_or_default().to_os_string();
    name.push(".journal");
    partial.with_file_name(name)
}

fn encode_header(header: &JournalHeader) -> (Vec<u8>, [u8; 32]) {
    let mut body = Vec::new();
    body.extend_from_slice(&header.identity.size.to_le_bytes());
    body.extend_from_slice(&header.nonce);
    body.extend_from_slice(&header.layout.segment_size.to_le_bytes());
    body.extend_from_slice(&header.layout.connections.to_le_bytes());
    for field in [
        &header.identity.etag,
        &header.identity.repo,
        &header.identity.commit,
        &header.identity.path,
    ] {
        // Identity strings are short; clip defensively so a silly input
        // cannot produce an unreadable header.
        let bytes = clip(field.as_bytes(), usize::from(u16::MAX));
        body.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        body.extend_from_slice(bytes);
    }
    let mut out = Vec::with_capacity(PREFIX_LEN + body.len() + HASH_LEN);
    out.extend_from_slice(&JOURNAL_MAGIC);
    out.extend_from_slice(&header.version.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    let hash: [u8; 32] = blake3::hash(&out).into();
    out.extend_from_slice(&hash);
    (out, hash)
}

fn clip(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    // Cut at a char boundary so the field stays valid UTF-8.
    let mut end = max;
    while end > 0 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    &bytes[..end]
}

fn encode_record(key: &[u8; 32], range: ByteRange) -> [u8; RECORD_LEN] {
    let mut record = [0u8; RECORD_LEN];
    record[0] = KIND_RANGE;
    record[8..16].copy_from_slice(&range.start().to_le_bytes());
    record[16..24].copy_from_slice(&range.end().to_le_bytes());
    let check = blake3::keyed_hash(key, &record[..24]);
    record[24..].copy_from_slice(&check.as_bytes()[..CHECK_LEN]);
    record
}

fn decode_record(
    key: &[u8; 32],
    record: &[u8],
    size: u64,
) -> std::result::Result<ByteRange, RecordDefect> {
    if record.iter().all(|b| *b == 0) {
        return Err(RecordDefect::Zeroed);
    }
    let check = blake3::keyed_hash(key, &record[..24]);
    if check.as_bytes()[..CHECK_LEN] != record[24..RECORD_LEN] {
        return Err(RecordDefect::Checksum);
    }
    if record[0] != KIND_RANGE || record[1..8].iter().any(|b| *b != 0) {
        return Err(RecordDefect::UnknownKind);
    }
    let start = read_u64(&record[8..16]);
    let end = read_u64(&record[16..24]);
    match ByteRange::new(start, end) {
        Some(range) if end <= size => Ok(range),
        _ => Err(RecordDefect::OutOfBounds),
    }
}

fn read_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(buf)
}

/// A cursor over the header body; every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], HeaderDefect> {
        if self.bytes.len() < n {
            return Err(HeaderDefect::Malformed("body too short"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> std::result::Result<u64, HeaderDefect> {
        self.take(8).map(read_u64)
    }

    fn u32(&mut self) -> std::result::Result<u32, HeaderDefect> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> std::result::Result<String, HeaderDefect> {
        let len = self.take(2)?;
        let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| HeaderDefect::Malformed("string not UTF-8"))
    }
}

fn decode_header(
    bytes: &[u8],
) -> std::result::Result<(JournalHeader, [u8; 32], usize), HeaderDefect> {
    let Some(prefix) = bytes.get(..PREFIX_LEN) else {
        if bytes.len() >= JOURNAL_MAGIC.len() && bytes[..JOURNAL_MAGIC.len()] != JOURNAL_MAGIC {
            return Err(HeaderDefect::BadMagic);
        }
        return Err(HeaderDefect::Truncated);
    };
    if prefix[..8] != JOURNAL_MAGIC {
        return Err(HeaderDefect::BadMagic);
    }
    let version = u16::from_le_bytes([prefix[8], prefix[9]]);
    if version == 0 || version > JOURNAL_VERSION {
        return Err(HeaderDefect::UnsupportedVersion(version));
    }
    let flags = u16::from_le_bytes([prefix[10], prefix[11]]);
    let body_len = u32::from_le_bytes([prefix[12], prefix[13], prefix[14], prefix[15]]) as usize;
    if body_len > MAX_BODY_LEN {
        return Err(HeaderDefect::Malformed("body length too large"));
    }
    let header_len = PREFIX_LEN + body_len + HASH_LEN;
    let Some(all) = bytes.get(..header_len) else {
        return Err(HeaderDefect::Truncated);
    };
    let hash: [u8; 32] = blake3::hash(&all[..PREFIX_LEN + body_len]).into();
    if hash[..] != all[PREFIX_LEN + body_len..] {
        return Err(HeaderDefect::Checksum);
    }
    if flags != 0 {
        return Err(HeaderDefect::Malformed("unknown flags"));
    }
    let mut cursor = Cursor {
        bytes: &all[PREFIX_LEN..PREFIX_LEN + body_len],
    };
    let size = cursor.u64()?;
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(cursor.take(16)?);
    let segment_size = cursor.u64()?;
    let connections = cursor.u32()?;
    let etag = cursor.string()?;
    let repo = cursor.string()?;
    let commit = cursor.string()?;
    let path = cursor.string()?;
    if !cursor.bytes.is_empty() {
        return Err(HeaderDefect::Malformed("trailing bytes in body"));
    }
    let header = JournalHeader {
        version,
        identity: FileIdentity {
            repo,
            commit,
            path,
            size,
            etag,
        },
        layout: SegmentLayout {
            segment_size,
            connections,
        },
        nonce,
    };
    Ok((header, hash, header_len))
}

/// A nonce that differs between journals: a hash of the time, the process,
/// a counter and a stack address. Uniqueness, not secrecy, is what matters.
fn fresh_nonce() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = blake3::Hasher::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.update(&now.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let local = 0u8;
    hasher.update(&(std::ptr::from_ref(&local) as usize).to_le_bytes());
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    nonce
}

/// The open journal of a partial file: appends group commits.
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    key: [u8; 32],
    /// Length of the synced, valid content.
    len: u64,
    /// An append failed and could not be undone: stop appending (what is
    /// on disk stays a valid prefix).
    broken: bool,
    /// The folder of a journal this run created, until the first append
    /// syncs it: that append makes the journal's name durable with its
    /// first records.
    unsynced_entry: Option<(TargetDir, PathBuf)>,
    probe: Probe,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Journal {
    fn io_err(&self, action: &'static str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Journal {
            path: self.path.clone(),
            action,
            source,
        }
    }

    /// Starts a new journal at `path` (replacing whatever was there) with
    /// `header`. A journal that was there is synced empty with the new
    /// header before this returns, so no record of it can survive into the
    /// new one. A new one is not synced until its first append (which syncs
    /// its header, its records and its folder): until then a cut leaves no
    /// journal, or a header alone or torn, and each of those starts the
    /// file over. That keeps the syncs off a download's start, where they
    /// queue behind every other file's (3-40 ms here, decision 0075).
    pub(crate) fn create(
        dir: &TargetDir,
        rel: &Path,
        header: &JournalHeader,
        probe: Probe,
    ) -> Result<Self> {
        let path = &dir.display_path(rel);
        let err = |action| {
            move |source| Error::Journal {
                path: path.clone(),
                action,
                source,
            }
        };
        let existed = dir.entry(rel)?.is_some();
        let file = dir
            .open_own_file(rel, OpenMode::CreateOrOpen)
            .map_err(|e| journal_err(e, "cannot create"))?;
        file.set_len(0).map_err(err("cannot truncate"))?;
        probe.journal_truncate(0);
        let (bytes, key) = encode_header(header);
        probe.journal_write(0, &bytes);
        platform::write_all_at(&file, &bytes, 0).map_err(err("cannot write the header of"))?;
        let unsynced_entry = if existed {
            file.sync_data().map_err(err("cannot sync"))?;
            probe.journal_sync();
            None
        } else {
            let folder = rel.parent().unwrap_or(Path::new("")).to_path_buf();
            Some((dir.clone(), folder))
        };
        Ok(Self {
            file,
            path: path.clone(),
            key,
            len: bytes.len() as u64,
            broken: false,
            unsynced_entry,
            probe,
        })
    }

    /// Continues an existing journal whose bytes decoded to `decoded`:
    /// cuts the dropped tail so new records follow the last valid one.
    pub(crate) fn resume(
        path: &Path,
        file: File,
        decoded: &DecodedJournal,
        probe: Probe,
    ) -> Result<Self> {
        let (_, key) = encode_header(&decoded.header);
        let journal = Self {
            file,
            path: path.to_path_buf(),
            key,
            len: decoded.valid_len,
            broken: false,
            unsynced_entry: None,
            probe,
        };
        if decoded.dropped_bytes > 0 {
            journal
                .file
                .set_len(decoded.valid_len)
                .map_err(journal.io_err("cannot cut the torn tail of"))?;
            journal.probe.journal_truncate(decoded.valid_len);
            journal
                .file
                .sync_data()
                .map_err(journal.io_err("cannot sync"))?;
            journal.probe.journal_sync();
        }
        Ok(journal)
    }

    /// Appends one record per range in one write, then syncs (one group
    /// commit). The caller guarantees the ranges' bytes are already durable.
    pub(crate) fn append(&mut self, ranges: &[ByteRange]) -> Result<()> {
        if ranges.is_empty() || self.broken {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(ranges.len() * RECORD_LEN);
        for range in ranges {
            bytes.extend_from_slice(&encode_record(&self.key, *range));
        }
        self.probe.journal_write(self.len, &bytes);
        let written = platform::write_all_at(&self.file, &bytes, self.len)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.probe.journal_sync();
                self.len += bytes.len() as u64;
                if let Some((dir, folder)) = self.unsynced_entry.take() {
                    // Until this succeeds a cut may lose the journal's
                    // name, which only starts the file over; tried again
                    // with the next append.
                    if let Err(e) = dir.sync_dir(&folder) {
                        self.unsynced_entry = Some((dir, folder));
                        return Err(journal_err(e, "cannot sync the folder of"));
                    }
                }
                Ok(())
            }
            Err(source) => {
                // Undo a partial append so later records do not follow
                // garbage; if even that fails, stop appending (the valid
                // prefix on disk stays valid).
                if self.file.set_len(self.len).is_err() {
                    self.broken = true;
                } else {
                    self.probe.journal_truncate(self.len);
                }
                Err(Error::Journal {
                    path: self.path.clone(),
                    action: "cannot append to",
                    source,
                })
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::{
        FileIdentity, HeaderDefect, JOURNAL_MAGIC, JournalHeader, RECORD_LEN, RecordDefect,
        SegmentLayout, decode, encode, journal_path,
    };
    use hfd_types::ByteRange;
    use std::path::Path;

    fn r(a: u64, b: u64) -> ByteRange {
        ByteRange::new(a, b).unwrap()
    }

    fn header() -> JournalHeader {
        JournalHeader::new(
            FileIdentity::new(
                "org/model",
                "0123456789abcdef0123456789abcdef01234567",
                "sub/model.safetensors",
                1000,
                "a".repeat(64),
            ),
            SegmentLayout::new(100, 4),
        )
    }

    fn ranges() -> Vec<ByteRange> {
        vec![r(0, 100), r(500, 600), r(100, 250), r(999, 1000)]
    }

    /// A journal this run creates is not synced before its first append,
    /// which syncs its header and records at once; one that was there is
    /// synced empty with its new header before any byte of the partial
    /// changes (no old record may survive into the new journal).
    #[test]
    fn a_new_journal_is_synced_by_its_first_append_an_old_one_at_once() {
        use crate::probe::{Event, Probe};
        use std::sync::{Arc, Mutex};
        let tmp = tempfile::tempdir().unwrap();
        let dir = crate::TargetDir::open(tmp.path()).unwrap();
        let rel = Path::new("sub/m.part.journal");
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let syncs = || {
            log.lock()
                .unwrap()
                .iter()
                .filter(|e| matches!(e, Event::JournalSync))
                .count()
        };
        let mut journal =
            super::Journal::create(&dir, rel, &header(), Probe::recording(Arc::clone(&log)))
                .unwrap();
        assert_eq!(syncs(), 0, "a new journal is not synced at its creation");
        assert!(journal.unsynced_entry.is_some());
        journal.append(&[r(0, 100)]).unwrap();
        assert_eq!(syncs(), 1);
        assert!(
            journal.unsynced_entry.is_none(),
            "its folder synced with it"
        );
        let on_disk = decode(&std::fs::read(tmp.path().join(rel)).unwrap()).unwrap();
        assert_eq!(on_disk.ranges, vec![r(0, 100)]);
        drop(journal);
        // Started again over the old one: synced before create returns.
        let journal =
            super::Journal::create(&dir, rel, &header(), Probe::recording(Arc::clone(&log)))
                .unwrap();
        assert_eq!(syncs(), 2, "an old journal is reset durably at once");
        assert!(journal.unsynced_entry.is_none());
        let on_disk = decode(&std::fs::read(tmp.path().join(rel)).unwrap()).unwrap();
        assert!(on_disk.ranges.is_empty(), "no old record survives");
    }

    #[test]
    fn round_trip() {
        let h = header();
        let bytes = encode(&h, &ranges());
        let d = decode(&bytes).unwrap();
        assert_eq!(d.header, h);
        assert_eq!(d.ranges, ranges());
        assert_eq!(d.valid_len, bytes.len() as u64);
        assert_eq!((d.dropped_bytes, d.tail_defect), (0, None));
        // Header only.
        let empty = decode(&encode(&h, &[])).unwrap();
        assert!(empty.ranges.is_empty());
        // Two headers of the same identity differ (nonce): their records do
        // not validate against each other.
        let other = header();
        assert_ne!(other.nonce, h.nonce);
        let mut mixed = encode(&h, &[]);
        let foreign = encode(&other, &[r(0, 10)]);
        mixed.extend_from_slice(&foreign[foreign.len() - RECORD_LEN..]);
        let d = decode(&mixed).unwrap();
        assert!(d.ranges.is_empty());
        assert_eq!(d.tail_defect, Some(RecordDefect::Checksum));
    }

    #[test]
    fn every_truncation_keeps_exactly_the_whole_records() {
        let h = header();
        let bytes = encode(&h, &ranges());
        let header_len = bytes.len() - 4 * RECORD_LEN;
        for cut in 0..bytes.len() {
            let result = decode(&bytes[..cut]);
            if cut < header_len {
                assert_eq!(result.unwrap_err(), HeaderDefect::Truncated, "cut {cut}");
                continue;
            }
            let d = result.unwrap();
            let whole = (cut - header_len) / RECORD_LEN;
            assert_eq!(d.ranges, ranges()[..whole], "cut {cut}");
            assert_eq!(d.valid_len as usize, header_len + whole * RECORD_LEN);
            let torn = !(cut - header_len).is_multiple_of(RECORD_LEN);
            assert_eq!(d.tail_defect.is_some(), torn, "cut {cut}");
        }
    }

    #[test]
    fn zeroed_tail_is_dropped() {
        let bytes = encode(&header(), &ranges());
        let header_len = bytes.len() - 4 * RECORD_LEN;
        // The file kept its length but the last two records' data never
        // reached the disk (reads back as zeros).
        let mut zeroed = bytes.clone();
        zeroed[header_len + 2 * RECORD_LEN..].fill(0);
        let d = decode(&zeroed).unwrap();
        assert_eq!(d.ranges, ranges()[..2]);
        assert_eq!(d.tail_defect, Some(RecordDefect::Zeroed));
        assert_eq!(d.dropped_bytes, 2 * RECORD_LEN as u64);
        // Zeros appended after the records (preallocated tail).
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 100]);
        let d = decode(&padded).unwrap();
        assert_eq!(d.ranges, ranges());
        assert_eq!(d.dropped_bytes, 100);
        // An all-zero file is not a journal.
        assert_eq!(decode(&[0; 200]).unwrap_err(), HeaderDefect::BadMagic);
    }

    #[test]
    fn any_bit_flip_in_a_record_drops_it_and_everything_after() {
        let bytes = encode(&header(), &ranges());
        let header_len = bytes.len() - 4 * RECORD_LEN;
        for byte in header_len..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[byte] ^= 1 << bit;
                let d = decode(&flipped).unwrap();
                let bad = (byte - header_len) / RECORD_LEN;
                assert_eq!(d.ranges, ranges()[..bad], "byte {byte} bit {bit}");
                assert_eq!(d.tail_defect, Some(RecordDefect::Checksum));
            }
        }
    }

    #[test]
    fn any_bit_flip_in_the_header_rejects_the_journal() {
        let bytes = encode(&header(), &ranges());
        let header_len = bytes.len() - 4 * RECORD_LEN;
        for byte in 0..header_len {
            let mut flipped = bytes.clone();
            flipped[byte] ^= 0x10;
            assert!(decode(&flipped).is_err(), "byte {byte}");
        }
    }

    #[test]
    fn checksummed_nonsense_is_refused() {
        // A record that passes its checksum but names bytes outside the file
        // (a bug or a forged journal) ends the valid part.
        let h = header();
        let bytes = encode(&h, &[r(0, 10), r(990, 1001), r(20, 30)]);
        let d = decode(&bytes).unwrap();
        assert_eq!(d.ranges, vec![r(0, 10)]);
        assert_eq!(d.tail_defect, Some(RecordDefect::OutOfBounds));
    }

    #[test]
    fn header_defects() {
        let bytes = encode(&header(), &[]);
        assert_eq!(decode(b"").unwrap_err(), HeaderDefect::Truncated);
        assert_eq!(decode(b"HFDJ").unwrap_err(), HeaderDefect::Truncated);
        assert_eq!(decode(b"NOTAJRNLxx").unwrap_err(), HeaderDefect::BadMagic);
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert_eq!(
            decode(&v2).unwrap_err(),
            HeaderDefect::UnsupportedVersion(2)
        );
        let mut huge = bytes.clone();
        huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&huge).unwrap_err(),
            HeaderDefect::Malformed(_)
        ));
        assert_eq!(&bytes[..8], &JOURNAL_MAGIC);
    }

    #[test]
    fn decode_is_total_on_random_bytes() {
        // Cheap stand-in for the fuzz target: random and mutated inputs
        // never panic.
        let valid = encode(&header(), &ranges());
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let len = (next() % 400) as usize;
            let random: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = decode(&random);
            let mut mutated = valid.clone();
            for _ in 0..(next() % 4) {
                let i = (next() as usize) % mutated.len();
                mutated[i] = next() as u8;
            }
            mutated.truncate((next() as usize) % (valid.len() + 1));
            let _ = decode(&mutated);
        }
    }

    #[test]
    fn path_is_next_to_the_partial() {
        assert_eq!(
            journal_path(Path::new("/d/download/a.bin.hfd-0123.part")),
            Path::new("/d/download/a.bin.hfd-0123.part.journal")
        );
    }
}
