//! Real proxy servers started on loopback: tinyproxy (HTTP CONNECT) and microsocks
//! (SOCKS5). Their logs show which targets they were asked for.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::binary::{free_port, require_binary};

/// A proxy process on 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl ProxyProcess {
    fn spawn(mut command: Command, port: u16, log: PathBuf, dir: tempfile::TempDir) -> Self {
        let out = std::fs::File::create(dir.path().join("stdout.log")).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("proxy starts");
        let mut proxy = Self {
            child,
            port,
            log,
            dir,
        };
        proxy.wait_listening();
        proxy
    }

    /// Bounded wait (5 s) until the port accepts connections.
    fn wait_listening(&mut self) {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                let out = std::fs::read_to_string(self.dir.path().join("stdout.log"));
                panic!("proxy exited early ({status}): {out:?} {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("proxy did not start listening on {}", self.port);
    }

    /// Stops the proxy and returns its log (read after exit, so complete).
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log_text()
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tinyproxy (Debian package `tinyproxy`) on a free port with basic auth, logging every
/// `CONNECT` it serves.
#[derive(Clone, Debug)]
pub struct Tinyproxy<'a> {
    /// Basic-auth user.
    pub user: &'a str,
    /// Basic-auth password (tinyproxy's config allows no special characters here).
    pub pass: &'a str,
    /// Source address of its outgoing connections, so the origin can tell proxied
    /// connections from direct ones.
    pub bind: Option<Ipv4Addr>,
    /// Its `MaxClients`.
    pub max_clients: u32,
}

impl Tinyproxy<'_> {
    /// Starts it; `None` when the binary is missing (see [`require_binary`]).
    pub fn start(&self) -> Option<ProxyProcess> {
        let bin = require_binary("tinyproxy", "tinyproxy")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        let pid = dir.path().join("tinyproxy.pid");
        let bind = self
            .bind
            .map(|addr| format!("Bind {addr}\n"))
            .unwrap_or_default();
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\n{bind}Timeout 30\nMaxClients {}\n\
                 LogFile \"{}\"\nPidFile \"{}\"\nLogLevel Connect\nBasicAuth {} {}\n",
                self.max_clients,
                log.display(),
                pid.display(),
                self.user,
                self.pass
            ),
        )
        .expect("tinyproxy config");
        let mut command = Command::new(bin);
        command.arg("-d").arg("-c").arg(&conf);
        Some(ProxyProcess::spawn(command, port, log, dir))
    }
}

/// microsocks (Debian package `microsocks`) on a free port; its stdout is its log
/// (`connected to <host>:<port>`).
#[derive(Clone, Debug, Default)]
pub struct Microsocks<'a> {
    /// `(user, password)` it requires, if any.
    pub credentials: Option<(&'a str, &'a str)>,
    /// Source address of its outgoing connections.
    pub bind: Option<Ipv4Addr>,
}

impl Microsocks<'_> {
    /// Starts it; `None` when the binary is missing (see [`require_binary`]).
    pub fn start(&self) -> Option<ProxyProcess> {
        let bin = require_binary("microsocks", "microsocks")?;
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut command = Command::new(bin);
        command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(addr) = self.bind {
            command.args(["-b", &addr.to_string()]);
        }
        if let Some((user, pass)) = self.credentials {
            command.args(["-u", user, "-P", pass]);
        }
        let log = dir.path().join("stdout.log");
        Some(ProxyProcess::spawn(command, port, log, dir))
    }
}
