//! End-to-end tests of the `hfd-rs` binary.
