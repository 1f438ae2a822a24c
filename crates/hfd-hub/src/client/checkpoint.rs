//! A listing's progress, kept between runs so that an interrupted listing
//! of a huge repository resumes at its last page cursor instead of starting
//! over (decision 0027, docs/hub-protocol.md §3.3).
//!
//! The hub client never touches the target: the caller hands it a
//! [`ListingStore`] (where the bytes live), and this module decides what the
//! bytes say. One listing per store, append-only while it runs:
//!
//! ```text
//! hfd-listing 1 <repo> <commit>\n                      header
//! <check> <n> <entries> <page> <url> <next> <files>\n   one line per page that has a next page
//! ```
//!
//! `<check>` is the FNV-1a 64 of the rest of the line (16 hex); `<n>` the
//! page number from 1; `<entries>` the page's entries (files and folders);
//! `<page>` the hash of the page's body (repeat detection); `<url>` the URL
//! the page was asked at and `<next>` the one it linked to (URLs never
//! contain a space); `<files>` the page's files as a tree-API JSON array
//! (paths already scrubbed of the token). Reading keeps the valid prefix:
//! the header must name this repo and commit, and each line must pass its
//! check, number the next page, be asked at the previous line's `<next>`
//! (the first at the listing's first URL), stay on the endpoint's origin,
//! and parse as a tree page. Anything else ends the prefix: a torn last
//! line, a foreign or corrupt file, two writers' lines interleaved.

use std::fmt;
use std::fmt::Write as _;

use serde::Serialize;
use url::Url;

use crate::file::RemoteFile;
use crate::repo::{Commit, RepoRef};

/// Where a listing's progress is kept between runs: one file in the
/// target's metadata folder, written by the caller (`hfd`). Writes are
/// hints: a failed one only costs the resume.
pub trait ListingStore: fmt::Debug + Send + Sync {
    /// The bytes saved by an earlier run, `None` when there are none.
    fn load(&self) -> Option<Vec<u8>>;
    /// Replaces whatever was saved with `bytes`.
    fn start(&self, bytes: &[u8]) -> std::io::Result<()>;
    /// Appends `bytes` to what [`start`](Self::start) wrote.
    fn append(&self, bytes: &[u8]) -> std::io::Result<()>;
    /// Forgets the saved bytes (the listing completed).
    fn remove(&self);
}

const MAGIC: &str = "hfd-listing 1";

/// The first line of a store that holds the listing of `repo` at `commit`.
pub(super) fn header(repo: &RepoRef, commit: &Commit) -> String {
    format!("{MAGIC} {repo} {commit}\n")
}

/// One page as saved.
#[derive(Debug)]
pub(super) struct SavedPage<'a> {
    pub(super) number: u64,
    pub(super) entries: usize,
    pub(super) body_hash: u64,
    pub(super) url: Url,
    pub(super) next: Url,
    /// The page's files, a tree-API JSON array.
    pub(super) files: &'a [u8],
}

/// The valid pages of `bytes` (see the module docs) and the length of the
/// valid prefix. `first` is the listing's first URL; `on_endpoint` says
/// whether a URL may be asked.
pub(super) fn decode<'a>(
    bytes: &'a [u8],
    header: &str,
    first: &Url,
    on_endpoint: impl Fn(&Url) -> bool,
) -> (Vec<SavedPage<'a>>, usize) {
    let mut pages: Vec<SavedPage<'a>> = Vec::new();
    let Some(rest) = bytes.strip_prefix(header.as_bytes()) else {
        return (pages, 0);
    };
    let mut valid = header.len();
    for line in rest.split_inclusive(|&b| b == b'\n') {
        let Some(line) = line.strip_suffix(b"\n") else {
            break;
        };
        let expected_url = pages.last().map_or(first, |p| &p.next);
        let Some(page) = decode_line(line, pages.len() as u64 + 1, expected_url, &on_endpoint)
        else {
            break;
        };
        valid += line.len() + 1;
        pages.push(page);
    }
    (pages, valid)
}

fn decode_line<'a>(
    line: &'a [u8],
    number: u64,
    expected_url: &Url,
    on_endpoint: &impl Fn(&Url) -> bool,
) -> Option<SavedPage<'a>> {
    let mut fields = line.splitn(7, |&b| b == b' ');
    let check = u64::from_str_radix(std::str::from_utf8(fields.next()?).ok()?, 16).ok()?;
    let checked = line.get(17..)?;
    if fnv1a(checked) != check {
        return None;
    }
    let text = |f: Option<&'a [u8]>| f.and_then(|f| std::str::from_utf8(f).ok());
    let n: u64 = text(fields.next())?.parse().ok()?;
    let entries: usize = text(fields.next())?.parse().ok()?;
    let body_hash = u64::from_str_radix(text(fields.next())?, 16).ok()?;
    let url = Url::parse(text(fields.next())?).ok()?;
    let next = Url::parse(text(fields.next())?).ok()?;
    let files = fields.next()?;
    (n == number && url == *expected_url && on_endpoint(&next)).then_some(SavedPage {
        number,
        entries,
        body_hash,
        url,
        next,
        files,
    })
}

