//! Shared helpers.

use std::time::Duration;

use hfd_http::{HttpClient, HttpConfig};
use hfd_hub::{
    Endpoint, HubClient, HubConfig, MetadataRetry, RepoId, RepoPlan, RepoRef, RepoType, Revision,
    Selection, Token,
};
use hfd_testkit::{FakeHub, RepoFixture};

/// A client for `endpoint` with no retries (errors surface at once).
pub(crate) fn client(endpoint: &str, token: Option<&str>) -> HubClient {
    client_with(endpoint, token, |_| {})
}

/// A client whose config `tweak` may change.
pub(crate) fn client_with(
    endpoint: &str,
    token: Option<&str>,
    tweak: impl FnOnce(&mut HubConfig),
) -> HubClient {
    let mut config = HubConfig::default();
    config.endpoint = Endpoint::parse(endpoint).unwrap();
    config.token = token.map(|t| Token::new(t).unwrap());
    config.retry = MetadataRetry::none();
    tweak(&mut config);
    HubClient::new(config, http())
}

/// A plain HTTP client with short timeouts.
pub(crate) fn http() -> HttpClient {
    let mut config = HttpConfig::default();
    config.connect_timeout = Duration::from_secs(5);
    config.stall_timeout = Duration::from_secs(10);
    HttpClient::new(config).unwrap()
}

/// A client for a FakeHub, trusting its CA in TLS mode.
pub(crate) fn hub_client(hub: &FakeHub, token: Option<&str>) -> HubClient {
    let mut http_config = HttpConfig::default();
    http_config.stall_timeout = Duration::from_secs(10);
    if let Some(ca) = hub.ca_cert_path() {
        http_config.extra_ca_files.push(ca.to_path_buf());
    }
    if hub.transport() == hfd_testkit::Transport::H2c {
        http_config.http2_prior_knowledge = true;
    }
    let mut config = HubConfig::default();
    config.endpoint = Endpoint::parse(hub.endpoint()).unwrap();
    config.token = token.map(|t| Token::new(t).unwrap());
    config.retry = MetadataRetry::none();
    HubClient::new(config, HttpClient::new(http_config).unwrap())
}

pub(crate) fn repo(id: &str, repo_type: RepoType) -> RepoRef {
    RepoRef::new(RepoId::new(id).unwrap(), repo_type)
}

/// Everything at `main`: what most tests plan.
pub(crate) async fn plan_all(client: &HubClient, repo: &RepoRef) -> RepoPlan {
    client
        .plan(repo, &Revision::default(), &Selection::all())
        .await
        .unwrap()
}

/// A fake hub serving one repo.
pub(crate) async fn serve(fixture: RepoFixture) -> FakeHub {
    FakeHub::builder().repo(fixture).start().await.unwrap()
}
