//! The listing of a commit kept for `trees/<commit>.json` (docs/hub-protocol.md
//! §9.2) while a download runs: packed into one buffer as the pages arrive,
//! sorted only when the file is written.
//!
//! A first download of 10^5 files held the listing as `RemoteFile`s for the
//! whole run (about 230 bytes a file with their paths, twice that while the
//! vector grew); packed, a file of a dataset takes its path plus about 40
//! bytes.

use hfd_hub::RemoteFile;
use hfd_types::ContentDigest;

/// Every file of a listing, in the order given, packed (see [`Self::push`]).
#[derive(Default)]
pub struct TreeRecord {
    /// The entries one after the other.
    bytes: Vec<u8>,
    /// Where each entry starts in `bytes`.
    starts: Vec<usize>,
}

/// One file of a [`TreeRecord`], borrowed from it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RecordedFile<'a> {
    pub path: &'a str,
    pub size: u64,
    pub oid: ContentDigest,
    pub lfs_sha256: Option<ContentDigest>,
    pub xet_hash: Option<&'a str>,
}

impl TreeRecord {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `file`: its path's length and bytes, its size, its oid, then
    /// its SHA-256 and its Xet hash when present.
    pub fn push(&mut self, file: &RemoteFile) {
        self.starts.push(self.bytes.len());
        put_str(&mut self.bytes, &file.path);
        self.bytes.extend_from_slice(&file.size.to_le_bytes());
        put_digest(&mut self.bytes, &file.oid);
        match &file.lfs_sha256 {
            Some(sha) => put_digest(&mut self.bytes, sha),
            None => self.bytes.push(NONE),
        }
        match &file.xet_hash {
            Some(xet) => {
                self.bytes.push(SOME);
                put_str(&mut self.bytes, xet);
            }
            None => self.bytes.push(NONE),
        }
    }

    /// How many files were pushed (duplicates included).
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Where each file starts, sorted by path, one per path (the first
    /// pushed): one word a file, the files read back as they are written
    /// out (a vector of decoded files doubled the record at the end of a
    /// run of 10^5 files).
    fn sorted_starts(&self) -> Vec<usize> {
        let mut starts = self.starts.clone();
        // A `str`'s order is its bytes' order.
        starts.sort_unstable_by_key(|&at| (self.path_at(at), at));
        starts.dedup_by_key(|at| self.path_at(*at));
        starts
    }

    /// The files sorted by path, one per path (the first pushed).
    pub(crate) fn sorted(&self) -> impl Iterator<Item = RecordedFile<'_>> {
        self.sorted_starts().into_iter().map(|at| self.read(at))
    }

    fn path_at(&self, at: usize) -> &[u8] {
        let mut r = Reader {
            bytes: &self.bytes,
            at,
        };
        let len = u32::from_le_bytes(r.array()) as usize;
        r.take(len)
    }

    /// Writes the `trees/<commit>.json` document: keys in the order
    /// `serde_json`'s maps sort them (alphabetical), pretty-printed, files
    /// sorted by path, as the file has always been written.
    pub(crate) fn write_document(&self, out: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(out, &Document(self)).map_err(std::io::Error::from)
    }

    fn read(&self, at: usize) -> RecordedFile<'_> {
        let mut r = Reader {
            bytes: &self.bytes,
            at,
        };
        let path = r.str();
        let size = u64::from_le_bytes(r.array());
        let oid = r.digest().expect("every entry has its oid");
        let lfs_sha256 = r.digest();
        let xet_hash = (r.byte() == SOME).then(|| r.str());
        RecordedFile {
            path,
            size,
            oid,
            lfs_sha256,
            xet_hash,
        }
    }
}

impl std::fmt::Debug for TreeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeRecord")
            .field("files", &self.len())
            .field("bytes", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl<'a> FromIterator<&'a RemoteFile> for TreeRecord {
    fn from_iter<I: IntoIterator<Item = &'a RemoteFile>>(files: I) -> Self {
        let mut record = Self::new();
        record.extend(files);
        record
    }
}

impl<'a> Extend<&'a RemoteFile> for TreeRecord {
    fn extend<I: IntoIterator<Item = &'a RemoteFile>>(&mut self, files: I) {
        for file in files {
            self.push(file);
        }
    }
}

