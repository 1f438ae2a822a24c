//! Settings: flags > environment > defaults. The only module that reads
//! environment variables.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hfd::bench::BenchConfig;
use hfd::hfd_engine::{EngineConfig, TransferRetry};
use hfd::hfd_http::{HttpConfig, NoProxy, ProxyConfig, ProxyUrl};
use hfd::hfd_hub::{
    DEFAULT_ENDPOINT, Endpoint, HubConfig, RepoId, RepoRef, RepoType, Revision, Selection,
    TokenSource, find_token,
};
use hfd::{DownloadRequest, FetchPolicy, OutputLayout, SnapshotEntries};
use hfd_types::{ByteSize, MemoryBudget};

use crate::args::{BenchArgs, DownloadArgs, HubArgs, RepoTypeArg, VerifyArgs};

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
    /// Where the token came from, for access-denied hints.
    pub(crate) tokens: TokenUse,
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
    /// Notes to show the user once.
    pub(crate) notes: Vec<String>,
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
pub(crate) fn hub_cache_dir() -> Option<PathBuf> {
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

/// Whether log and error lines on stderr get colours: only on a terminal,
/// never with `NO_COLOR` or `TERM=dumb`, always with `CLICOLOR_FORCE`
/// (set and not `0`).
pub(crate) fn colour_stderr(stderr_is_terminal: bool) -> bool {
    if env("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    if env("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if env("TERM").is_some_and(|t| t == "dumb") {
        return false;
    }
    stderr_is_terminal
}

/// Whether `RUST_LOG` chooses the log filter.
pub(crate) fn rust_log_set() -> bool {
    env("RUST_LOG").is_some_and(|v| !v.is_empty())
}

/// One endpoint as typed; a bare host (`hf-mirror.com`) is taken as
/// `https://` with a note, since that is what every mirror serves.
fn endpoint(text: &str, notes: &mut Vec<String>) -> Result<Endpoint> {
    let text = text.trim();
    if !text.contains("://") {
        let assumed = format!("https://{}", text.trim_end_matches('/'));
        notes.push(format!(
            "endpoint {text:?} has no scheme; using {assumed} (write http:// for a plain-HTTP mirror)"
        ));
        return Ok(Endpoint::parse(&assumed)?);
    }
    Ok(Endpoint::parse(text)?)
}

/// `--endpoint` values, else `HF_ENDPOINT`, else the hub.
fn endpoints(flags: &[String], notes: &mut Vec<String>) -> Result<Vec<Endpoint>> {
    if flags.is_empty() {
        let text = env("HF_ENDPOINT")
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        return Ok(vec![endpoint(&text, notes)?]);
    }
    flags.iter().map(|e| endpoint(e, notes)).collect()
}

/// Where the token of a run came from, for messages about access.
#[derive(Debug, Clone, Default)]
pub(crate) struct TokenUse {
    /// A token was given with --token or HF_TOKEN.
    pub(crate) given: bool,
    /// A saved `hf auth login` token exists but is not sent to these
    /// (non-official) endpoints.
    pub(crate) withheld_from: Vec<String>,
}

/// The hub configuration for one endpoint: the token and where it may go.
pub(crate) fn hub_config(
    endpoint: Endpoint,
    args: &HubArgs,
    tokens: &mut TokenUse,
) -> Result<HubConfig> {
    let found = find_token(args.token.as_deref(), env, home_dir().as_deref())?;
    let found =
        found.filter(|f| f.source.is_explicit() || !env_bool("HF_HUB_DISABLE_IMPLICIT_TOKEN"));
    let given = found
        .as_ref()
        .is_some_and(|f| matches!(f.source, TokenSource::Explicit | TokenSource::Env(_)));
    // A saved login is sent to the official hub only; a token the user put
    // on the command line or in HF_TOKEN is for whatever endpoint they chose.
    let send_token_to_endpoint = endpoint.is_official() || given;
    tokens.given |= given;
    if found.is_some() && !send_token_to_endpoint {
        tokens.withheld_from.push(endpoint.as_str().to_owned());
    }
    let mut hub = HubConfig::default();
    hub.answer_timeout = Some(answer_timeout(args)?);
    if let Some(n) = args.retries {
        hub.retry.max_retries = n;
    }
    if let Some(wait) = retry_wait(args)? {
        hub.retry.max_delay = wait;
        hub.retry.base_delay = hub.retry.base_delay.min(wait);
    }
    hub.endpoint = endpoint;
    hub.token = found.map(|f| f.token);
    hub.send_token_to_endpoint = send_token_to_endpoint;
    Ok(hub)
}

/// Default of `--timeout`: long enough for a slow mirror's first answer,
/// short enough that an endpoint which accepts and never answers (the
/// official hub seen from mainland China) fails within a minute.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn seconds(name: &str, value: f64) -> Result<Duration> {
    if !(value.is_finite() && value > 0.0 && value <= 86_400.0) {
        bail!("--{name} must be a number of seconds between 0 and 86400");
    }
    Ok(Duration::from_secs_f64(value))
}

fn answer_timeout(args: &HubArgs) -> Result<Duration> {
    args.timeout
        .map_or(Ok(DEFAULT_TIMEOUT), |t| seconds("timeout", t))
}

fn retry_wait(args: &HubArgs) -> Result<Option<Duration>> {
    args.retry_wait
        .map(|w| seconds("retry-wait", w))
        .transpose()
}

/// The transfer retry budget: longer than the metadata one by default, so a
/// network drop of a minute or two is ridden out.
fn transfer_retry(args: &HubArgs) -> Result<TransferRetry> {
    let mut retry = TransferRetry::default();
    retry.max_retries = args.retries.unwrap_or(10);
    retry.max_delay = retry_wait(args)?.unwrap_or(Duration::from_secs(15));
    retry.base_delay = retry.base_delay.min(retry.max_delay);
    Ok(retry)
}

/// Transport settings: proxy, extra CA certificates, connect timeout.
pub(crate) fn http_config(args: &HubArgs) -> Result<HttpConfig> {
    let mut http = HttpConfig::default();
    http.connect_timeout = answer_timeout(args)?;
    http.proxy = match args.proxy.as_deref() {
        Some(url) => {
            Some(ProxyConfig::all(ProxyUrl::parse(url)?).with_no_proxy(NoProxy::from_env(env)))
        }
        None => ProxyConfig::from_env(env)?,
    };
    if let Some(ca) = env("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
        http.extra_ca_files.push(PathBuf::from(ca));
    }
    http.http2 = !args.http1_1;
    http.http2_prior_knowledge = args.http2_prior_knowledge;
    Ok(http)
}

/// One-line notes for flags accepted from hfd.sh and `huggingface-cli
/// download` that change nothing here.
fn compatibility_notes(args: &DownloadArgs, notes: &mut Vec<String>) {
    if args.resume_download {
        notes.push(
            "--resume-download is not needed: interrupted downloads always resume".to_owned(),
        );
    }
    if args.local_dir_use_symlinks.is_some() {
        notes.push(
            "--local-dir-use-symlinks ignored (as in huggingface_hub): --local-dir gets real files"
                .to_owned(),
        );
    }
    if let Some(tool) = &args.tool {
        notes.push(format!(
            "--tool {tool} ignored: hfd-rs downloads with its own engine"
        ));
    }
}

/// The hub cache root files go to, if the cache layout was asked for.
fn cache_root(args: &DownloadArgs, notes: &mut Vec<String>) -> Result<Option<PathBuf>> {
    Ok(if args.local_dir.is_some() {
        // `hf download --local-dir D --cache-dir C` writes real files to D
        // (metadata in D/.cache/huggingface); so does this.
        if let Some(dir) = &args.cache_dir {
            notes.push(format!(
                "--cache-dir {} unused: with --local-dir, files and their metadata go to the local dir",
                dir.display()
            ));
        }
        None
    } else if let Some(dir) = &args.cache_dir {
        Some(dir.clone())
    } else if args.cache {
        Some(hub_cache_dir().context(
            "cannot find the hub cache: set HF_HUB_CACHE or HF_HOME, or pass --cache-dir",
        )?)
    } else {
        None
    })
}

pub(crate) fn resolve(args: &DownloadArgs) -> Result<Settings> {
    let mut notes = Vec::new();
    let Some(repo_id) = args.repo_id.as_deref() else {
        // `--include '*.json' org/model`: the multi-value flag took the id.
        if let Some(id) = args
            .include
            .iter()
            .chain(&args.exclude)
            .find(|p| p.contains('/') && !p.contains(['*', '?', '[']))
        {
            bail!(
                "missing REPO_ID: {id:?} was read as an --include/--exclude pattern; \
                 put the repo id before the patterns, or end them with --"
            );
        }
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
    compatibility_notes(args, &mut notes);
    let local_dir = args.local_dir.clone().unwrap_or_else(|| {
        // hfd.sh's default: ./<repo name>.
        PathBuf::from(repo_id.rsplit('/').next().unwrap_or(repo_id))
    });
    let mut request = DownloadRequest::new(repo, revision, local_dir);
    request.selection = selection;
    // A dry run leaves the target alone: no listing progress kept there.
    request.resume_listing = !args.dry_run;
    if args.force {
        request.fetch_policy = FetchPolicy::RefetchAll;
    }
    if let Some(arg) = args.shard {
        request.shard = Some(shard(arg)?);
    }
    let cache_root = cache_root(args, &mut notes)?;
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
    let mut tokens = TokenUse::default();
    let hubs = endpoints(&args.hub.endpoint, &mut notes)?
        .into_iter()
        .map(|e| hub_config(e, &args.hub, &mut tokens))
        .collect::<Result<Vec<_>>>()?;

    let mut http = http_config(&args.hub)?;

    let mut engine = EngineConfig::default();
    engine.retry = transfer_retry(&args.hub)?;
    engine.connections_per_file = positive("threads", args.threads, 8)?;
    engine.files_in_flight = positive("jobs", args.jobs, 4)?;
    engine.connection_ramp = !args.fixed_connections;
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
    share_memory_budget(args.memory_budget, &mut engine, &mut http)?;
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
        tokens,
    })
}

