//! End-to-end tests: the real `hfd-rs` binary against `hfd-testkit`'s fake
//! hub, started in-process on loopback.

#![expect(
    clippy::disallowed_methods,
    reason = "tests read PATH and poll child processes"
)]

mod cli;
mod hostile;
mod progress;
mod resume;
mod support;
mod verify;
mod windows;
