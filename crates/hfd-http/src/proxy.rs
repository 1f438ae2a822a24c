//! Proxy settings: proxy URLs, the `NO_PROXY` list, and which proxy (if
//! any) a connection to an origin goes through.
//!
//! Everything here is pure: [`ProxyConfig::from_env`] takes a lookup
//! function instead of reading the environment itself.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};
use hfd_types::RedactedUrl;

/// How a proxy is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyKind {
    /// `http://`: an HTTP proxy, used through `CONNECT` tunnels.
    Http,
    /// `https://`: an HTTP proxy reached over TLS, used through `CONNECT`.
    Https,
    /// `socks5://`: SOCKS5, target host names resolved locally.
    Socks5,
    /// `socks5h://`: SOCKS5, target host names resolved by the proxy.
    Socks5h,
}

impl ProxyKind {
    /// The URL scheme of this kind.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Socks5 => "socks5",
            Self::Socks5h => "socks5h",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
            Self::Socks5 | Self::Socks5h => 1080,
        }
    }
}

/// A parsed proxy URL such as `http://user:pass@127.0.0.1:7890` or
/// `socks5h://127.0.0.1:7891`.
///
/// Without a scheme, `http://` is assumed (as curl and httpx do). Without a
/// port, the scheme's default is used: 80 for `http`, 443 for `https`, 1080
/// for SOCKS. `Display` and `Debug` never show the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    kind: ProxyKind,
    host: String,
    port: u16,
    credentials: Option<(String, String)>,
}

impl ProxyUrl {
    /// Parses a proxy URL; a clear [`Error::InvalidProxy`] for anything
    /// unusable (unknown scheme, missing host, a path or query, ...).
    pub fn parse(input: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidProxy {
            proxy: RedactedUrl::new(input.trim()).to_string(),
            reason: reason.to_owned(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(invalid("empty proxy URL"));
        }
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("http://{trimmed}")
        };
        let url = url::Url::parse(&with_scheme).map_err(|e| invalid(&e.to_string()))?;
        let kind = match url.scheme() {
            "http" => ProxyKind::Http,
            "https" => ProxyKind::Https,
            "socks5" => ProxyKind::Socks5,
            "socks5h" => ProxyKind::Socks5h,
            other => {
                return Err(invalid(&format!(
                    "unsupported proxy scheme {other:?} (use http, https, socks5 or socks5h)"
                )));
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(invalid("the proxy URL has no host")),
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "a proxy URL must not have a path, query or fragment",
            ));
        }
        let port = url.port().unwrap_or(kind.default_port());
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(std::borrow::Cow::into_owned)
                .map_err(|_| invalid("the proxy credentials are not valid UTF-8"))
        };
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let user = decode(url.username())?;
            let pass = decode(url.password().unwrap_or(""))?;
            if matches!(kind, ProxyKind::Socks5 | ProxyKind::Socks5h)
                && (user.len() > 255 || pass.len() > 255 || user.is_empty())
            {
                return Err(invalid(
                    "SOCKS5 user name must be 1 to 255 bytes and the password at most 255 bytes",
                ));
            }
            Some((user, pass))
        };
        Ok(Self {
            kind,
            host,
            port,
            credentials,
        })
    }

    /// How the proxy is spoken to.
    pub fn kind(&self) -> ProxyKind {
        self.kind
    }

    /// The proxy's host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the URL carried a user name and password.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// User name and password (percent-decoded). Only for the handshake.
    pub(crate) fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }
}

impl FromStr for ProxyUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.credentials.is_some() {
            "***@"
        } else {
            ""
        };
        if self.host.contains(':') {
            write!(
                f,
                "{}://{auth}[{}]:{}",
                self.kind.scheme(),
                self.host,
                self.port
            )
        } else {
            write!(
                f,
                "{}://{auth}{}:{}",
                self.kind.scheme(),
                self.host,
                self.port
            )
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// One entry of a `NO_PROXY` list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NoProxyEntry {
    /// A host name; matches itself and its subdomains.
    Domain { name: String, port: Option<u16> },
    /// An exact IP address.
    Ip { addr: IpAddr, port: Option<u16> },
    /// An IP network in CIDR notation.
    Network { addr: IpAddr, prefix: u8 },
}

