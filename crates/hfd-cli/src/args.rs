//! The command line, as users of hfd.sh, aria2c and `hf download` type it.
//!
//! Raw flags only: no environment lookups and no validation beyond parsing.
//! `settings` turns these into configs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hfd_types::ByteSize;

/// Fast, resumable, verified downloads of Hugging Face Hub repositories.
#[derive(Debug, Parser)]
#[command(
    name = "hfd-rs",
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
      hfd-rs gpt2\n  \
      hfd-rs meta-llama/Llama-2-7b-hf --threads 16 --hf_token hf_xxx\n  \
      hfd-rs HuggingFaceFW/fineweb --dataset --include 'sample/10BT/*' --exclude '*.md'\n  \
      HF_ENDPOINT=https://hf-mirror.com hfd-rs Qwen/Qwen2-0.5B --local-dir ./qwen\n  \
      hfd-rs gpt2 config.json tokenizer.json --dry-run\n  \
      hfd-rs download org/data --repo-type dataset --local-dir D --max-workers 8   (as `hf download`)\n\n\
      Exit codes: 0 ok, 1 internal error, 2 usage (also: --include matching nothing),\n\
      3 not found, 4 authentication or gated, 5 network (no answer, retries spent),\n\
      6 rate limited, 7 integrity, 8 disk, 9 bad server answer, 130 interrupted.\n\
      After a failure that left partial files, run the same command again to resume.\n\n\
      Log lines are coloured only on a terminal; NO_COLOR, TERM=dumb and CLICOLOR_FORCE are honoured."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    #[command(flatten)]
    pub(crate) download: DownloadArgs,
}

#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per run; boxing buys nothing"
)]
pub(crate) enum Command {
    /// Download a repository (the default when no subcommand is given).
    Download(DownloadArgs),
    /// Measure mirror throughput: each endpoint at each connection count,
    /// into a null sink, then recommend the fastest setting.
    Bench(BenchArgs),
    /// Re-hash a finished --local-dir download against the hub's hashes;
    /// with --repair, download the bad files again.
    Verify(VerifyArgs),
    /// Serve a hub cache or --local-dir downloads as a Hub mirror
    /// (HF_ENDPOINT=http://host:port), read-only; docs/serve.md.
    Serve(crate::serve::ServeArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Options of `hfd-rs verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) hub: HubArgs,

    /// The folder a download wrote (its --local-dir), a hub-cache snapshot
    /// folder (`<cache>/models--org--name/snapshots/<commit>`), or with
    /// --cache-dir the repository id.
    #[arg(value_name = "DIR|REPO_ID")]
    pub(crate) dir: PathBuf,

    /// Check the repository's snapshot in this hub cache (DIR|REPO_ID is then
    /// the repository id).
    #[arg(long, value_name = "CACHE")]
    pub(crate) cache_dir: Option<PathBuf>,

    /// With --cache-dir: the branch, tag or commit whose snapshot is checked
    /// (its `refs/` entry). Default: main.
    #[arg(long, requires = "cache_dir")]
    pub(crate) revision: Option<String>,

    /// Download files that fail the check again.
    #[arg(long)]
    pub(crate) repair: bool,

    /// Check against the local metadata only, without asking the hub.
    #[arg(long, conflicts_with = "repair")]
    pub(crate) offline: bool,

    /// Repository id (default: the one recorded in DIR by hfd-rs).
    #[arg(long = "repo", value_name = "REPO_ID", conflicts_with = "cache_dir")]
    pub(crate) repo_id: Option<String>,

    /// Print the report as one JSON document.
    #[arg(long)]
    pub(crate) json: bool,

    /// More log output on stderr.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

/// Options of `hfd-rs bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) hub: HubArgs,

    /// Repository id.
    #[arg(value_name = "REPO_ID")]
    pub(crate) repo_id: String,

    /// File to fetch (default: the largest file of the repository).
    #[arg(value_name = "FILE")]
    pub(crate) file: Option<String>,

    /// Branch, tag or commit. Default: main.
    #[arg(long)]
    pub(crate) revision: Option<String>,

