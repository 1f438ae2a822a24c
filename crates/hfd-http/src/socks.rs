//! The client side of a SOCKS5 handshake (RFC 1928, RFC 1929): greeting,
//! optional user/password authentication, `CONNECT`.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where the proxy should connect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocksTarget<'a> {
    /// An address resolved by us (`socks5://`).
    Addr(SocketAddr),
    /// A host name the proxy resolves (`socks5h://`).
    Domain(&'a str, u16),
}

/// Why the handshake failed, in words fit for an error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SocksError {
    pub(crate) reason: String,
    /// Whether trying again later may succeed (network-side failures).
    pub(crate) retryable: bool,
}

impl SocksError {
    fn fatal(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: false,
        }
    }
}

const VERSION: u8 = 5;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_ACCEPTABLE: u8 = 0xff;

/// The authentication methods a greeting offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Methods {
    /// No authentication only (no credentials configured).
    NoAuth,
    /// No authentication, or user/password (RFC 1929).
    NoAuthOrPassword,
}

/// The greeting: which authentication methods we offer.
pub(crate) fn greeting(methods: Methods) -> Vec<u8> {
    match methods {
        Methods::NoAuthOrPassword => vec![VERSION, 2, NO_AUTH, USER_PASS],
        Methods::NoAuth => vec![VERSION, 1, NO_AUTH],
    }
}

/// The RFC 1929 user/password sub-negotiation request.
pub(crate) fn auth_request(user: &str, pass: &str) -> Result<Vec<u8>, SocksError> {
    let (Ok(ulen), Ok(plen)) = (u8::try_from(user.len()), u8::try_from(pass.len())) else {
        return Err(SocksError::fatal(
            "SOCKS5 user name and password must be at most 255 bytes",
        ));
    };
    let mut out = Vec::with_capacity(3 + user.len() + pass.len());
    out.extend_from_slice(&[1, ulen]);
    out.extend_from_slice(user.as_bytes());
    out.push(plen);
    out.extend_from_slice(pass.as_bytes());
    Ok(out)
}

/// The `CONNECT` request for `target`.
pub(crate) fn connect_request(target: SocksTarget<'_>) -> Result<Vec<u8>, SocksError> {
    let mut out = vec![VERSION, 1, 0];
    let port = match target {
        SocksTarget::Addr(addr) => {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    out.push(1);
                    out.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    out.push(4);
                    out.extend_from_slice(&ip.octets());
                }
            }
            addr.port()
        }
        SocksTarget::Domain(host, port) => {
            let len = u8::try_from(host.len())
                .ok()
                .filter(|l| *l > 0)
                .ok_or_else(|| SocksError::fatal("host name too long for SOCKS5"))?;
            out.push(3);
            out.push(len);
            out.extend_from_slice(host.as_bytes());
            port
        }
    };
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

/// Meaning of a `CONNECT` reply code, and whether it is worth retrying.
pub(crate) fn reply_meaning(code: u8) -> (&'static str, bool) {
    match code {
        1 => ("general SOCKS server failure", true),
        2 => ("connection not allowed by ruleset", false),
        3 => ("network unreachable", true),
        4 => ("host unreachable", true),
        5 => ("connection refused by the target", true),
        6 => ("TTL expired", true),
        7 => ("command not supported", false),
        8 => ("address type not supported", false),
        _ => ("unknown reply code", false),
    }
}

