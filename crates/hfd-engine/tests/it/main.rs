//! Engine tests against an in-memory `RangeSource` with fault injection.

mod engine;
mod resume;
mod source;
