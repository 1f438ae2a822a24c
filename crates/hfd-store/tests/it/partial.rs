use std::path::Path;

use hfd_store::{Backend, ContentHasher, Error, PartialFile, StoreConfig};
use hfd_types::{ByteRange, ByteSize, ContentDigest};

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> ContentDigest {
    let mut h = ContentHasher::sha256();
    h.update(bytes);
    h.finish()
}

fn config(backend: Backend) -> StoreConfig {
    let mut c = StoreConfig::default();
    c.backend = backend;
    c.window_size = ByteSize::kib(256); // several windows per writer
    c
}

const BACKENDS: [Backend; 2] = [Backend::Mmap, Backend::Pwrite];

/// A new partial `p` in `dir` for `content`, hashed inline against its SHA-256.
fn hashed_partial(dir: &Path, content: &[u8], backend: Backend) -> PartialFile {
    PartialFile::create(
        &dir.join("p"),
        content.len() as u64,
        Some(sha256(content)),
        &config(backend),
    )
    .unwrap()
}

#[test]
fn threads_write_disjoint_segments_and_output_is_identical() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let content = data((3 << 20) + 12_345, 1);
        let size = content.len() as u64;
        let partial = PartialFile::create(
            &dir.path().join(".part-1"),
            size,
            Some(sha256(&content)),
            &config(backend),
        )
        .unwrap();
        assert_eq!(partial.backend(), backend);
        let segments = 7u64;
        std::thread::scope(|s| {
            for i in 0..segments {
                let mut w = partial.writer();
                let content = &content;
                s.spawn(move || {
                    let start = size * i / segments;
                    let end = size * (i + 1) / segments;
                    // Body frames of uneven sizes, in order within a segment.
                    let mut pos = start;
                    let mut frame = 1000 + i as usize * 777;
                    while pos < end {
                        let n = frame.min((end - pos) as usize);
                        w.write_at(pos, &content[pos as usize..pos as usize + n])
                            .unwrap();
                        pos += n as u64;
                        frame = frame * 3 % 70_000 + 1;
                    }
                });
            }
        });
        assert!(partial.is_complete());
        let final_path = dir.path().join("out.bin");
        let done = partial.finalize(&final_path).unwrap();
        assert_eq!(done.digest, Some(sha256(&content)));
        assert_eq!(std::fs::read(&final_path).unwrap(), content, "{backend:?}");
        assert!(!dir.path().join(".part-1").exists());
    }
}

#[test]
fn in_order_bytes_are_hashed_without_reading_back() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let content = data(1 << 20, 2);
        let partial = hashed_partial(dir.path(), &content, backend);
        let mut w = partial.writer();
        for (i, frame) in content.chunks(16 * 1024).enumerate() {
            w.write_at((i * 16 * 1024) as u64, frame).unwrap();
        }
        let stats = partial.hash_stats();
        assert_eq!(stats.hashed_to, content.len() as u64);
        assert_eq!(stats.inline_bytes, content.len() as u64);
        assert_eq!(stats.reread_bytes, 0);
        partial.finalize(&dir.path().join("f")).unwrap();
    }
}

