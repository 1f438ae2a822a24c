//! Integration tests of hfd-hub against hfd-testkit's FakeHub (and, for
//! answers the fake hub cannot give, a tiny raw HTTP server on loopback).

mod errors;
mod listing;
mod raw;
mod resolve;
mod support;