/// Checks `--memory-budget` and gives it to the engine, which shares it per
/// run by the connections the run's files can use. Until then (the
/// listing's connections) each connection gets the share of the most
/// connections the flags allow.
fn share_memory_budget(
    budget: Option<ByteSize>,
    engine: &mut EngineConfig,
    http: &mut HttpConfig,
) -> Result<()> {
    let budget = match budget {
        None => MemoryBudget::DEFAULT,
        Some(size) => MemoryBudget::new(size).with_context(|| {
            format!(
                "--memory-budget {size} is too small: at least {} is needed",
                MemoryBudget::minimum(1)
            )
        })?,
    };
    let connections = engine
        .max_connections
        .get()
        .max(http.max_connections_per_host.get());
    let share = budget.share(connections);
    http.receive_window = share.receive_window;
    engine.write_batch = ByteSize::new(share.write_batch);
    engine.memory_budget = Some(budget);
    Ok(())
}

pub(crate) fn resolve_bench(args: &BenchArgs) -> Result<BenchSettings> {
    let repo = RepoRef::new(
        RepoId::new(&args.repo_id)?,
        repo_type(args.hub.dataset, args.hub.repo_type),
    );
    let revision = Revision::new(args.revision.as_deref().unwrap_or("main"))?;
    let mut notes = Vec::new();
    let endpoints = endpoints(&args.hub.endpoint, &mut notes)?
        .into_iter()
        .map(|e| hub_config(e, &args.hub, &mut TokenUse::default()))
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
        http: http_config(&args.hub)?,
        threads,
        config,
        notes,
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
    // With --cache-dir the positional argument is the repository id.
    let id = args
        .repo_id
        .as_deref()
        .or_else(|| args.cache_dir.as_ref().and_then(|_| args.dir.to_str()));
    let repo = match id {
        Some(id) => Some(RepoRef::new(
            RepoId::new(id)?,
            repo_type(args.hub.dataset, args.hub.repo_type),
        )),
        None => None,
    };
    let endpoint = endpoints(&args.hub.endpoint, &mut Vec::new())?.swap_remove(0);
    let mut engine = EngineConfig::default();
    engine.retry = transfer_retry(&args.hub)?;
    Ok(VerifySettings {
        repo,
        hub: hub_config(endpoint, &args.hub, &mut TokenUse::default())?,
        http: http_config(&args.hub)?,
        engine,
    })
}

