//! Integration tests of hfd-store against a tempdir.

mod journal;
mod long_paths;
mod partial;
#[cfg(unix)]
mod target_dir;
