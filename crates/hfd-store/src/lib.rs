//! hfd-store (under construction).