/// Hosts that bypass the proxy, from a curl-style `NO_PROXY` list.
///
/// Entries are separated by commas (or white space): `*` (everything),
/// host names (`example.com` matches it and all its subdomains; a leading
/// `.` or `*.` is ignored), IP addresses (`127.0.0.1`, `::1`, `[::1]`), CIDR
/// networks (`10.0.0.0/8`), each optionally with `:port`. Host names are
/// compared case-insensitively; a host name never matches an IP entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    match_all: bool,
    entries: Vec<NoProxyEntry>,
}

impl NoProxy {
    /// Parses a `NO_PROXY` value. Entries that make no sense are skipped.
    pub fn parse(list: &str) -> Self {
        let mut out = Self::default();
        for raw in list.split([',', ' ', '\t', '\n']) {
            let entry = raw.trim().to_ascii_lowercase();
            if entry.is_empty() {
                continue;
            }
            if entry == "*" {
                out.match_all = true;
                continue;
            }
            if let Some(parsed) = parse_no_proxy_entry(&entry) {
                out.entries.push(parsed);
            }
        }
        out
    }

    /// `NO_PROXY` / `no_proxy` from `lookup` (lower case wins, as in curl).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        env_value(&lookup, "no_proxy").map_or_else(Self::default, |v| Self::parse(&v))
    }

    /// Whether nothing bypasses the proxy.
    pub fn is_empty(&self) -> bool {
        !self.match_all && self.entries.is_empty()
    }

    /// Whether a connection to `host:port` bypasses the proxy.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.match_all {
            return true;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        self.entries.iter().any(|entry| match entry {
            NoProxyEntry::Domain { name, port: p } => {
                ip.is_none()
                    && port_ok(p)
                    && (host == *name
                        || (host.len() > name.len()
                            && host.ends_with(name.as_str())
                            && host.as_bytes()[host.len() - name.len() - 1] == b'.'))
            }
            NoProxyEntry::Ip { addr, port: p } => ip == Some(*addr) && port_ok(p),
            NoProxyEntry::Network { addr, prefix } => {
                ip.is_some_and(|ip| in_network(ip, *addr, *prefix))
            }
        })
    }
}

fn parse_no_proxy_entry(entry: &str) -> Option<NoProxyEntry> {
    if let Some((addr, prefix)) = entry.split_once('/') {
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?;
        let prefix: u8 = prefix.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        return (prefix <= max).then_some(NoProxyEntry::Network { addr, prefix });
    }
    if let Ok(addr) = entry.parse::<IpAddr>() {
        return Some(NoProxyEntry::Ip { addr, port: None });
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let addr: IpAddr = addr.parse().ok()?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some(NoProxyEntry::Ip { addr, port });
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (entry, None),
    };
    if let Ok(addr) = host.parse::<IpAddr>() {
        return Some(NoProxyEntry::Ip { addr, port });
    }
    let name = host
        .trim_start_matches("*.")
        .trim_start_matches('.')
        .trim_end_matches('.');
    (!name.is_empty()).then(|| NoProxyEntry::Domain {
        name: name.to_owned(),
        port,
    })
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Which proxy each connection goes through.
///
/// `http` serves `http://` targets, `https` serves `https://` targets; hosts
/// matched by `no_proxy` connect directly. Build it with [`ProxyConfig::all`]
/// (a `--proxy` flag) or [`ProxyConfig::from_env`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyConfig {
    /// Proxy for `http://` URLs. Default: none.
    pub http: Option<ProxyUrl>,
    /// Proxy for `https://` URLs. Default: none.
    pub https: Option<ProxyUrl>,
    /// Hosts that bypass the proxy. Default: none.
    pub no_proxy: NoProxy,
}

impl ProxyConfig {
    /// One proxy for every scheme, no bypass list.
    pub fn all(proxy: ProxyUrl) -> Self {
        Self {
            http: Some(proxy.clone()),
            https: Some(proxy),
            no_proxy: NoProxy::default(),
        }
    }

    /// Replaces the bypass list.
    #[must_use]
    pub fn with_no_proxy(mut self, no_proxy: NoProxy) -> Self {
        self.no_proxy = no_proxy;
        self
    }

