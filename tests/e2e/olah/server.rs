//! A real Olah (the self-hosted Hugging Face mirror, `pip install olah`)
//! serving git repositories from a mirrors folder, offline, on a free
//! loopback port; stopped when dropped.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long Olah may take to start (Python imports, uvicorn).
const START_TIMEOUT: Duration = Duration::from_mins(1);

/// Whether Olah (and git, to build its repositories) can run here.
/// `false` means skip; with `CI` set, a missing Olah fails the test.
pub(crate) fn available() -> bool {
    let olah = Command::new("python3")
        .args(["-c", "import olah"])
        .stdout(Stdio::null())
        .output();
    let git = Command::new("git").arg("--version").output();
    let why = match (olah, git) {
        (Ok(o), Ok(g)) if o.status.success() && g.status.success() => return true,
        (Ok(o), _) if !o.status.success() => String::from_utf8_lossy(&o.stderr).into_owned(),
        (Err(e), _) => format!("python3: {e}"),
        (_, Err(e)) => format!("git: {e}"),
        (_, Ok(g)) => String::from_utf8_lossy(&g.stderr).into_owned(),
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set but Olah cannot run (python3 -m pip install olah; git): {why}"
    );
    eprintln!(
        "SKIPPED Olah test: python3 with olah, or git, is not available ({})",
        why.lines().last().unwrap_or("")
    );
    false
}

/// One running Olah process.
pub(crate) struct Olah {
    child: Child,
    endpoint: String,
    output: PathBuf,
}

impl Olah {
    /// Starts Olah on a free loopback port, serving the repositories under
    /// `mirrors` (see [`super::git_repo::GitRepo::write`]); its cache,
    /// logs and output go to `work`. Offline, with its upstream at a closed
    /// loopback port, so nothing leaves the machine. Returns once it accepts
    /// connections.
    pub(crate) fn start(mirrors: &Path, work: &Path) -> Self {
        let port = free_port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let netloc = addr.to_string();
        let config = work.join("olah.toml");
        std::fs::write(
            &config,
            format!(
                "[basic]\n\
                 host = \"127.0.0.1\"\n\
                 port = {port}\n\
                 repos-path = {repos:?}\n\
                 mirrors-path = [{mirrors:?}]\n\
                 hf-scheme = \"http\"\n\
                 hf-netloc = \"127.0.0.1:9\"\n\
                 hf-lfs-netloc = \"127.0.0.1:9\"\n\
                 mirror-scheme = \"http\"\n\
                 mirror-netloc = \"{netloc}\"\n\
                 mirror-lfs-netloc = \"{netloc}\"\n\
                 [accessibility]\n\
                 offline = true\n",
                repos = work.join("cache").display().to_string(),
                mirrors = mirrors.display().to_string(),
            ),
        )
        .expect("write olah.toml");
        let output = work.join("olah.out");
        let log = std::fs::File::create(&output).expect("create olah.out");
        let child = Command::new("python3")
            .args(["-m", "olah.server", "-c"])
            .arg(&config)
            .arg("--log-path")
            .arg(work.join("logs"))
            .current_dir(work)
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("ALL_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("all_proxy")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn python3 -m olah.server");
        let mut olah = Self {
            child,
            endpoint: format!("http://{netloc}"),
            output,
        };
        olah.wait_ready(addr);
        olah
    }

    /// The endpoint URL to give hfd-rs (`--endpoint`) or `HF_ENDPOINT`.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The requests Olah has logged so far, as `METHOD path status`.
    pub(crate) fn requests(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        text.lines().filter_map(access_line).collect()
    }

    /// Olah's output so far, for failure messages.
    pub(crate) fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    fn wait_ready(&mut self, addr: SocketAddr) {
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll olah") {
                panic!(
                    "Olah exited ({status}) before listening:\n{}",
                    self.output()
                );
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "Olah did not listen on {addr} within {START_TIMEOUT:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Olah {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// `METHOD path status` from one uvicorn access-log line
/// (`... - "GET /path HTTP/1.1" 200 OK`).
fn access_line(line: &str) -> Option<String> {
    let (_, rest) = line.split_once(" - \"")?;
    let (request, status) = rest.split_once("\" ")?;
    let request = request.strip_suffix(" HTTP/1.1")?;
    let code = status.split_whitespace().next()?;
    Some(format!("{request} {code}"))
}
