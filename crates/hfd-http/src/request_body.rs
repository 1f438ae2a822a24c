//! [`RequestBody`]: the body type of outgoing requests.

use bytes::Bytes;
use http_body_util::Full;

/// Body type of outgoing requests.
pub type RequestBody = Full<Bytes>;