    /// Proxy settings from environment variables, read through `lookup`,
    /// with curl/httpx semantics:
    ///
    /// - `https://` targets: `https_proxy`, `HTTPS_PROXY`, then `all_proxy`, `ALL_PROXY`;
    /// - `http://` targets: `http_proxy`, `HTTP_PROXY`, then `all_proxy`, `ALL_PROXY`;
    /// - bypass list: `no_proxy`, then `NO_PROXY`.
    ///
    /// The lower-case name wins when both are set; empty values count as
    /// unset. `Ok(None)` when no proxy variable is set; an error naming the
    /// variable when one holds an unusable URL.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let parse = |name: &str| -> Result<Option<ProxyUrl>> {
            let Some((var, value)) = env_entry(&lookup, name) else {
                return Ok(None);
            };
            ProxyUrl::parse(&value).map(Some).map_err(|e| match e {
                Error::InvalidProxy { proxy, reason } => Error::InvalidProxy {
                    proxy,
                    reason: format!("{reason} (from ${var})"),
                },
                other => other,
            })
        };
        let all = parse("all_proxy")?;
        let http = parse("http_proxy")?.or_else(|| all.clone());
        let https = parse("https_proxy")?.or(all);
        if http.is_none() && https.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            http,
            https,
            no_proxy: NoProxy::from_env(&lookup),
        }))
    }

    /// The proxy for a connection to `scheme://host:port`, or `None` to
    /// connect directly.
    pub fn proxy_for(&self, scheme: &str, host: &str, port: u16) -> Option<&ProxyUrl> {
        let proxy = match scheme {
            "https" => self.https.as_ref(),
            "http" => self.http.as_ref(),
            _ => None,
        }?;
        (!self.no_proxy.matches(host, port)).then_some(proxy)
    }
}

/// The value of `lower` or its upper-case form, lower case first; empty
/// values count as unset.
fn env_entry(lookup: &impl Fn(&str) -> Option<String>, lower: &str) -> Option<(String, String)> {
    let upper = lower.to_ascii_uppercase();
    [lower.to_owned(), upper].into_iter().find_map(|name| {
        lookup(&name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name, v))
    })
}

fn env_value(lookup: &impl Fn(&str) -> Option<String>, lower: &str) -> Option<String> {
    env_entry(lookup, lower).map(|(_, v)| v)
}

