//! Settings: flags > environment > defaults. The only module that reads
//! environment variables.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hfd::bench::BenchConfig;
use hfd::hfd_engine::EngineConfig;
use hfd::hfd_http::{HttpConfig, NoProxy, ProxyConfig, ProxyUrl};
use hfd::hfd_hub::{
    DEFAULT_ENDPOINT, Endpoint, HubConfig, RepoId, RepoRef, RepoType, Revision, Selection,
    TokenSource, find_token,
};
use hfd::{DownloadRequest, FetchPolicy, OutputLayout, SnapshotEntries};
use hfd_types::ByteSize;

use crate::args::{BenchArgs, DownloadArgs, RepoTypeArg, VerifyArgs};

/// Everything a download run needs, resolved once.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) request: DownloadRequest,
    pub(crate) http: HttpConfig,
    /// One hub configuration per endpoint, in fail-over order (never empty).
    pub(crate) hubs: Vec<HubConfig>,
    pub(crate) engine: EngineConfig,
    /// `--limit-rate` in bytes per second.
    pub(crate) limit_rate: Option<u64>,
    /// Notes to show the user once (ignored flags and the like).
    pub(crate) notes: Vec<String>,
}

/// Everything `hfd-rs bench` needs.
#[derive(Debug)]
pub(crate) struct BenchSettings {
    pub(crate) repo: RepoRef,
    pub(crate) revision: Revision,
    pub(crate) file: Option<String>,
    /// One hub configuration per endpoint to compare.
    pub(crate) endpoints: Vec<HubConfig>,
    pub(crate) http: HttpConfig,
    pub(crate) threads: Vec<usize>,
    pub(crate) config: BenchConfig,
}

fn env(name: &str) -> Option<String> {
    #[expect(
        clippy::disallowed_methods,
        reason = "this module is where env is read"
    )]
    std::env::var(name).ok()
}

fn env_bool(name: &str) -> bool {
    env(name)
        .is_some_and(|v| matches!(v.to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE"))
}

/// Whether this build runs on Windows, where the home folder and `~` differ.
const WINDOWS: bool = cfg!(windows);

fn home_dir() -> Option<PathBuf> {
    home_from(env, WINDOWS)
}

/// The home folder as huggingface_hub finds it (Python's
/// `os.path.expanduser("~")`): `HOME` on Unix; on Windows `USERPROFILE`,
/// else `HOMEDRIVE` + `HOMEPATH` (`HOME` is ignored there). The hub cache
/// therefore defaults to `%USERPROFILE%\.cache\huggingface\hub`.
fn home_from(env: impl Fn(&str) -> Option<String>, windows: bool) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if !windows {
        return set("HOME").map(PathBuf::from);
    }
    set("USERPROFILE")
        .or_else(|| Some(set("HOMEDRIVE").unwrap_or_default() + &set("HOMEPATH")?))
        .map(PathBuf::from)
}

/// `value` without a leading `~/` (or `~\` on Windows), when it has one.
fn strip_tilde(value: &str, windows: bool) -> Option<&str> {
    value
        .strip_prefix("~/")
        .or_else(|| value.strip_prefix("~\\").filter(|_| windows))
}

/// The hub cache root (docs/hub-protocol.md §9.1): `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`,
/// `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`, `~/.cache/huggingface/hub`.
fn hub_cache_dir() -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    let expand = |value: String| -> PathBuf {
        match (strip_tilde(&value, WINDOWS), home_dir()) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => PathBuf::from(value),
        }
    };
    if let Some(dir) = set("HF_HUB_CACHE").or_else(|| set("HUGGINGFACE_HUB_CACHE")) {
        return Some(expand(dir));
    }
    if let Some(home) = set("HF_HOME") {
        return Some(expand(home).join("hub"));
    }
    if let Some(xdg) = set("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("huggingface").join("hub"));
    }
    Some(home_dir()?.join(".cache").join("huggingface").join("hub"))
}

fn positive(name: &str, value: Option<usize>, default: usize) -> Result<NonZeroUsize> {
    let value = value.unwrap_or(default);
    NonZeroUsize::new(value).with_context(|| format!("--{name} must be at least 1"))
}

fn repo_type(dataset: bool, repo_type: Option<RepoTypeArg>) -> RepoType {
    match (dataset, repo_type) {
        (true, _) | (false, Some(RepoTypeArg::Dataset)) => RepoType::Dataset,
        (false, Some(RepoTypeArg::Space)) => RepoType::Space,
        (false, Some(RepoTypeArg::Model) | None) => RepoType::Model,
    }
}