/// `--shard I/N`, or with `auto` the scheduler's environment: a Slurm job
/// array (`SLURM_ARRAY_TASK_ID` - `SLURM_ARRAY_TASK_MIN` of
/// `SLURM_ARRAY_TASK_COUNT`), a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`
/// of `JOB_COMPLETIONS`, which the Job manifest sets from
/// `spec.completions`: Kubernetes does not inject it), or `HFD_SHARD=I/N`.
fn shard(arg: crate::args::ShardArg) -> Result<hfd::shard::Shard> {
    shard_from(arg, env)
}

fn shard_from(
    arg: crate::args::ShardArg,
    env: impl Fn(&str) -> Option<String>,
) -> Result<hfd::shard::Shard> {
    use hfd::shard::Shard;
    if let crate::args::ShardArg::Given(shard) = arg {
        return Ok(shard);
    }
    let num = |name: &str| -> Result<Option<u32>> {
        match env(name).filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .with_context(|| format!("--shard auto: {name}={v:?} is not a number")),
        }
    };
    if let Some(id) = num("SLURM_ARRAY_TASK_ID")? {
        let count = num("SLURM_ARRAY_TASK_COUNT")?.context(
            "--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not",
        )?;
        let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let index = id.checked_sub(min).with_context(|| {
            format!("--shard auto: SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")
        })?;
        return Shard::new(index, count).map_err(|e| {
            anyhow::anyhow!("--shard auto (Slurm array, use --array=0-{} or a contiguous range with step 1): {e}", count.saturating_sub(1))
        });
    }
    if let Some(index) = num("JOB_COMPLETION_INDEX")? {
        let count = num("JOB_COMPLETIONS")?.context(
            "--shard auto: JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not (set it in the Job manifest to spec.completions, see docs/cluster.md)",
        )?;
        return Shard::new(index, count)
            .map_err(|e| anyhow::anyhow!("--shard auto (Kubernetes): {e}"));
    }
    if let Some(value) = env("HFD_SHARD").filter(|v| !v.trim().is_empty()) {
        return Shard::parse(&value).map_err(|e| anyhow::anyhow!("--shard auto: HFD_SHARD: {e}"));
    }
    anyhow::bail!(
        "--shard auto: no shard in the environment (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or HFD_SHARD)"
    )
}

