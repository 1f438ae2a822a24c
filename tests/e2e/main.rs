//! End-to-end tests: the real `hfd-rs` binary against `hfd-testkit`'s fake
//! hub, started in-process on loopback.

#![expect(
    clippy::disallowed_methods,
    reason = "tests read PATH and poll child processes"
)]

mod bulk;
mod cli;
mod failover;
mod far;
mod heal;
mod hostile;
mod listing_ahead;
mod olah;
mod prefix;
mod progress;
mod ramp;
mod resume;
mod serve;
mod shared;
mod split;
mod support;
mod usability;
mod verify;
mod windows;
mod zoo;
