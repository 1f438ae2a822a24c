//! Resident memory of the mmap backend does not grow with file size.
//!
//! A separate test binary so no other test's allocations or mappings share
//! the process while RSS is sampled.

use hfd_store::{Backend, PartialFile, StoreConfig};
use hfd_types::ByteSize;

/// Resident file-backed pages of this process (`RssFile` in
/// /proc/self/status), in bytes.
fn rss_file() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("RssFile:"))
        .expect("RssFile in /proc/self/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn mapped_windows_do_not_accumulate_in_rss() {
    const SIZE: u64 = 256 << 20;
    const WINDOW: u64 = 8 << 20;
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::default();
    config.backend = Backend::Mmap;
    config.window_size = ByteSize::new(WINDOW);
    let partial = PartialFile::create(&dir.path().join("p"), SIZE, None, &config).unwrap();
    assert_eq!(partial.backend(), Backend::Mmap);
    let base = rss_file();
    let frame = vec![0x5Au8; 64 * 1024];
    let mut writer = partial.writer();
    let mut peak = 0;
    let mut offset = 0;
    while offset < SIZE {
        writer.write_at(offset, &frame).unwrap();
        offset += frame.len() as u64;
        if offset % (4 << 20) == 0 {
            peak = peak.max(rss_file().saturating_sub(base));
        }
    }
    drop(writer);
    // One window (plus slack for the page-aligned start) may be resident;
    // a whole-file mapping would leave up to 256 MiB resident.
    assert!(peak <= 3 * WINDOW, "file-backed RSS grew by {peak} bytes");
    assert!(partial.is_complete());
}
