//! Support for tests that meet the outside world: finding third-party binaries, starting
//! real proxies (tinyproxy, microsocks) on loopback, and running the real Python client
//! (`huggingface_hub`) against a [`FakeHub`](crate::FakeHub).
//!
//! Every helper that needs a program returns `None` after printing why the test is
//! skipped when the program is missing, and panics instead when `CI` is set, so CI never
//! passes a test that did not run.

#![expect(
    clippy::disallowed_methods,
    reason = "test support reads CI and PATH and polls child processes"
)]

mod binary;
mod proxy;
mod python;

pub use binary::{find_binary, free_port, require_binary};
pub use proxy::{Microsocks, ProxyProcess, Tinyproxy};
pub use python::{python_client_version, python_command, run_python_json};
