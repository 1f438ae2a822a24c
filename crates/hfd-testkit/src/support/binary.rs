//! Finding third-party programs and free loopback ports.

use std::path::PathBuf;

/// The first `name` on `PATH` or in the usual system directories (`/usr/sbin` holds
/// tinyproxy, which is not on a normal user's `PATH`).
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The binary, or `None` after printing why the test is skipped; panics when `CI` is set.
/// `package` is the Debian package that provides it.
pub fn require_binary(name: &str, package: &str) -> Option<PathBuf> {
    let found = find_binary(name);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required in CI: install the Debian package `{package}`"
        );
        eprintln!(
            "SKIPPED: `{name}` not found; install the Debian package `{package}` to run this test"
        );
    }
    found
}

/// A port on 127.0.0.1 that was free a moment ago (for programs that take a port number).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("local address")
        .port()
}
