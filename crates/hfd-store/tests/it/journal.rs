//! The resume journal through the public API: resume, discard, torn tails,
//! and the checked-in v1 fixture.

use std::path::{Path, PathBuf};

use hfd_store::{
    ContentHasher, DiscardReason, FileIdentity, HeaderDefect, JOURNAL_VERSION, JournalHeader,
    JournalState, PartialFile, RECORD_LEN, RecordDefect, SegmentLayout, StoreConfig, decode,
    encode, journal_path,
};
use hfd_types::{ByteRange, ContentDigest};

fn r(a: u64, b: u64) -> ByteRange {
    ByteRange::new(a, b).unwrap()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn sha256(bytes: &[u8]) -> ContentDigest {
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

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    data: Vec<u8>,
    digest: ContentDigest,
}

impl Fixture {
    fn new(len: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin.hfd-abcd.part");
        let data = data(len);
        let digest = sha256(&data);
        Self {
            _dir: dir,
            path,
            data,
            digest,
        }
    }

    fn open(&self, etag: &str) -> (PartialFile, hfd_store::Resume) {
        PartialFile::open_or_create(
            &self.path,
            self.data.len() as u64,
            Some(self.digest),
            &StoreConfig::default(),
            Some(header(self.data.len() as u64, etag)),
        )
        .unwrap()
    }

    fn write(&self, partial: &PartialFile, range: ByteRange) {
        let bytes = &self.data[range.start() as usize..range.end() as usize];
        partial.writer().write_at(range.start(), bytes).unwrap();
    }

    fn journal(&self) -> Vec<u8> {
        std::fs::read(journal_path(&self.path)).unwrap()
    }
}

#[test]
fn reopen_resumes_flushed_ranges_only_and_rebuilds_the_hash() {
    let f = Fixture::new(100_000);
    let (partial, resume) = f.open("etag-1");
    assert_eq!(resume.journal, JournalState::Fresh);
    assert!(resume.ranges.is_empty());
    f.write(&partial, r(0, 30_000));
    f.write(&partial, r(60_000, 70_000));
    let flushed = partial.flush().unwrap();
    assert_eq!(flushed.ranges, vec![r(0, 30_000), r(60_000, 70_000)]);
    // Written but never flushed: must not be resumed.
    f.write(&partial, r(30_000, 40_000));
    drop(partial);

    let (partial, resume) = f.open("etag-1");
    assert_eq!(
        resume.journal,
        JournalState::Resumed {
            dropped_bytes: 0,
            tail_defect: None
        }
    );
    assert_eq!(resume.ranges.ranges(), &[r(0, 30_000), r(60_000, 70_000)]);
    assert_eq!(partial.written(), resume.ranges);
    // The hash was rebuilt over the resumed prefix by reading it back.
    let stats = partial.hash_stats();
    assert_eq!(stats.hashed_to, 30_000);
    assert_eq!(stats.reread_bytes, 30_000);
    // Fill the gaps; the in-order write right after the prefix is hashed
    // from its buffer, not read back.
    for gap in resume.ranges.gaps(100_000) {
        f.write(&partial, gap);
    }
    partial.flush().unwrap();
    let out = f.path.with_file_name("model.bin");
    let done = partial.finalize(&out).unwrap();
    assert_eq!(done.digest, Some(f.digest));
    assert_eq!(std::fs::read(&out).unwrap(), f.data);
    assert!(
        !journal_path(&f.path).exists(),
        "journal removed at finalize"
    );
}

/// A sync behind the writers makes bytes durable but records nothing: the
/// journal still describes only committed ranges, and the next flush
/// records what was synced behind.
#[test]
fn a_sync_behind_leaves_the_record_to_the_next_flush() {
    let f = Fixture::new(10_000);
    let (partial, _) = f.open("etag-1");
    let header_len = f.journal().len();
    f.write(&partial, r(0, 4_000));
    partial.sync_behind().unwrap();
    assert_eq!(f.journal().len(), header_len, "no record without a flush");
    let flushed = partial.flush().unwrap();
    assert_eq!(flushed.ranges, vec![r(0, 4_000)]);
    assert_eq!(decode(&f.journal()).unwrap().ranges, vec![r(0, 4_000)]);
}

#[test]
fn journal_records_follow_flushes_as_group_commits() {
    let f = Fixture::new(10_000);
    let (partial, _) = f.open("etag-1");
    let header_len = f.journal().len();
    // Nothing new: a flush appends nothing.
    partial.flush().unwrap();
    assert_eq!(f.journal().len(), header_len);
    // Three disjoint ranges in one flush: three records, one append.
    f.write(&partial, r(0, 10));
    f.write(&partial, r(100, 110));
    f.write(&partial, r(200, 210));
    partial.flush().unwrap();
    assert_eq!(f.journal().len(), header_len + 3 * RECORD_LEN);
    let d = decode(&f.journal()).unwrap();
    assert_eq!(d.ranges, vec![r(0, 10), r(100, 110), r(200, 210)]);
    assert_eq!(d.header.identity.etag, "etag-1");
    assert_eq!(d.header.version, JOURNAL_VERSION);
}

#[test]
fn other_content_discards_the_journal_with_a_fresh_start() {
    let f = Fixture::new(10_000);
    let (partial, _) = f.open("etag-1");
    f.write(&partial, r(0, 5_000));
    partial.flush().unwrap();
    drop(partial);
    let (partial, resume) = f.open("etag-2");
    let JournalState::Discarded(DiscardReason::IdentityMismatch { found }) = &resume.journal else {
        panic!("expected an identity mismatch, got {:?}", resume.journal);
    };
    assert_eq!(found.etag, "etag-1");
    assert!(resume.ranges.is_empty());
    assert!(partial.written().is_empty());
    // The journal now belongs to the new content and holds no record.
    let d = decode(&f.journal()).unwrap();
    assert_eq!(d.header.identity.etag, "etag-2");
    assert!(d.ranges.is_empty());
}

#[test]
fn same_content_at_another_commit_resumes() {
    let f = Fixture::new(10_000);
    let (partial, _) = f.open("etag-1");
    f.write(&partial, r(0, 5_000));
    partial.flush().unwrap();
    drop(partial);
    let mut newer = header(10_000, "etag-1");
    newer.identity.commit = "a-newer-commit".into();
    newer.identity.repo = "org/renamed".into();
    let (_partial, resume) = PartialFile::open_or_create(
        &f.path,
        10_000,
        Some(f.digest),
        &StoreConfig::default(),
        Some(newer),
    )
    .unwrap();
    assert_eq!(resume.ranges.ranges(), &[r(0, 5_000)]);
}

#[test]
fn torn_tail_is_cut_and_appends_continue_after_the_last_good_record() {
    let f = Fixture::new(10_000);
    let (partial, _) = f.open("etag-1");
    f.write(&partial, r(0, 1_000));
    partial.flush().unwrap();
    f.write(&partial, r(2_000, 3_000));
    partial.flush().unwrap();
    drop(partial);
    // A crash tore the second record and left garbage after it.
    let mut bytes = f.journal();
    let len = bytes.len();
    bytes.truncate(len - 11);
    bytes.extend_from_slice(&[0xAB; 20]);
    std::fs::write(journal_path(&f.path), &bytes).unwrap();

    let (partial, resume) = f.open("etag-1");
    assert_eq!(
        resume.journal,
        JournalState::Resumed {
            dropped_bytes: (RECORD_LEN - 11 + 20) as u64,
            tail_defect: Some(RecordDefect::Checksum),
        }
    );
    assert_eq!(resume.ranges.ranges(), &[r(0, 1_000)]);
    f.write(&partial, r(5_000, 6_000));
    partial.flush().unwrap();
    // The new record follows the last good one: everything decodes.
    let d = decode(&f.journal()).unwrap();
    assert_eq!(d.ranges, vec![r(0, 1_000), r(5_000, 6_000)]);
    assert_eq!(d.dropped_bytes, 0);
}

#[test]
fn unusable_journals_are_discarded() {
    let f = Fixture::new(10_000);
    let (partial, _) = f.open("etag-1");
    f.write(&partial, r(0, 1_000));
    partial.flush().unwrap();
    drop(partial);
    // Zeroed (power loss after the size reached the disk, not the data).
    let len = f.journal().len();
    std::fs::write(journal_path(&f.path), vec![0; len]).unwrap();
    let (partial, resume) = f.open("etag-1");
    assert_eq!(
        resume.journal,
        JournalState::Discarded(DiscardReason::Unreadable(HeaderDefect::BadMagic))
    );
    assert!(resume.ranges.is_empty());
    f.write(&partial, r(0, 1_000));
    partial.flush().unwrap();
    drop(partial);
    // The partial is gone but the journal stayed.
    std::fs::remove_file(&f.path).unwrap();
    let (partial, resume) = f.open("etag-1");
    assert_eq!(
        resume.journal,
        JournalState::Discarded(DiscardReason::PartialMissing)
    );
    drop(partial);
    // The partial has another length.
    let (partial, _) = f.open("etag-1");
    f.write(&partial, r(0, 1_000));
    partial.flush().unwrap();
    drop(partial);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&f.path)
        .unwrap()
        .set_len(4_000)
        .unwrap();
    let (_partial, resume) = f.open("etag-1");
    assert_eq!(
        resume.journal,
        JournalState::Discarded(DiscardReason::PartialSize { actual: 4_000 })
    );
}

