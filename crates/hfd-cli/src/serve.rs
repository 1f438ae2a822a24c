//! `hfd-rs serve`: a hub cache or `--local-dir` downloads served as a Hub
//! mirror (crates/hfd-serve); this file only turns flags into its config.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use hfd::hfd_engine::EngineConfig;
use hfd::hfd_http::HttpClient;
use hfd::hfd_hub::Endpoint;
use hfd_serve::{LocalSource, RequestRecord, ServeConfig, Server, UpstreamConfig};

use crate::args::HubArgs;
use crate::exit::Failure;
use crate::output;
use crate::settings;

/// Options of `hfd-rs serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Hub cache to serve (repeatable, searched in order). Default: the hub
    /// cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)
    /// unless --local-dir is given.
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Vec<PathBuf>,

    /// A folder `hfd-rs --local-dir` wrote (repeatable). `org/name=DIR`
    /// (or `datasets/org/name=DIR`) names the repo when DIR records none.
    #[arg(long, value_name = "[REPO=]DIR")]
    pub(crate) local_dir: Vec<String>,

    /// Address to listen on. The default is loopback only.
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR:PORT")]
    pub(crate) listen: SocketAddr,

    /// Pull-through: fetch what the cache lacks from this hub or mirror
    /// into the (first) cache; repeat for fail-over in order.
    #[arg(long, value_name = "URL")]
    pub(crate) upstream: Vec<String>,

    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,

    /// The server's own token for pulls, used only after upstream granted the
    /// client access (default: $HF_TOKEN, else the saved login). Never sent
    /// to clients.
    #[arg(long, visible_alias = "hf_token", value_name = "TOKEN")]
    pub(crate) token: Option<String>,

    /// Proxy for upstream requests (http://, socks5://, socks5h://).
    #[arg(long, value_name = "URL")]
    pub(crate) proxy: Option<String>,

    /// No request log.
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// More log output on stderr (-v, -vv). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

fn config(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let mut config = ServeConfig::new(args.listen);
    for spec in &args.local_dir {
        config.local_dirs.push(LocalSource::open(spec)?);
    }
    config.caches.clone_from(&args.cache_dir);
    let needs_cache =
        config.caches.is_empty() && (config.local_dirs.is_empty() || !args.upstream.is_empty());
    if needs_cache {
        config.caches.push(settings::hub_cache_dir().context(
            "cannot find the hub cache: set HF_HUB_CACHE or HF_HOME, or pass --cache-dir",
        )?);
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.tls = Some((cert.clone(), key.clone()));
    }
    if !args.upstream.is_empty() {
        let mut hubs = Vec::new();
        let mut server_token = None;
        let upstream_args = HubArgs {
            token: args.token.clone(),
            proxy: args.proxy.clone(),
            ..HubArgs::default()
        };
        for url in &args.upstream {
            let endpoint = Endpoint::parse(url.trim())?;
            let mut hub =
                settings::hub_config(endpoint, &upstream_args, &mut settings::TokenUse::default())?;
            server_token = server_token.or(hub.token.take());
            // The client's token goes to the upstream it asked us to reach.
            hub.send_token_to_endpoint = true;
            hubs.push(hub);
        }
        let cache = config.caches[0].clone();
        std::fs::create_dir_all(&cache)
            .with_context(|| format!("cannot create the cache {}", cache.display()))?;
        config.upstream = Some(UpstreamConfig {
            hubs,
            http: HttpClient::new(settings::http_config(&upstream_args)?)?,
            engine: EngineConfig::default(),
            server_token,
            cache,
        });
    }
    if !args.quiet {
        config.log = Some(Arc::new(|r: &RequestRecord| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{r}");
        }));
    }
    Ok(config)
}

pub(crate) async fn run(args: &ServeArgs) -> Result<(), Failure> {
    let config = config(args).map_err(Failure::from_anyhow)?;
    let what: Vec<String> = config
        .local_dirs
        .iter()
        .map(|l| format!("{} ({})", l.root.display(), l.repo))
        .chain(
            config
                .caches
                .iter()
                .map(|c| format!("cache {}", c.display())),
        )
        .collect();
    let pull = config.upstream.as_ref().map(|u| {
        u.hubs
            .iter()
            .map(|h| h.endpoint.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    });
    let server = Server::bind(config)
        .await
        .map_err(|e| Failure::from_anyhow(e.into()))?;
    let addr = server.local_addr();
    let reach = if addr.ip().is_loopback() {
        "loopback only; --listen 0.0.0.0:PORT serves the network"
    } else {
        "reachable from the network"
    };
    println!("hfd-rs serve: listening on {} ({reach})", server.url());
    println!("serving {}", what.join(", "));
    if let Some(pull) = pull {
        println!("pulling misses from {pull}");
    }
    println!("clients: HF_ENDPOINT={}", server.url());
    let _ = std::io::stdout().flush();
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.cancel();
        }
    });
    server.run(shutdown).await;
    output::note_line("stopped");
    Ok(())
}