/// A batch of frames written as parts lands as their concatenation: more
/// parts than one vectored write takes (1,024), uneven sizes, an empty one;
/// the in-order bytes are hashed as they are written, across the parts; a
/// batch that leaves the file is refused (by the pwrite backend before any
/// byte of it is written).
#[test]
fn parts_are_written_as_their_concatenation_and_hashed_inline() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let content = data(3_000 * 700 + 11, 9);
        let partial = hashed_partial(dir.path(), &content, backend);
        // 2,000 frames of 700 bytes, each cut in two uneven parts.
        let mut parts: Vec<&[u8]> = Vec::new();
        for frame in content[..2_000 * 700].chunks(700) {
            let (a, b) = frame.split_at(frame.len() / 3);
            parts.extend([a, b]);
        }
        parts.insert(5, &[]);
        let mut w = partial.writer();
        w.write_parts_at(0, &parts).unwrap();
        let rest: Vec<&[u8]> = content[2_000 * 700..].chunks(997).collect();
        let mut other = partial.writer();
        if backend == Backend::Pwrite {
            let past_end = other.write_parts_at(2_000 * 700, &[&content[2_000 * 700..], b"x"]);
            assert!(
                matches!(past_end, Err(Error::OutOfBounds { .. })),
                "{past_end:?}"
            );
            assert_eq!(
                partial.written().total(),
                2_000 * 700,
                "checked whole first"
            );
        }
        other.write_parts_at(2_000 * 700, &rest).unwrap();
        let stats = partial.hash_stats();
        assert_eq!(stats.hashed_to, content.len() as u64, "{backend:?}");
        assert_eq!(stats.reread_bytes, 0, "{backend:?}");
        drop((w, other));
        let out = dir.path().join("f");
        partial.finalize(&out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), content, "{backend:?}");
    }
}

#[test]
fn out_of_order_bytes_are_read_back_once_and_only_those() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let content = data(1 << 20, 3);
        let size = content.len() as u64;
        let partial = PartialFile::create(
            &dir.path().join("p"),
            size,
            Some(sha256(&content)),
            &config(backend),
        )
        .unwrap();
        let (mut head, mut tail) = (partial.writer(), partial.writer());
        let mid = 600_000u64;
        // The tail arrives first: it cannot be hashed yet.
        tail.write_at(mid, &content[mid as usize..]).unwrap();
        assert!(!partial.hash_is_behind(), "a gap before the tail");
        assert_eq!(partial.advance_hash().unwrap(), 0);
        // The head fills the gap: hashed inline from the buffer.
        head.write_at(0, &content[..mid as usize]).unwrap();
        assert_eq!(partial.hash_stats().hashed_to, mid);
        assert!(partial.hash_is_behind(), "the tail waits for a pass");
        // Catching up reads back exactly the tail.
        assert_eq!(partial.advance_hash().unwrap(), size);
        assert!(!partial.hash_is_behind());
        let stats = partial.hash_stats();
        assert_eq!(stats.inline_bytes, mid);
        assert_eq!(stats.reread_bytes, size - mid);
        partial.finalize(&dir.path().join("f")).unwrap();
    }
}

#[test]
fn mismatch_is_an_integrity_error_and_keeps_the_partial() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let content = data(100_000, 4);
        let mut wrong = content.clone();
        wrong[5] ^= 1;
        let part = dir.path().join("p");
        let partial = PartialFile::create(
            &part,
            content.len() as u64,
            Some(sha256(&content)),
            &config(backend),
        )
        .unwrap();
        partial.writer().write_at(0, &wrong).unwrap();
        let final_path = dir.path().join("model.bin");
        let err = partial.finalize(&final_path).unwrap_err();
        assert!(err.is_integrity(), "{err:?}");
        assert!(matches!(err, Error::DigestMismatch { .. }));
        assert!(err.to_string().contains(&part.display().to_string()));
        assert!(!final_path.exists());
        assert_eq!(std::fs::read(&part).unwrap(), wrong);
    }
}

#[test]
fn git_blob_digest_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let expected = ContentDigest::from_hex("b45ef6fec89518d314f546fd6c3025367b721684").unwrap();
    let partial = PartialFile::create(
        &dir.path().join("p"),
        13,
        Some(expected),
        &StoreConfig::default(),
    )
    .unwrap();
    partial.writer().write_at(0, b"Hello, World!").unwrap();
    let done = partial.finalize(&dir.path().join("f")).unwrap();
    assert_eq!(done.digest, Some(expected));
}