#[test]
fn without_identity_a_stale_journal_is_removed_before_truncating() {
    let f = Fixture::new(10_000);
    let (partial, _) = f.open("etag-1");
    f.write(&partial, r(0, 1_000));
    partial.flush().unwrap();
    drop(partial);
    assert!(journal_path(&f.path).exists());
    let partial = PartialFile::create(&f.path, 10_000, None, &StoreConfig::default()).unwrap();
    assert!(!journal_path(&f.path).exists());
    assert_eq!(partial.journal_path(), None);
    f.write(&partial, r(0, 10));
    partial.flush().unwrap();
    assert!(!journal_path(&f.path).exists());
}

#[test]
fn identity_size_must_match() {
    let f = Fixture::new(100);
    let err = PartialFile::open_or_create(
        &f.path,
        100,
        None,
        &StoreConfig::default(),
        Some(header(99, "e")),
    )
    .unwrap_err();
    assert!(
        matches!(err, hfd_store::Error::IdentityMismatch { .. }),
        "{err}"
    );
}

/// The v1 format, frozen: a journal written by the first release (three
/// records and a torn fourth). If this test fails, the format changed:
/// bump `JOURNAL_VERSION`, keep decoding v1, and add a fixture for the new
/// version (docs/journal-format.md).
#[test]
fn v1_fixture_decodes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/journal-v1.bin");
    let bytes = std::fs::read(path).unwrap();
    let d = decode(&bytes).unwrap();
    assert_eq!(d.header.version, 1);
    let id = &d.header.identity;
    assert_eq!(id.repo, "org/model");
    assert_eq!(id.commit, "0123456789abcdef0123456789abcdef01234567");
    assert_eq!(id.path, "weights/model.safetensors");
    assert_eq!(id.size, 3_000_000);
    assert_eq!(
        id.etag,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(d.header.layout, SegmentLayout::new(1 << 20, 8));
    assert_eq!(d.header.nonce, core::array::from_fn(|i| i as u8));
    assert_eq!(
        d.ranges,
        vec![r(0, 1 << 20), r(2 << 20, 2_500_000), r(1 << 20, 1_500_000)]
    );
    assert_eq!(d.dropped_bytes, 17);
    assert_eq!(d.tail_defect, Some(RecordDefect::Truncated));
    // While v1 is the current version, encoding the same content must give
    // the same bytes (the format did not drift without a version bump).
    if JOURNAL_VERSION == 1 {
        assert_eq!(
            encode(&d.header, &d.ranges),
            bytes[..d.valid_len as usize].to_vec()
        );
    }
}