struct Document<'a>(&'a TreeRecord);

impl serde::Serialize for Document<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut doc = s.serialize_map(Some(2))?;
        doc.serialize_entry("files", &Files(self.0))?;
        doc.serialize_entry("format_version", &1)?;
        doc.end()
    }
}

struct Files<'a>(&'a TreeRecord);

impl serde::Serialize for Files<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.sorted().map(|f| (f.path, f)))
    }
}

impl serde::Serialize for RecordedFile<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut entry = s.serialize_map(None)?;
        entry.serialize_entry("blob_id", &Hex(&self.oid))?;
        if let Some(sha) = &self.lfs_sha256 {
            entry.serialize_entry("lfs_sha256", &Hex(sha))?;
            entry.serialize_entry("lfs_size", &self.size)?;
        }
        entry.serialize_entry("size", &self.size)?;
        if let Some(xet) = self.xet_hash {
            entry.serialize_entry("xet_hash", xet)?;
        }
        entry.end()
    }
}

/// A digest as its lower-case hex string, without building the string.
struct Hex<'a>(&'a ContentDigest);

impl serde::Serialize for Hex<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

const NONE: u8 = 0;
const SOME: u8 = 1;
const GIT_SHA1: u8 = 1;
const SHA256: u8 = 2;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).expect("a repo path or hash is far below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_digest(out: &mut Vec<u8>, digest: &ContentDigest) {
    out.push(match digest {
        ContentDigest::GitSha1(_) => GIT_SHA1,
        ContentDigest::Sha256(_) => SHA256,
    });
    out.extend_from_slice(digest.as_bytes());
}

/// Reads back what [`TreeRecord::push`] wrote (only ever its own bytes).
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        out
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        self.take(N).try_into().expect("took N bytes")
    }

    fn byte(&mut self) -> u8 {
        self.take(1)[0]
    }

    fn str(&mut self) -> &'a str {
        let len = u32::from_le_bytes(self.array()) as usize;
        std::str::from_utf8(self.take(len)).expect("pushed from a str")
    }

    fn digest(&mut self) -> Option<ContentDigest> {
        match self.byte() {
            GIT_SHA1 => Some(ContentDigest::GitSha1(self.array())),
            SHA256 => Some(ContentDigest::Sha256(self.array())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, lfs: bool, xet: bool) -> RemoteFile {
        RemoteFile {
            path: path.into(),
            size: path.len() as u64 * 1_000_003,
            oid: ContentDigest::GitSha1([path.len() as u8; 20]),
            lfs_sha256: lfs.then_some(ContentDigest::Sha256([7; 32])),
            xet_hash: xet.then(|| "e".repeat(64)),
        }
    }

    #[test]
    fn files_read_back_as_pushed_sorted_by_path_one_per_path() {
        let files = [
            file("z/last.bin", true, true),
            file("a.txt", false, false),
            file("深い/文件.json", false, true),
            file("a.txt", true, false),
            file("m", true, false),
        ];
        let record: TreeRecord = files.iter().collect();
        assert_eq!(record.len(), 5);
        let sorted: Vec<RecordedFile<'_>> = record.sorted().collect();
        let paths: Vec<&str> = sorted.iter().map(|f| f.path).collect();
        assert_eq!(paths, ["a.txt", "m", "z/last.bin", "深い/文件.json"]);
        for got in &sorted {
            let want = files.iter().find(|f| f.path == got.path).unwrap();
            assert_eq!(got.size, want.size);
            assert_eq!(got.oid, want.oid);
            assert_eq!(got.lfs_sha256, want.lfs_sha256);
            assert_eq!(got.xet_hash, want.xet_hash.as_deref());
        }
        assert_eq!(
            sorted[0].lfs_sha256, None,
            "the first of a duplicated path is kept"
        );
    }

    #[test]
    fn a_dataset_file_takes_its_path_and_a_few_dozen_bytes() {
        let record: TreeRecord = (0..1000)
            .map(|i| file(&format!("data/train/shard-{i:05}.jsonl"), false, false))
            .collect::<Vec<_>>()
            .iter()
            .collect();
        let per_file = (record.bytes.len() + record.starts.len() * 8) / 1000;
        assert!(per_file < 80, "{per_file} bytes a file");
    }
}