#[cfg(test)]
mod shard_tests {
    use super::shard_from;
    use crate::args::ShardArg::Auto;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn auto_reads_each_scheduler() {
        let s = shard_from(
            Auto,
            with(&[
                ("SLURM_ARRAY_TASK_ID", "7"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
                ("SLURM_ARRAY_TASK_MIN", "5"),
            ]),
        )
        .unwrap();
        assert_eq!((s.index(), s.count()), (2, 4));
        let s = shard_from(
            Auto,
            with(&[("JOB_COMPLETION_INDEX", "3"), ("JOB_COMPLETIONS", "8")]),
        )
        .unwrap();
        assert_eq!((s.index(), s.count()), (3, 8));
        let s = shard_from(Auto, with(&[("HFD_SHARD", "1/2")])).unwrap();
        assert_eq!((s.index(), s.count()), (1, 2));
        assert!(shard_from(Auto, with(&[])).is_err());
        assert!(shard_from(Auto, with(&[("JOB_COMPLETION_INDEX", "3")])).is_err());
        // 1-based Slurm arrays (--array=1-4) without MIN are not guessed.
        assert!(
            shard_from(
                Auto,
                with(&[
                    ("SLURM_ARRAY_TASK_ID", "4"),
                    ("SLURM_ARRAY_TASK_COUNT", "4")
                ])
            )
            .is_err()
        );
        // An explicit shard wins over the environment.
        let given = hfd::shard::Shard::new(1, 4).unwrap();
        let from_flag = shard_from(
            crate::args::ShardArg::Given(given),
            with(&[("HFD_SHARD", "0/2")]),
        );
        assert_eq!(from_flag.unwrap(), given);
    }
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
    fn the_memory_budget_sets_windows_and_batches_and_refuses_too_little() {
        let (mut engine, mut http) = (EngineConfig::default(), HttpConfig::default());
        engine.max_connections = NonZeroUsize::new(64).unwrap();
        http.max_connections_per_host = NonZeroUsize::new(4).unwrap();
        share_memory_budget(None, &mut engine, &mut http).unwrap();
        // 48 MiB beyond the fixed part over 64 connections: 768 KiB each.
        assert_eq!(http.receive_window, 384 << 10);
        assert_eq!(engine.write_batch, ByteSize::kib(192));
        assert_eq!(engine.memory_budget, Some(MemoryBudget::DEFAULT));
        share_memory_budget(Some(ByteSize::mib(528)), &mut engine, &mut http).unwrap();
        assert_eq!(http.receive_window, 4 << 20);
        let err = share_memory_budget(Some(ByteSize::mib(1)), &mut engine, &mut http)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--memory-budget 1"), "{err}");
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