/// The line saved for page `number` (see the module docs).
pub(super) fn encode(
    number: u64,
    entries: usize,
    body_hash: u64,
    url: &Url,
    next: &Url,
    files: &[RemoteFile],
) -> Vec<u8> {
    let mut rest = format!("{number} {entries} {body_hash:016x} {url} {next} ").into_bytes();
    let entries: Vec<TreeEntry<'_>> = files.iter().map(TreeEntry::of).collect();
    // Serializing strings, numbers and options into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut rest, &entries);
    let mut line = String::with_capacity(17);
    let _ = write!(line, "{:016x} ", fnv1a(&rest));
    let mut line = line.into_bytes();
    line.extend_from_slice(&rest);
    line.push(b'\n');
    line
}

/// A file as the tree API lists it (what `parse_page` reads back).
#[derive(Serialize)]
struct TreeEntry<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    path: &'a str,
    oid: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    lfs: Option<TreeLfs>,
    #[serde(rename = "xetHash", skip_serializing_if = "Option::is_none")]
    xet_hash: Option<&'a str>,
}

#[derive(Serialize)]
struct TreeLfs {
    oid: String,
    size: u64,
}

impl<'a> TreeEntry<'a> {
    fn of(file: &'a RemoteFile) -> Self {
        Self {
            kind: "file",
            path: &file.path,
            oid: file.oid.to_hex(),
            size: file.size,
            lfs: file.lfs_sha256.map(|sha| TreeLfs {
                oid: sha.to_hex(),
                size: file.size,
            }),
            xet_hash: file.xet_hash.as_deref(),
        }
    }
}

/// FNV-1a, 64 bits: a stable checksum (the same in every build) that
/// catches torn and corrupted lines; not a defence against someone who may
/// write the target, who could as well edit the downloaded files.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::parse_page;
    use crate::repo::RepoId;
    use hfd_types::{ContentDigest, RedactedUrl};

    fn file(path: &str, lfs: bool) -> RemoteFile {
        RemoteFile {
            path: path.to_owned(),
            size: 3,
            oid: ContentDigest::from_hex(&"ab".repeat(20)).unwrap(),
            lfs_sha256: lfs.then(|| ContentDigest::from_hex(&"cd".repeat(32)).unwrap()),
            xet_hash: lfs.then(|| "ef".repeat(32)),
        }
    }

    fn url(cursor: &str) -> Url {
        Url::parse(&format!(
            "http://127.0.0.1:1/api/datasets/o/d/tree/{}?recursive=true{cursor}",
            "a".repeat(40)
        ))
        .unwrap()
    }

    fn saved() -> (String, Url, Vec<u8>) {
        let repo = RepoRef::dataset(RepoId::new("o/d").unwrap());
        let header = header(&repo, &Commit::parse(&"a".repeat(40)).unwrap());
        let first = url("");
        let mut bytes = header.clone().into_bytes();
        bytes.extend(encode(
            1,
            3,
            7,
            &first,
            &url("&cursor=1"),
            &[file("a b/ü.bin", false), file("x.bin", true)],
        ));
        bytes.extend(encode(2, 1, 8, &url("&cursor=1"), &url("&cursor=2"), &[]));
        (header, first, bytes)
    }

    #[test]
    fn pages_read_back_as_written() {
        let (header, first, bytes) = saved();
        let (pages, valid) = decode(&bytes, &header, &first, |_| true);
        assert_eq!(valid, bytes.len());
        assert_eq!(pages.len(), 2);
        assert_eq!(
            (pages[0].number, pages[0].entries, pages[0].body_hash),
            (1, 3, 7)
        );
        assert_eq!(pages[1].next, url("&cursor=2"));
        let (files, entries) = parse_page(pages[0].files, &RedactedUrl::new("x")).unwrap();
        assert_eq!(entries, 2);
        assert_eq!(files, vec![file("a b/ü.bin", false), file("x.bin", true)]);
    }

    #[test]
    fn only_the_valid_prefix_is_kept() {
        let (header, first, bytes) = saved();
        let page_one = header.len();
        let page_two = page_one + bytes[page_one..].iter().position(|&b| b == b'\n').unwrap() + 1;
        // Torn last line.
        let (pages, valid) = decode(&bytes[..bytes.len() - 1], &header, &first, |_| true);
        assert_eq!((pages.len(), valid), (1, page_two));
        // A flipped byte in the first page ends the prefix there.
        let mut corrupt = bytes.clone();
        corrupt[page_one + 40] ^= 1;
        let (pages, valid) = decode(&corrupt, &header, &first, |_| true);
        assert_eq!((pages.len(), valid), (0, page_one));
        // Another listing (commit), another first URL, a foreign host.
        assert_eq!(
            decode(&bytes, &header.replace('a', "b"), &first, |_| true).1,
            0
        );
        assert!(decode(&bytes, &header, &url("&x=1"), |_| true).0.is_empty());
        assert!(decode(&bytes, &header, &first, |_| false).0.is_empty());
        // A page that does not follow the one before (two writers).
        let mut doubled = bytes.clone();
        doubled.extend_from_slice(&bytes[page_two..]);
        assert_eq!(decode(&doubled, &header, &first, |_| true).0.len(), 2);
    }
}
