//! Power-cut model test: no journal record ever points at lost bytes.
//!
//! Writers fill a partial file from several threads while another thread
//! flushes (and so journals) at random moments. The store's probe logs every
//! durability-relevant operation in the order it happened. A simulated power
//! cut after any prefix of that log keeps only what the model says is
//! durable:
//!
//! - partial bytes: only writes that completed before a flush took its
//!   snapshot, and only once that flush's sync returned; every other byte
//!   reads back as garbage;
//! - journal bytes: what the last journal sync covered; later writes and
//!   truncations may be absent, complete, torn, zeroed or garbage.
//!
//! The crash image is written back to disk, reopened with the real
//! `open_or_create`, and every range it resumes must lie inside the durable
//! bytes (and hold the right content). After a few cuts the download is
//! completed and must verify against its digest.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hfd_types::{ByteRange, ContentDigest};

use crate::probe::{Event, Probe};
use crate::resume::JournalState;
use crate::{
    Backend, ContentHasher, FileIdentity, JournalHeader, PartialFile, RangeSet, SegmentLayout,
    StoreConfig, journal_path,
};

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// Plain threads (no runtime here), so a short real sleep is what we want.
#[expect(
    clippy::disallowed_methods,
    reason = "plain test threads, no async runtime to block"
)]
fn pause(micros: u64) {
    std::thread::sleep(Duration::from_micros(micros));
}

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0xC0FF_EE00);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// What survives a cut after `events[..cut]`.
struct CrashImage {
    durable: RangeSet,
    journal: Option<Vec<u8>>,
}

fn crash_image(
    events: &[Event],
    cut: usize,
    durable_at_start: &RangeSet,
    journal_at_start: Option<&[u8]>,
    rng: &mut Rng,
) -> CrashImage {
    let mut durable = durable_at_start.clone();
    let mut pending: Vec<ByteRange> = Vec::new();
    let mut syncing: Option<Vec<ByteRange>> = None;
    let mut synced = journal_at_start.map(<[u8]>::to_vec);
    let mut current = synced.clone();
    for event in &events[..cut] {
        match event {
            Event::DataWrite(r) => pending.push(*r),
            Event::DataReset => {
                durable = RangeSet::new();
                pending.clear();
            }
            Event::SyncStart => syncing = Some(std::mem::take(&mut pending)),
            Event::SyncDone => {
                for r in syncing.take().unwrap_or_default() {
                    durable.insert(r);
                }
            }
            Event::JournalWrite { offset, bytes } => {
                let j = current.get_or_insert_with(Vec::new);
                let end = *offset as usize + bytes.len();
                if j.len() < end {
                    j.resize(end, 0);
                }
                j[*offset as usize..end].copy_from_slice(bytes);
            }
            Event::JournalTruncate(len) => {
                current.get_or_insert_with(Vec::new).truncate(*len as usize);
            }
            Event::JournalSync => synced.clone_from(&current),
        }
    }
    let journal = match (synced, current) {
        (s, c) if s == c => s,
        (s, None) => s,
        (s, Some(c)) => {
            let s_bytes = s.clone().unwrap_or_default();
            let common = s_bytes.iter().zip(&c).take_while(|(a, b)| a == b).count();
            let mut image = c.clone();
            match rng.below(5) {
                0 => return finish(durable, s),
                1 => {}
                2 => image.truncate(rng.between(common as u64, c.len() as u64) as usize),
                3 => {
                    let from = rng.between(common as u64, c.len() as u64) as usize;
                    image[from..].fill(0);
                }
                _ => {
                    for b in &mut image[common..] {
                        if rng.below(3) == 0 {
                            *b = rng.next() as u8;
                        }
                    }
                }
            }
            Some(image)
        }
    };
    finish(durable, journal)
}

fn finish(durable: RangeSet, journal: Option<Vec<u8>>) -> CrashImage {
    CrashImage { durable, journal }
}

fn header(size: u64, digest: &ContentDigest) -> JournalHeader {
    JournalHeader::new(
        FileIdentity::new("org/m", "c0ffee", "model.bin", size, digest.to_hex()),
        SegmentLayout::new(16 * 1024, 3),
    )
}

