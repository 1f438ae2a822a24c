//! hfd-testkit (under construction).