#[test]
fn zero_byte_file_finalizes_with_empty_digest() {
    let dir = tempfile::tempdir().unwrap();
    let expected = ContentDigest::from_hex("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391").unwrap();
    for backend in BACKENDS {
        let final_path = dir.path().join(format!("empty-{backend:?}"));
        let partial = PartialFile::create(
            &dir.path().join(format!("p-{backend:?}")),
            0,
            Some(expected),
            &config(backend),
        )
        .unwrap();
        assert!(partial.is_complete());
        partial.finalize(&final_path).unwrap();
        assert_eq!(std::fs::metadata(&final_path).unwrap().len(), 0);
    }
}

#[test]
fn incomplete_file_is_not_published() {
    let dir = tempfile::tempdir().unwrap();
    let partial =
        PartialFile::create(&dir.path().join("p"), 100, None, &StoreConfig::default()).unwrap();
    partial.writer().write_at(10, &[1; 50]).unwrap();
    let err = partial.finalize(&dir.path().join("f")).unwrap_err();
    assert!(
        matches!(err, Error::Incomplete { missing: 50, .. }),
        "{err:?}"
    );
    assert!(!dir.path().join("f").exists());
}

#[test]
fn flush_reports_newly_durable_ranges_once() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let partial =
            PartialFile::create(&dir.path().join("p"), 1000, None, &config(backend)).unwrap();
        let mut w = partial.writer();
        w.write_at(0, &[1; 100]).unwrap();
        w.write_at(100, &[2; 100]).unwrap();
        w.write_at(500, &[3; 10]).unwrap();
        let r = |a, b| ByteRange::new(a, b).unwrap();
        assert_eq!(
            partial.flush().unwrap().ranges,
            vec![r(0, 200), r(500, 510)]
        );
        assert!(partial.flush().unwrap().ranges.is_empty());
        w.write_at(200, &[4; 5]).unwrap();
        assert_eq!(partial.flush().unwrap().ranges, vec![r(200, 205)]);
        assert_eq!(partial.written().ranges(), &[r(0, 205), r(500, 510)]);
    }
}

#[test]
fn writes_outside_the_file_are_refused() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let partial =
            PartialFile::create(&dir.path().join("p"), 100, None, &config(backend)).unwrap();
        let err = partial.writer().write_at(90, &[0; 11]).unwrap_err();
        assert!(
            matches!(err, Error::OutOfBounds { size: 100, .. }),
            "{err:?}"
        );
        assert!(partial.written().is_empty());
    }
}

#[test]
fn rewriting_the_hashed_prefix_restarts_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let content = data(300_000, 5);
    let partial = PartialFile::create(
        &dir.path().join("p"),
        content.len() as u64,
        Some(sha256(&content)),
        &config(Backend::Mmap),
    )
    .unwrap();
    let mut w = partial.writer();
    // A first pass writes garbage into the prefix, then a single-stream
    // fallback rewrites the whole file from byte 0.
    w.write_at(0, &[0xAA; 1000]).unwrap();
    for (i, frame) in content.chunks(40_000).enumerate() {
        w.write_at((i * 40_000) as u64, frame).unwrap();
    }
    assert_eq!(partial.hash_stats().restarts, 1);
    let done = partial.finalize(&dir.path().join("f")).unwrap();
    assert_eq!(done.digest, Some(sha256(&content)));
}

#[test]
fn a_locked_partial_cannot_be_opened_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p");
    let first = PartialFile::create(&path, 10, None, &StoreConfig::default()).unwrap();
    let err = PartialFile::create(&path, 10, None, &StoreConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    drop(first);
    PartialFile::create(&path, 10, None, &StoreConfig::default()).unwrap();
}

#[test]
fn creating_beyond_free_space_fails_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.safetensors");
    let free = hfd_store::free_space(dir.path()).unwrap();
    let err =
        PartialFile::create(&path, free + (1 << 40), None, &StoreConfig::default()).unwrap_err();
    assert!(err.is_disk_full(), "{err:?}");
    assert!(err.to_string().contains("big.safetensors"));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    let _ = Path::new("");
}
