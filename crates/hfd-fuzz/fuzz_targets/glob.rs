//! `hfd_hub::Glob`: never panics, finishes in time (libFuzzer's -timeout
//! catches exponential backtracking), agrees with plain equality when the
//! pattern has no wildcards, and `pattern*` matches whatever `pattern`
//! matches, with anything appended.
#![no_main]

use hfd_hub::Glob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // pattern NUL path [NUL suffix]
    let mut parts = text.splitn(3, '\0');
    let pattern = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let suffix = parts.next().unwrap_or_default();
    let glob = Glob::new(pattern);
    let matched = glob.matches(path);
    let normalized = glob.as_str();
    if !normalized.contains(['*', '?', '[']) {
        assert_eq!(matched, normalized == path, "{pattern:?} vs {path:?}");
    }
    if matched {
        let star = Glob::new(&format!("{normalized}*"));
        assert!(
            star.matches(&format!("{path}{suffix}")),
            "{pattern:?}* should match {path:?}{suffix:?}"
        );
    }
    assert!(Glob::new("*").matches(path));
});