    /// Connection counts to try, comma-separated; then the download's
    /// connection ramp up to the largest, which reports the count it settled on.
    #[arg(
        short = 'x',
        long,
        value_delimiter = ',',
        default_value = "1,4,8,16,32",
        value_name = "N,N,..."
    )]
    pub(crate) threads: Vec<usize>,

    /// Time spent on each measurement, in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
    pub(crate) duration: f64,

    /// Bytes fetched at most per measurement.
    #[arg(long, default_value = "1G", value_name = "SIZE")]
    pub(crate) max_bytes: ByteSize,

    /// Print the results as one JSON document.
    #[arg(long)]
    pub(crate) json: bool,

    /// More log output on stderr.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

/// Which repository type, which hub, how to reach it: the flags every
/// command shares.
#[derive(Debug, Args, Default)]
pub(crate) struct HubArgs {
    /// The repository is a dataset (hfd.sh spelling of `--repo-type dataset`).
    #[arg(long)]
    pub(crate) dataset: bool,

    /// Repository type.
    #[arg(long, value_enum, conflicts_with = "dataset")]
    pub(crate) repo_type: Option<RepoTypeArg>,

    /// Hub endpoint; repeat it for fail-over (`bench` compares them).
    /// Default: $HF_ENDPOINT, else https://huggingface.co.
    #[arg(long, value_name = "URL")]
    pub(crate) endpoint: Vec<String>,

    /// Access token. Default: $HF_TOKEN, else the token saved by `hf auth login`.
    #[arg(
        long,
        visible_alias = "hf_token",
        alias = "hf-token",
        value_name = "TOKEN"
    )]
    pub(crate) token: Option<String>,

    /// Proxy URL (http://, socks5://, socks5h://). Default: $HTTPS_PROXY /
    /// $ALL_PROXY, honouring $NO_PROXY.
    #[arg(long, value_name = "URL")]
    pub(crate) proxy: Option<String>,

    /// Seconds to wait for the hub's first answer to a request (and to
    /// connect) before counting it as failed. Default: 10.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<f64>,

    /// Retries of a failed request before giving up. Default: 10 for file
    /// transfers (a connection that writes bytes again starts afresh), 4 for
    /// hub metadata requests; N sets both.
    #[arg(long, value_name = "N")]
    pub(crate) retries: Option<u32>,

    /// Longest wait between two retries, in seconds (waits double from 1 s up
    /// to this). Default: 15 for file transfers, 8 for hub metadata; sets both.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) retry_wait: Option<f64>,

    /// Speak HTTP/1.1 only, also over TLS (as curl --http1.1). Default:
    /// HTTP/2 when a TLS server offers it.
    #[arg(long = "http1.1", conflicts_with = "http2_prior_knowledge")]
    pub(crate) http1_1: bool,

    /// Speak HTTP/2 to http:// endpoints without asking first (h2c, as curl
    /// --http2-prior-knowledge), for mirrors behind a proxy that serves it.
    #[arg(long)]
    pub(crate) http2_prior_knowledge: bool,
}

/// Repository type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RepoTypeArg {
    Model,
    Dataset,
    Space,
}

/// Options of a download.
#[derive(Debug, Args, Default)]
pub(crate) struct DownloadArgs {
    #[command(flatten)]
    pub(crate) hub: HubArgs,

    /// Repository id, e.g. `gpt2` or `org/name`.
    #[arg(value_name = "REPO_ID")]
    pub(crate) repo_id: Option<String>,

    /// Paths inside the repository to fetch (default: every file).
    #[arg(value_name = "FILES")]
    pub(crate) files: Vec<String>,

    /// Branch, tag, `refs/pr/N` or commit; pinned to one commit at start. Default: main.
    #[arg(long)]
    pub(crate) revision: Option<String>,

    /// Only files whose repo path matches one of these globs (several per flag, repeatable).
    #[arg(long, num_args = 1.., value_name = "PATTERN")]
    pub(crate) include: Vec<String>,

    /// Skip files whose repo path matches one of these globs (several per flag, repeatable).
    #[arg(long, num_args = 1.., value_name = "PATTERN")]
    pub(crate) exclude: Vec<String>,

    /// Target folder. Default: ./<repo name>, as hfd.sh. With --cache-dir
    /// too, files go here (as `hf download`).
    #[arg(long, value_name = "DIR")]
    pub(crate) local_dir: Option<PathBuf>,

    /// Write the Hugging Face cache layout (blobs, snapshots, refs) under the
    /// hub cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)
    /// instead of a plain folder.
    #[arg(long, conflicts_with = "local_dir")]
    pub(crate) cache: bool,