/// `Basic` credentials for `Proxy-Authorization`.
pub(crate) fn basic_auth(user: &str, pass: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{pass}");
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4 + 6);
    out.push_str("Basic ");
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{NoProxy, ProxyConfig, ProxyKind, ProxyUrl, basic_auth};
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn parses_proxy_urls() {
        let p = ProxyUrl::parse("http://127.0.0.1:7890").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port(), p.has_credentials()),
            (ProxyKind::Http, "127.0.0.1", 7890, false)
        );
        let p = ProxyUrl::parse("127.0.0.1:7890").unwrap();
        assert_eq!((p.kind(), p.port()), (ProxyKind::Http, 7890));
        let p = ProxyUrl::parse("proxy.corp").unwrap();
        assert_eq!((p.host(), p.port()), ("proxy.corp", 80));
        let p = ProxyUrl::parse("https://Proxy.Corp/").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port()),
            (ProxyKind::Https, "proxy.corp", 443)
        );
        let p = ProxyUrl::parse("socks5://[::1]").unwrap();
        assert_eq!(
            (p.kind(), p.host(), p.port()),
            (ProxyKind::Socks5, "::1", 1080)
        );
        let p = ProxyUrl::parse("socks5h://u%40x:p%3Ass@h:1081").unwrap();
        assert_eq!(p.kind(), ProxyKind::Socks5h);
        assert_eq!(p.credentials(), Some(("u@x", "p:ss")));
        let p = ProxyUrl::parse("http://user@h:1").unwrap();
        assert_eq!(p.credentials(), Some(("user", "")));
    }

    #[test]
    fn rejects_bad_proxy_urls_without_leaking_the_password() {
        for bad in [
            "",
            "ftp://h:1",
            "socks4://h:1",
            "http://",
            "http://u:hunter2@h:99999",
            "http://u:hunter2@h:1/path",
            "http://h:1/?q",
            "socks5://:hunter2@h:1",
        ] {
            let err = ProxyUrl::parse(bad).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("proxy"), "{bad}: {msg}");
            assert!(!msg.contains("hunter2"), "{bad}: {msg}");
            assert!(!format!("{err:?}").contains("hunter2"), "{bad}");
        }
        let long = format!("socks5://{}:p@h:1", "u".repeat(256));
        assert!(ProxyUrl::parse(&long).is_err());
    }

    #[test]
    fn display_and_debug_hide_credentials() {
        let p = ProxyUrl::parse("http://alice:hunter2@10.0.0.1:3128").unwrap();
        assert_eq!(p.to_string(), "http://***@10.0.0.1:3128");
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!format!("{p:?}").contains("alice"));
        let p = ProxyUrl::parse("socks5://[::1]:1").unwrap();
        assert_eq!(p.to_string(), "socks5://[::1]:1");
        let cfg = ProxyConfig::all(ProxyUrl::parse("http://alice:hunter2@h:1").unwrap());
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn no_proxy_matching() {
        let np = NoProxy::parse(
            "localhost, .internal.corp,*.svc,example.com:8080, 10.0.0.0/8 ,[::1],192.168.1.5,fd00::/8",
        );
        let yes = [
            ("localhost", 1),
            ("LOCALHOST.", 1),
            ("a.internal.corp", 443),
            ("internal.corp", 443),
            ("x.y.svc", 1),
            ("example.com", 8080),
            ("10.1.2.3", 1),
            ("::1", 5),
            ("[::1]", 5),
            ("192.168.1.5", 80),
            ("fd12::1", 1),
        ];
        for (h, p) in yes {
            assert!(np.matches(h, p), "{h}:{p} should bypass");
        }
        let no = [
            ("notlocalhost", 1),
            ("xinternal.corp", 1),
            ("example.com", 443),
            ("11.0.0.1", 1),
            ("127.0.0.1", 1),
            ("192.168.1.6", 1),
            ("huggingface.co", 443),
            ("fe80::1", 1),
        ];
        for (h, p) in no {
            assert!(!np.matches(h, p), "{h}:{p} should use the proxy");
        }
        assert!(NoProxy::parse(" * ").matches("anything", 1));
        assert!(NoProxy::parse("").is_empty());
        assert!(NoProxy::parse("127.0.0.1:8080").matches("127.0.0.1", 8080));
        assert!(!NoProxy::parse("127.0.0.1:8080").matches("127.0.0.1", 8081));
        assert!(NoProxy::parse("0.0.0.0/0").matches("1.2.3.4", 1));
        assert!(!NoProxy::parse("0.0.0.0/0").matches("::1", 1));
    }

    #[test]
    fn from_env_follows_curl() {
        assert_eq!(ProxyConfig::from_env(env(&[])).unwrap(), None);
        assert_eq!(
            ProxyConfig::from_env(env(&[("NO_PROXY", "x")])).unwrap(),
            None
        );
        let cfg = ProxyConfig::from_env(env(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:1"),
            ("ALL_PROXY", "socks5h://all:1080"),
            ("no_proxy", "localhost"),
            ("NO_PROXY", "ignored"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(cfg.https.as_ref().unwrap().host(), "lower");
        assert_eq!(cfg.http.as_ref().unwrap().host(), "all");
        assert_eq!(cfg.http.as_ref().unwrap().kind(), ProxyKind::Socks5h);
        assert!(cfg.proxy_for("https", "localhost", 443).is_none());
        assert!(cfg.proxy_for("https", "ignored", 443).is_some());
        assert_eq!(cfg.proxy_for("http", "h", 80).unwrap().host(), "all");

        let cfg = ProxyConfig::from_env(env(&[("HTTP_PROXY", "h:3128"), ("https_proxy", " ")]))
            .unwrap()
            .unwrap();
        assert!(cfg.https.is_none());
        assert!(cfg.proxy_for("https", "huggingface.co", 443).is_none());
        assert_eq!(cfg.proxy_for("http", "x", 80).unwrap().port(), 3128);

        let err = ProxyConfig::from_env(env(&[("HTTPS_PROXY", "gopher://u:hunter2@h")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HTTPS_PROXY"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn no_proxy_from_env_and_star() {
        let cfg = ProxyConfig::all(ProxyUrl::parse("socks5://h:1").unwrap())
            .with_no_proxy(NoProxy::from_env(env(&[("NO_PROXY", "*")])));
        assert!(cfg.proxy_for("https", "huggingface.co", 443).is_none());
    }

    #[test]
    fn basic_auth_encoding() {
        // RFC 7617 example.
        assert_eq!(
            basic_auth("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_auth("a", ""), "Basic YTo=");
        assert_eq!(basic_auth("ab", "c"), "Basic YWI6Yw==");
        assert_eq!(basic_auth("ab", "cd"), "Basic YWI6Y2Q=");
    }
}
