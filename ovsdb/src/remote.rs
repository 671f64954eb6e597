//! Connection targets in OVS's syntax (ovsdb-client(1) "Active database connection
//! methods"): `unix:PATH`, `tcp:IP:PORT`, `tcp:[IPv6]:PORT`, `ssl:` likewise, and a
//! comma-separated list of them, tried in turn.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

/// The port OVS assumes when a `tcp:` remote names none.
pub const DEFAULT_PORT: u16 = 6640;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Unix(PathBuf),
    /// `host` is an IP address (IPv6 without brackets) or a name to resolve.
    Tcp {
        host: String,
        port: u16,
    },
    /// TLS over TCP; needs [`crate::SslConfig`] in the client's configuration.
    Ssl {
        host: String,
        port: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    #[error("no remote given")]
    Empty,
    #[error("{0:?}: an ssl: remote needs a private key, a certificate and a CA certificate")]
    SslUnconfigured(String),
    #[error(
        "{0:?}: passive remotes (punix:, ptcp:, pssl:) are for servers; a client needs an active one"
    )]
    Passive(String),
    #[error("{0:?}: unknown connection method (expected unix:PATH or tcp:IP:PORT)")]
    UnknownMethod(String),
    #[error("{0:?}: malformed remote: {1}")]
    Malformed(String, &'static str),
}

impl FromStr for Remote {
    type Err = RemoteError;

    fn from_str(s: &str) -> Result<Remote, RemoteError> {
        let s = s.trim();
        let bad = |why| RemoteError::Malformed(s.to_owned(), why);
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("empty path"));
            }
            return Ok(Remote::Unix(PathBuf::from(path)));
        }
        let (tls, rest) = match (s.strip_prefix("tcp:"), s.strip_prefix("ssl:")) {
            (Some(rest), _) => (false, Some(rest)),
            (None, Some(rest)) => (true, Some(rest)),
            (None, None) => (false, None),
        };
        if let Some(rest) = rest {
            let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                let (host, after) = v6.split_once(']').ok_or_else(|| bad("missing ']'"))?;
                match after {
                    "" => (host, None),
                    p => (
                        host,
                        Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
                    ),
                }
            } else {
                match rest.split_once(':') {
                    Some((h, p)) if !p.contains(':') => (h, Some(p)),
                    Some(_) => return Err(bad("IPv6 addresses need brackets: tcp:[::1]:6642")),
                    None => (rest, None),
                }
            };
            if host.is_empty() {
                return Err(bad("empty host"));
            }
            let port = match port {
                None => DEFAULT_PORT,
                Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            };
            let host = host.to_owned();
            return Ok(if tls {
                Remote::Ssl { host, port }
            } else {
                Remote::Tcp { host, port }
            });
        }
        if s.starts_with("punix:") || s.starts_with("ptcp:") || s.starts_with("pssl:") {
            return Err(RemoteError::Passive(s.to_owned()));
        }
        Err(RemoteError::UnknownMethod(s.to_owned()))
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
            Remote::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Remote::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Remote::Ssl { host, port } if host.contains(':') => write!(f, "ssl:[{host}]:{port}"),
            Remote::Ssl { host, port } => write!(f, "ssl:{host}:{port}"),
        }
    }
}

/// A non-empty list of remotes (`tcp:a:6642,tcp:b:6642`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remotes(Vec<Remote>);

impl Remotes {
    pub fn as_slice(&self) -> &[Remote] {
        &self.0
    }
}

impl From<Remote> for Remotes {
    fn from(r: Remote) -> Remotes {
        Remotes(vec![r])
    }
}

impl FromStr for Remotes {
    type Err = RemoteError;

    fn from_str(s: &str) -> Result<Remotes, RemoteError> {
        let list = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Remote::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(RemoteError::Empty);
        }
        Ok(Remotes(list))
    }
}

impl fmt::Display for Remotes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

pub(crate) type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
pub(crate) type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

