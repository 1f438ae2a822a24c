//! Integration tests of hfd-store against a tempdir.

mod journal;
mod partial;
