//! hfd-serve: `hfd-rs serve`, a hub cache or `--local-dir` folders served
//! as a Hugging Face Hub mirror, so a lab downloads a model once.
//!
//! It speaks the part of the hub API clients use (revision info, the tree
//! API with `Link` pagination, `paths-info`, `resolve` with `Range`, `HEAD`,
//! `X-Repo-Commit`, `ETag`, `X-Linked-Etag`, `X-Linked-Size` and the hub's
//! error codes) over HTTP/1.1, h2c and TLS, read-only. With
//! [`UpstreamConfig`] it pulls misses through hfd's downloader into the
//! cache (see `pull`). See `docs/serve.md` for usage and the security
//! model.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hfd_serve::ServeError> {
//! use hfd_serve::{ServeConfig, Server};
//! let mut config = ServeConfig::new("127.0.0.1:8090".parse().unwrap());
//! config.caches.push("/data/hf-cache".into());
//! let server = Server::bind(config).await?;
//! println!("serving on {}", server.url());
//! server.run(tokio_util::sync::CancellationToken::new()).await;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod answer;
mod arrival;
mod body;
mod listing;
mod pull;
mod range;
mod route;
mod server;
mod service;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

pub use body::{RequestLog, RequestRecord};
pub use pull::{ACCESS_TTL, UpstreamConfig};
pub use store::{LocalDirError, LocalSource};

use crate::service::Service;
use crate::store::Catalog;

/// What to serve and how.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Address to listen on. The CLI's default is `127.0.0.1:8090`.
    pub listen: SocketAddr,
    /// Hub cache roots (`HF_HUB_CACHE` folders), searched in order.
    pub caches: Vec<PathBuf>,
    /// `--local-dir` folders; they win over caches for their repo.
    pub local_dirs: Vec<LocalSource>,
    /// PEM certificate chain and key: serve HTTPS (h2 and http/1.1).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Pull-through: fetch misses from these hubs.
    pub upstream: Option<UpstreamConfig>,
    /// Entries per tree page (the hub's is 1000).
    pub tree_page_size: usize,
    /// Called once per request, when its answer is sent or abandoned.
    pub log: Option<RequestLog>,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("caches", &self.caches)
            .field("local_dirs", &self.local_dirs)
            .field("tls", &self.tls)
            .field("upstream", &self.upstream)
            .field("tree_page_size", &self.tree_page_size)
            .finish_non_exhaustive()
    }
}

impl ServeConfig {
    /// Nothing served yet, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            caches: Vec::new(),
            local_dirs: Vec::new(),
            tls: None,
            upstream: None,
            tree_page_size: 1000,
            log: None,
        }
    }
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// Nothing to serve.
    #[error("nothing to serve: give a cache (--cache-dir) or a --local-dir")]
    NothingToServe,
}

/// A bound server.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    service: Arc<Service>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.service.local_addr)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds the address and loads the TLS material; serves nothing until
    /// [`Server::run`].
    pub async fn bind(config: ServeConfig) -> Result<Self, ServeError> {
        if config.caches.is_empty() && config.local_dirs.is_empty() && config.upstream.is_none() {
            return Err(ServeError::NothingToServe);
        }
        let tls = match &config.tls {
            Some((cert, key)) => Some(server::tls_acceptor(cert, key)?),
            None => None,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let mut caches = config.caches;
        if let Some(up) = &config.upstream
            && !caches.contains(&up.cache)
        {
            caches.insert(0, up.cache.clone());
        }
        let service = Service {
            catalog: Arc::new(Catalog::new(caches, config.local_dirs)),
            upstream: config.upstream.map(|u| Arc::new(pull::Upstream::new(u))),
            page_size: config.tree_page_size.max(1),
            log: config.log,
            scheme: if tls.is_some() { "https" } else { "http" },
            local_addr,
        };
        Ok(Self {
            listener,
            tls,
            service: Arc::new(service),
        })
    }

    /// The bound address (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.service.local_addr
    }

    /// `http://addr` or `https://addr`: what clients set `HF_ENDPOINT` to.
    pub fn url(&self) -> String {
        format!("{}://{}", self.service.scheme, self.service.local_addr)
    }

    /// Serves until `shutdown` is cancelled; open connections are dropped then.
    pub async fn run(self, shutdown: CancellationToken) {
        server::accept_loop(self.listener, self.tls, self.service, shutdown).await;
    }
}