/// One download of `data` from `missing` ranges: `writers` threads write
/// random-sized pieces in random order while a flusher flushes at random.
fn run_writers(partial: &PartialFile, data: &[u8], missing: &[ByteRange], rng: &mut Rng) {
    let writers = rng.between(1, 4) as usize;
    let mut pieces: Vec<Vec<ByteRange>> = vec![Vec::new(); writers];
    for r in missing {
        let mut at = r.start();
        while at < r.end() {
            let len = rng.between(1, 24 * 1024).min(r.end() - at);
            let w = rng.below(writers as u64) as usize;
            pieces[w].push(ByteRange::with_len(at, len).unwrap());
            at += len;
        }
    }
    for list in &mut pieces {
        // Each writer goes through its pieces in a shuffled order.
        for i in (1..list.len()).rev() {
            list.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    let running = AtomicUsize::new(writers);
    let seeds: Vec<u64> = (0..=writers).map(|_| rng.next()).collect();
    std::thread::scope(|scope| {
        for (list, seed) in pieces.into_iter().zip(&seeds) {
            let mut writer = partial.writer();
            let running = &running;
            let mut rng = Rng::new(*seed);
            scope.spawn(move || {
                for piece in list {
                    let bytes = &data[piece.start() as usize..piece.end() as usize];
                    writer.write_at(piece.start(), bytes).unwrap();
                    if rng.below(2) == 0 {
                        pause(rng.below(200));
                    }
                }
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
        let mut rng = Rng::new(seeds[writers]);
        while running.load(Ordering::SeqCst) > 0 {
            pause(rng.below(400));
            partial.flush().unwrap();
        }
    });
    partial.flush().unwrap();
}

fn write_image(path: &std::path::Path, data: &[u8], image: &CrashImage, rng: &mut Rng) {
    let mut bytes: Vec<u8> = (0..data.len()).map(|_| rng.next() as u8).collect();
    for r in image.durable.ranges() {
        let (a, b) = (r.start() as usize, r.end() as usize);
        bytes[a..b].copy_from_slice(&data[a..b]);
    }
    std::fs::write(path, &bytes).unwrap();
    let jpath = journal_path(path);
    match &image.journal {
        Some(j) => std::fs::write(&jpath, j).unwrap(),
        None => {
            let _ = std::fs::remove_file(&jpath);
        }
    }
}

#[test]
fn no_journal_record_points_at_lost_bytes() {
    const SCHEDULES: u64 = 40;
    const CUTS: usize = 3;
    let mut resumed_total = 0u64;
    let mut discarded = 0;
    for seed in 0..SCHEDULES {
        let mut rng = Rng::new(seed + 1);
        let size = rng.between(1, 512 * 1024) as usize;
        let data = content(seed, size);
        let digest = ContentHasher::digest_like(&ContentDigest::Sha256([0; 32]), &data);
        let config = StoreConfig {
            backend: if seed % 2 == 0 {
                Backend::Mmap
            } else {
                Backend::Pwrite
            },
            window_size: hfd_types::ByteSize::kib(64),
            ..StoreConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin.hfd-0123.part");
        let mut durable = RangeSet::new();
        let mut journal: Option<Vec<u8>> = None;
        for round in 0..=CUTS {
            let log = Arc::new(Mutex::new(Vec::new()));
            let (partial, resume) = PartialFile::open_inner(
                &crate::TargetDir::open(dir.path()).unwrap(),
                std::path::Path::new("model.bin.hfd-0123.part"),
                size as u64,
                Some(digest),
                &config,
                Some(header(size as u64, &digest)),
                Probe::recording(Arc::clone(&log)),
            )
            .unwrap();
            // The property: what the journal resumes was durable.
            for r in resume.ranges.ranges() {
                assert!(
                    durable.contains_range(*r),
                    "seed {seed} round {round}: journal resumes {r} but only {:?} survived the cut",
                    durable.ranges()
                );
            }
            if matches!(resume.journal, JournalState::Discarded(_)) {
                discarded += 1;
            }
            resumed_total += resume.ranges.total();
            let missing = resume.ranges.gaps(size as u64);
            run_writers(&partial, &data, &missing, &mut rng);
            if round == CUTS {
                let out = dir.path().join("model.bin");
                let done = partial.finalize(&out).unwrap();
                assert_eq!(done.digest, Some(digest), "seed {seed}");
                assert_eq!(std::fs::read(&out).unwrap(), data, "seed {seed}");
                assert!(!journal_path(&path).exists(), "journal removed at finalize");
                break;
            }
            drop(partial);
            let events = log.lock().unwrap().clone();
            let cut = rng.below(events.len() as u64 + 1) as usize;
            let image = crash_image(&events, cut, &durable, journal.as_deref(), &mut rng);
            write_image(&path, &data, &image, &mut rng);
            durable = image.durable;
            journal = image.journal;
        }
    }
    // Guard against a model that never resumes anything (which would pass
    // trivially).
    println!("resumed {resumed_total} bytes over all cuts; {discarded} journals discarded");
    assert!(resumed_total > 0, "no schedule resumed any byte");
}
