//! `raise_open_file_limit` lifts a low soft limit of open files (macOS
//! starts processes at 256). A separate test binary: it lowers the limit of
//! its own process first.
#![cfg(unix)]

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

#[test]
fn a_low_soft_limit_is_raised_towards_the_hard_one() {
    let before = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(256),
            maximum: before.maximum,
        },
    )
    .expect("lowering the soft limit is always allowed");
    hfd_store::raise_open_file_limit();
    let after = getrlimit(Resource::Nofile);
    let wanted = before.maximum.map_or(8192, |max| max.min(8192));
    assert_eq!(after.current, Some(wanted));
    assert_eq!(
        after.maximum, before.maximum,
        "the hard limit is left alone"
    );
}