/// Runs the handshake on `stream`, leaving it connected to `target`.
pub(crate) async fn handshake<S>(
    stream: &mut S,
    target: SocksTarget<'_>,
    credentials: Option<(&str, &str)>,
) -> Result<(), SocksError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let io = |e: std::io::Error| SocksError {
        reason: format!("I/O error during the SOCKS5 handshake: {e}"),
        retryable: true,
    };
    stream
        .write_all(&greeting(if credentials.is_some() {
            Methods::NoAuthOrPassword
        } else {
            Methods::NoAuth
        }))
        .await
        .map_err(io)?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await.map_err(io)?;
    if choice[0] != VERSION {
        return Err(SocksError::fatal("the proxy does not speak SOCKS5"));
    }
    match (choice[1], credentials) {
        (NO_AUTH, _) => {}
        (USER_PASS, Some((user, pass))) => {
            stream
                .write_all(&auth_request(user, pass)?)
                .await
                .map_err(io)?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status).await.map_err(io)?;
            if status[1] != 0 {
                return Err(SocksError::fatal(
                    "the SOCKS5 proxy rejected the user name or password",
                ));
            }
        }
        (NO_ACCEPTABLE | USER_PASS, None) => {
            return Err(SocksError::fatal(
                "the SOCKS5 proxy requires a user name and password",
            ));
        }
        (NO_ACCEPTABLE, Some(_)) => {
            return Err(SocksError::fatal(
                "the SOCKS5 proxy accepts none of the offered authentication methods",
            ));
        }
        (other, _) => {
            return Err(SocksError::fatal(format!(
                "the SOCKS5 proxy chose an unsupported authentication method {other:#04x}"
            )));
        }
    }
    stream
        .write_all(&connect_request(target)?)
        .await
        .map_err(io)?;
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await.map_err(io)?;
    if head[0] != VERSION {
        return Err(SocksError::fatal("malformed SOCKS5 reply"));
    }
    if head[1] != 0 {
        let (meaning, retryable) = reply_meaning(head[1]);
        return Err(SocksError {
            reason: format!("SOCKS5 CONNECT failed: {meaning} (code {})", head[1]),
            retryable,
        });
    }
    let addr_len = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await.map_err(io)?;
            usize::from(len[0])
        }
        _ => return Err(SocksError::fatal("malformed SOCKS5 reply address")),
    };
    let mut rest = vec![0u8; addr_len + 2];
    stream.read_exact(&mut rest).await.map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Methods, SocksTarget, auth_request, connect_request, greeting, handshake};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn encodes_messages() {
        assert_eq!(greeting(Methods::NoAuth), [5, 1, 0]);
        assert_eq!(greeting(Methods::NoAuthOrPassword), [5, 2, 0, 2]);
        assert_eq!(
            auth_request("ab", "c").unwrap(),
            [1, 2, b'a', b'b', 1, b'c']
        );
        assert!(auth_request(&"u".repeat(256), "").is_err());
        let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            connect_request(SocksTarget::Addr(v4)).unwrap(),
            [5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]
        );
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        let req = connect_request(SocksTarget::Addr(v6)).unwrap();
        assert_eq!(&req[..4], [5, 1, 0, 4]);
        assert_eq!(req.len(), 4 + 16 + 2);
        assert_eq!(req[19], 1);
        assert_eq!(&req[20..], [1, 0xbb]);
        assert_eq!(
            connect_request(SocksTarget::Domain("hf.co", 443)).unwrap(),
            [5, 1, 0, 3, 5, b'h', b'f', b'.', b'c', b'o', 1, 0xbb]
        );
        assert!(connect_request(SocksTarget::Domain("", 1)).is_err());
        assert!(connect_request(SocksTarget::Domain(&"a".repeat(256), 1)).is_err());
    }

    #[tokio::test]
    async fn handshake_with_auth_against_a_scripted_server() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        let script = tokio::spawn(async move {
            let mut buf = [0u8; 4];
            server.read_exact(&mut buf).await.unwrap();
            assert_eq!(buf, [5, 2, 0, 2]);
            server.write_all(&[5, 2]).await.unwrap();
            let mut auth = [0u8; 7];
            server.read_exact(&mut auth).await.unwrap();
            assert_eq!(auth, [1, 1, b'u', 3, b'p', b'w', b'd']);
            server.write_all(&[1, 0]).await.unwrap();
            let mut req = [0u8; 4 + 1 + 9 + 2];
            server.read_exact(&mut req).await.unwrap();
            assert_eq!(&req[..5], [5, 1, 0, 3, 9]);
            assert_eq!(&req[5..14], b"localhost");
            // Reply with a domain-type bound address to exercise that branch.
            server
                .write_all(&[5, 0, 0, 3, 1, b'x', 0, 80, b'!'])
                .await
                .unwrap();
            server
        });
        handshake(
            &mut client,
            SocksTarget::Domain("localhost", 80),
            Some(("u", "pwd")),
        )
        .await
        .unwrap();
        let _server = script.await.unwrap();
        // The byte after the reply belongs to the tunnel, not the handshake.
        let mut tail = [0u8; 1];
        client.read_exact(&mut tail).await.unwrap();
        assert_eq!(tail, *b"!");
    }

    #[tokio::test]
    async fn handshake_reports_refusals() {
        type Case<'a> = (&'a [u8], Option<(&'a str, &'a str)>, &'a str);
        let cases: [Case<'_>; 4] = [
            (&[5, 0xff], None, "requires a user name"),
            (&[5, 2, 1, 1], Some(("u", "p")), "rejected the user name"),
            (&[5, 0, 5, 5, 0, 1], None, "connection refused"),
            (&[4, 0], None, "does not speak SOCKS5"),
        ];
        for (reply, creds, expected) in cases {
            let (mut client, mut server) = tokio::io::duplex(1024);
            server.write_all(reply).await.unwrap();
            let target = SocksTarget::Domain("h", 1);
            let err = handshake(&mut client, target, creds).await.unwrap_err();
            assert!(err.reason.contains(expected), "{}", err.reason);
            drop(server);
        }
    }
}
