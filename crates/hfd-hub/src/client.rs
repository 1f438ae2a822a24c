//! [`HubClient`]: pinning, listing, resolving, with the redirect and token
//! policy of docs/hub-protocol.md §4.3 and §6.2. One job per file:
//!
//! - `hub_client`: the handle, the token policy, one request;
//! - `config`: [`HubConfig`];
//! - `retry`: [`MetadataRetry`] and the retry loop;
//! - `redirect`: the redirect policy and following a chain;
//! - `error_answer`: a non-success answer turned into an error;
//! - `api`: JSON API GETs;
//! - `listing`: pin, list, [`RepoPlan`];
//! - `pages`: the listing page by page ([`TreePages`]);
//! - `checkpoint`: a listing's progress kept between runs ([`ListingStore`]);
//! - `resolve`: [`ResolvedFile`] and [`OpenedFile`];
//! - `scrub`: server text scrubbed of the token and of signed query parameters.

mod api;
mod checkpoint;
mod config;
mod error_answer;
mod hub_client;
mod listing;
mod pages;
mod redirect;
mod resolve;
mod retry;
mod scrub;

pub use checkpoint::ListingStore;
pub use config::HubConfig;
pub use hub_client::HubClient;
pub use listing::RepoPlan;
pub use pages::TreePages;
pub use resolve::{OpenedFile, ResolvedFile};
pub use retry::MetadataRetry;
