//! `hfd_store::decode` (journal decoding) on arbitrary bytes: never panics;
//! what it accepts is consistent, inside the file, and re-encodes to the
//! same records.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(journal) = hfd_store::decode(data) else {
        return;
    };
    assert_eq!(
        journal.valid_len + journal.dropped_bytes,
        data.len() as u64,
        "every byte is either valid or dropped"
    );
    assert_eq!(journal.dropped_bytes > 0, journal.tail_defect.is_some());
    let size = journal.header.identity.size;
    for range in &journal.ranges {
        assert!(range.end() <= size, "{range} outside a {size}-byte file");
    }
    let again = hfd_store::decode(&hfd_store::encode(&journal.header, &journal.ranges))
        .expect("a re-encoded journal decodes");
    assert_eq!(again.ranges, journal.ranges);
    assert_eq!(again.header, journal.header);
    assert!(again.tail_defect.is_none());
    // The valid prefix alone decodes to the same records.
    let prefix = hfd_store::decode(&data[..journal.valid_len as usize]).expect("valid prefix");
    assert_eq!(prefix.ranges, journal.ranges);
});
