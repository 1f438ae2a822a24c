//! The `hfd-rs` command-line tool.
fn main() {}