/// `--endpoint` values, else `HF_ENDPOINT`, else the hub.
fn endpoints(flags: &[String]) -> Result<Vec<Endpoint>> {
    if flags.is_empty() {
        let text = env("HF_ENDPOINT")
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        return Ok(vec![Endpoint::parse(text.trim())?]);
    }
    flags
        .iter()
        .map(|e| Endpoint::parse(e.trim()).map_err(Into::into))
        .collect()
}

/// The hub configuration for one endpoint: the token and where it may go.
fn hub_config(endpoint: Endpoint, token_flag: Option<&str>) -> Result<HubConfig> {
    let found = find_token(token_flag, env, home_dir().as_deref())?;
    let found =
        found.filter(|f| f.source.is_explicit() || !env_bool("HF_HUB_DISABLE_IMPLICIT_TOKEN"));
    // A saved login is sent to the official hub only; a token the user put
    // on the command line or in HF_TOKEN is for whatever endpoint they chose.
    let send_token_to_endpoint = endpoint.is_official()
        || found
            .as_ref()
            .is_some_and(|f| matches!(f.source, TokenSource::Explicit | TokenSource::Env(_)));
    let mut hub = HubConfig::default();
    hub.endpoint = endpoint;
    hub.token = found.map(|f| f.token);
    hub.send_token_to_endpoint = send_token_to_endpoint;
    Ok(hub)
}

/// Transport settings: proxy and extra CA certificates.
fn http_config(proxy_flag: Option<&str>) -> Result<HttpConfig> {
    let mut http = HttpConfig::default();
    http.proxy = match proxy_flag {
        Some(url) => {
            Some(ProxyConfig::all(ProxyUrl::parse(url)?).with_no_proxy(NoProxy::from_env(env)))
        }
        None => ProxyConfig::from_env(env)?,
    };
    if let Some(ca) = env("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
        http.extra_ca_files.push(PathBuf::from(ca));
    }
    Ok(http)
}

pub(crate) fn resolve(args: &DownloadArgs) -> Result<Settings> {
    let mut notes = Vec::new();
    let Some(repo_id) = args.repo_id.as_deref() else {
        bail!("missing REPO_ID (try `hfd-rs --help`)");
    };
    let repo = RepoRef::new(
        RepoId::new(repo_id)?,
        repo_type(args.hub.dataset, args.hub.repo_type),
    );
    let revision = Revision::new(args.revision.as_deref().unwrap_or("main"))?;
    let mut selection = Selection::all();
    if !args.include.is_empty() {
        selection = selection.include(args.include.iter().map(String::as_str));
    }
    if !args.exclude.is_empty() {
        selection = selection.exclude(args.exclude.iter().map(String::as_str));
    }
    if !args.files.is_empty() {
        selection = selection.paths(args.files.iter().map(String::as_str));
    }
    let local_dir = args.local_dir.clone().unwrap_or_else(|| {
        // hfd.sh's default: ./<repo name>.
        PathBuf::from(repo_id.rsplit('/').next().unwrap_or(repo_id))
    });
    let mut request = DownloadRequest::new(repo, revision, local_dir);
    request.selection = selection;
    if args.force {
        request.fetch_policy = FetchPolicy::RefetchAll;
    }
    let cache_root = if let Some(dir) = &args.cache_dir {
        Some(dir.clone())
    } else if args.cache {
        Some(hub_cache_dir().context(
            "cannot find the hub cache: set HF_HUB_CACHE or HF_HOME, or pass --cache-dir",
        )?)
    } else {
        None
    };
    if let Some(root) = cache_root {
        // huggingface_hub's switch for filesystems without symlinks (docs/hub-protocol.md §9.4).
        let entries = if env_bool("HF_HUB_DISABLE_SYMLINKS") {
            SnapshotEntries::Copies
        } else {
            SnapshotEntries::Symlinks
        };
        request.layout = OutputLayout::HubCache { root, entries };
    }

    // Several --endpoint values: tried in order, the next one when a run
    // fails for a reason another endpoint may not have (network, 5xx, 429,
    // not a hub).
    let hubs = endpoints(&args.hub.endpoint)?
        .into_iter()
        .map(|e| hub_config(e, args.hub.token.as_deref()))
        .collect::<Result<Vec<_>>>()?;

    if let Some(tool) = &args.tool {
        notes.push(format!(
            "--tool {tool} ignored: hfd-rs downloads with its own engine"
        ));
    }

    let mut http = http_config(args.hub.proxy.as_deref())?;

    let mut engine = EngineConfig::default();
    engine.connections_per_file = positive("threads", args.threads, 8)?;
    engine.files_in_flight = positive("jobs", args.jobs, 4)?;
    // Requests in flight: every file in flight may use all its
    // connections, as aria2c's -x per download with -j downloads.
    let requests = engine
        .connections_per_file
        .get()
        .saturating_mul(engine.files_in_flight.get());
    engine.max_connections = NonZeroUsize::new(requests).expect("product of two positives");
    // TCP connections per host: the same by default (HTTP/1.1 needs one per
    // request); --max-connections caps the sockets, and over HTTP/2 the
    // requests beyond it share them as streams.
    http.max_connections_per_host = match args.max_connections {
        Some(0) => bail!("--max-connections must be at least 1"),
        Some(n) => NonZeroUsize::new(n).expect("checked above"),
        None => engine.max_connections,
    };
    if let Some(size) = args.min_split_size {
        if size.bytes() == 0 {
            bail!("--min-split-size must be at least 1 byte");
        }
        engine.min_split_size = size;
    } else {
        engine.min_split_size = ByteSize::mib(1);
    }
    let limit_rate = match args.limit_rate {
        Some(rate) if rate.bytes() == 0 => bail!("--limit-rate must be at least 1 byte per second"),
        Some(rate) => Some(rate.bytes()),
        None => None,
    };

    Ok(Settings {
        request,
        http,
        hubs,
        engine,
        limit_rate,
        notes,
    })
}

