//! Integration tests of hfd-store against a tempdir.

mod journal;
mod partial;
#[cfg(unix)]
mod target_dir;
