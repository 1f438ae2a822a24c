//! hfd-hub (under construction).