pub(crate) fn resolve_bench(args: &BenchArgs) -> Result<BenchSettings> {
    let repo = RepoRef::new(
        RepoId::new(&args.repo_id)?,
        repo_type(args.hub.dataset, args.hub.repo_type),
    );
    let revision = Revision::new(args.revision.as_deref().unwrap_or("main"))?;
    let endpoints = endpoints(&args.hub.endpoint)?
        .into_iter()
        .map(|e| hub_config(e, args.hub.token.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    let mut threads = args.threads.clone();
    threads.sort_unstable();
    threads.dedup();
    if threads.is_empty() || threads[0] == 0 {
        bail!("--threads needs connection counts of at least 1, e.g. 1,4,8,16");
    }
    if !(args.duration.is_finite() && args.duration > 0.0 && args.duration <= 3600.0) {
        bail!("--duration must be between 0 and 3600 seconds");
    }
    let mut config = BenchConfig::default();
    config.duration = Duration::from_secs_f64(args.duration);
    config.max_bytes = args.max_bytes.bytes().max(1);
    Ok(BenchSettings {
        repo,
        revision,
        file: args.file.clone(),
        endpoints,
        http: http_config(args.hub.proxy.as_deref())?,
        threads,
        config,
    })
}

/// Everything `hfd-rs verify` needs.
#[derive(Debug)]
pub(crate) struct VerifySettings {
    /// The repository given on the command line (else the folder's record).
    pub(crate) repo: Option<RepoRef>,
    pub(crate) hub: HubConfig,
    pub(crate) http: HttpConfig,
    pub(crate) engine: EngineConfig,
}

pub(crate) fn resolve_verify(args: &VerifyArgs) -> Result<VerifySettings> {
    let repo = match &args.repo_id {
        Some(id) => Some(RepoRef::new(
            RepoId::new(id)?,
            repo_type(args.hub.dataset, args.hub.repo_type),
        )),
        None => None,
    };
    let endpoint = endpoints(&args.hub.endpoint)?.swap_remove(0);
    Ok(VerifySettings {
        repo,
        hub: hub_config(endpoint, args.hub.token.as_deref())?,
        http: http_config(args.hub.proxy.as_deref())?,
        engine: EngineConfig::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn home_is_userprofile_on_windows_and_home_elsewhere() {
        let all = [
            ("HOME", "/home/u"),
            ("USERPROFILE", r"C:\Users\u"),
            ("HOMEDRIVE", "D:"),
            ("HOMEPATH", r"\Users\v"),
        ];
        assert_eq!(home_from(vars(&all), false), Some("/home/u".into()));
        assert_eq!(home_from(vars(&all), true), Some(r"C:\Users\u".into()));
        assert_eq!(home_from(vars(&all[2..]), true), Some(r"D:\Users\v".into()));
        // HOME alone does not count on Windows (as in Python).
        assert_eq!(home_from(vars(&all[..1]), true), None);
        assert_eq!(home_from(vars(&[("USERPROFILE", "")]), true), None);
    }

    #[test]
    fn tilde_backslash_is_home_on_windows_only() {
        assert_eq!(strip_tilde("~/hf", false), Some("hf"));
        assert_eq!(strip_tilde("~/hf", true), Some("hf"));
        assert_eq!(strip_tilde(r"~\hf", true), Some("hf"));
        assert_eq!(strip_tilde(r"~\hf", false), None);
        assert_eq!(strip_tilde("hf", true), None);
    }
}
