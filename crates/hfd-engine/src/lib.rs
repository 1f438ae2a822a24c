//! hfd-engine (under construction).