    /// Write the Hugging Face cache layout under DIR (implies --cache).
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,

    /// Download every selected file again, even when it is up to date.
    #[arg(long, visible_alias = "force-download")]
    pub(crate) force: bool,

    /// Accepted for `huggingface-cli download` compatibility: resuming is
    /// always on.
    #[arg(long, hide = true)]
    pub(crate) resume_download: bool,

    /// Accepted for `huggingface-cli download` compatibility and ignored
    /// (as in huggingface_hub today): --local-dir gets real files.
    #[arg(long, hide = true, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) local_dir_use_symlinks: Option<String>,

    /// Accepted for hfd.sh compatibility; the token alone authenticates.
    #[arg(long = "hf_username", alias = "hf-username", value_name = "NAME")]
    pub(crate) hf_username: Option<String>,

    /// Connections per file at most (aria2c -x). A large file starts with 4
    /// and doubles them while each step makes it faster (a mirror that caps
    /// connections per client or in total gets no more than help). Default: 8.
    #[arg(short = 'x', long, value_name = "N")]
    pub(crate) threads: Option<usize>,

    /// Open all -x connections of a file at once, as aria2c does, instead of
    /// starting with a few and adding while it pays: for a mirror known to
    /// throttle each connection.
    #[arg(long)]
    pub(crate) fixed_connections: bool,

    /// Files downloaded at the same time (aria2c -j; `hf download
    /// --max-workers`). Default: 4. Small files (up to -k, one request
    /// each) start at this many and grow while it pays, up to 256.
    #[arg(short = 'j', long, visible_alias = "max-workers", value_name = "N")]
    pub(crate) jobs: Option<usize>,

    /// TCP connections per host at most. Default: threads x jobs. Over
    /// HTTP/2, requests beyond this share the connections as streams.
    #[arg(long, value_name = "N")]
    pub(crate) max_connections: Option<usize>,

    /// Smallest segment a file is split into (aria2c -k). Default: 1M. In
    /// a file's tail a healthy last piece is split finer (halves of 64 KiB at
    /// least) so its connections end together.
    #[arg(short = 'k', long, value_name = "SIZE")]
    pub(crate) min_split_size: Option<ByteSize>,

    /// Memory for bytes in flight, e.g. 256M. HTTP/2 windows, read buffers
    /// and write batches are shares of it, one per connection the files can
    /// use at once (at most threads x jobs), and small files in flight take
    /// theirs: a larger budget helps long round trips. Default: 64M.
    #[arg(long, value_name = "SIZE")]
    pub(crate) memory_budget: Option<ByteSize>,

    /// Cap the total download rate, e.g. 10M (bytes per second).
    #[arg(long, value_name = "SIZE")]
    pub(crate) limit_rate: Option<ByteSize>,

    /// Download only shard I of N (0-based, I < N) of the selected files, for
    /// Slurm arrays and Kubernetes Indexed Jobs (docs/cluster.md). `auto`:
    /// from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT (minus
    /// SLURM_ARRAY_TASK_MIN), JOB_COMPLETION_INDEX/JOB_COMPLETIONS, or HFD_SHARD.
    #[arg(long, value_name = "I/N|auto", value_parser = parse_shard)]
    pub(crate) shard: Option<ShardArg>,

    /// Print what would be downloaded, download nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Machine-readable output on stdout: with --dry-run the plan as one JSON
    /// document, otherwise newline-delimited JSON events (docs/json-events.md).
    #[arg(long)]
    pub(crate) json: bool,

    /// Print only errors.
    #[arg(short, long)]
    pub(crate) quiet: bool,

    /// More log output on stderr (-v, -vv). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Accepted for hfd.sh compatibility and ignored: hfd-rs is its own downloader.
    #[arg(long, value_name = "aria2c|wget")]
    pub(crate) tool: Option<String>,
}

/// `--shard`: a given shard, or `auto` (read from the scheduler's
/// environment by `settings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShardArg {
    /// `--shard auto`.
    Auto,
    /// `--shard I/N`.
    Given(hfd::shard::Shard),
}

fn parse_shard(text: &str) -> Result<ShardArg, String> {
    if text == "auto" {
        return Ok(ShardArg::Auto);
    }
    hfd::shard::Shard::parse(text).map(ShardArg::Given)
}
