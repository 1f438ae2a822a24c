//! hfd (under construction).