impl Remote {
    /// Opens the stream, giving up after `timeout` (a blackholed TCP peer would otherwise
    /// hold the client for the kernel's SYN retry time).
    pub(crate) async fn connect(
        &self,
        timeout: Duration,
        ssl: Option<&crate::SslConfig>,
    ) -> std::io::Result<(ReadHalf, WriteHalf)> {
        let fut = async {
            match self {
                Remote::Unix(path) => {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    let (r, w) = s.into_split();
                    Ok::<(ReadHalf, WriteHalf), std::io::Error>((Box::new(r), Box::new(w)))
                }
                Remote::Tcp { host, port } => {
                    let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    s.set_nodelay(true)?;
                    let (r, w) = s.into_split();
                    Ok((Box::new(r) as ReadHalf, Box::new(w) as WriteHalf))
                }
                Remote::Ssl { host, port } => {
                    let config = ssl.ok_or_else(|| {
                        std::io::Error::other(RemoteError::SslUnconfigured(self.to_string()))
                    })?;
                    let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    s.set_nodelay(true)?;
                    let tls = crate::ssl::handshake(s, config).await?;
                    let (r, w) = tokio::io::split(tls);
                    Ok((Box::new(r) as ReadHalf, Box::new(w) as WriteHalf))
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ovs_remote_syntax() {
        assert_eq!(
            "unix:/run/ovn/ovnsb_db.sock".parse::<Remote>().unwrap(),
            Remote::Unix("/run/ovn/ovnsb_db.sock".into())
        );
        assert_eq!(
            "tcp:127.0.0.1:6642".parse::<Remote>().unwrap(),
            Remote::Tcp {
                host: "127.0.0.1".into(),
                port: 6642
            }
        );
        assert_eq!(
            "tcp:[::1]:6642".parse::<Remote>().unwrap(),
            Remote::Tcp {
                host: "::1".into(),
                port: 6642
            }
        );
        assert_eq!(
            "tcp:[::1]".parse::<Remote>().unwrap(),
            Remote::Tcp {
                host: "::1".into(),
                port: 6640
            }
        );
        assert_eq!(
            "tcp:10.0.0.1".parse::<Remote>().unwrap(),
            Remote::Tcp {
                host: "10.0.0.1".into(),
                port: 6640
            }
        );
        let list: Remotes = "tcp:10.0.0.1:6642, tcp:[fd00::2]:6642,unix:/x"
            .parse()
            .unwrap();
        assert_eq!(list.as_slice().len(), 3);
        assert_eq!(
            list.to_string(),
            "tcp:10.0.0.1:6642,tcp:[fd00::2]:6642,unix:/x"
        );
    }

    #[test]
    fn rejects_what_it_cannot_do_with_a_clear_error() {
        assert_eq!(
            "ssl:10.0.0.1:6642".parse::<Remote>().unwrap(),
            Remote::Ssl {
                host: "10.0.0.1".into(),
                port: 6642
            }
        );
        assert_eq!(
            "tcp:a:1,ssl:[::1]:2"
                .parse::<Remotes>()
                .unwrap()
                .to_string(),
            "tcp:a:1,ssl:[::1]:2"
        );
        assert!(matches!(
            "ptcp:6642".parse::<Remote>(),
            Err(RemoteError::Passive(_))
        ));
        assert!(matches!(
            "udp:1.2.3.4:5".parse::<Remote>(),
            Err(RemoteError::UnknownMethod(_))
        ));
        for bad in [
            "unix:",
            "tcp:",
            "tcp::::1:6642",
            "tcp:[::1",
            "tcp:[::1]x",
            "tcp:1.2.3.4:99999",
            "tcp:1.2.3.4:x",
        ] {
            assert!(
                matches!(bad.parse::<Remote>(), Err(RemoteError::Malformed(..))),
                "{bad}"
            );
        }
        assert!(matches!("".parse::<Remotes>(), Err(RemoteError::Empty)));
    }
}
